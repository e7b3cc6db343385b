"""Batch benchmark: guildd's gp and tpe searches against Guild AI 0.9's gp, for search quality
and speed, and the ask-ahead loop's gap and quality.

    python bench/batches.py [--seeds 20] [--trials 40] [--rounds 1] [--skip-guild]
                            [--skip-quality] [--skip-ahead] [--skip-speed] [--wait-others S]
                            [--guild PATH_TO_GUILD_VENV] [--keep] [--json]

Every figure is measured in this invocation, baselines included, because the machines this runs
on are noisy. Nothing is asserted; the closing table says whether each target is met.

1. Search quality: the Get Started tutorial's search, `run train.py x=[-2.0:2.0] --optimizer gp
   --max-trials 20 --random-seed SEED -y` (train.py: loss = sin(5x)(1 - tanh(x^2)) + randn *
   noise, noise 0.1), for SEED in range(--seeds), with guildctl and with `guild run` (one
   GUILD_HOME each). A seed's trials are the new run dirs whose `.guild/opref` names train.py
   (not the batch run: `train.py+gp` ours, `skopt gp` Guild's); each trial's x comes
   from `.guild/attrs/flags` and its loss from the last `loss:` line of `.guild/output`. The
   best trial is the one with the least loss; a seed succeeds when |best x - (-0.3)| <= 0.15.
   Target: our success rate >= Guild's. The same seeds are searched with `--optimizer tpe`
   (Optuna's TPE, its default flags; batch run `train.py+optuna:tpe`), shown beside Guild's gp.
2. Speed: a trial that sleeps 1 s and prints `loss: (x + 0.3)^2`, searched with `--optimizer gp
   --max-trials --trials` three ways, each as one foreground command whose wall time is taken:
   ours with `--parallel 4 --gpus 1` on a daemon with GUILD_SIMULATED_GPUS=4x80G, ours
   sequentially (`--parallel 1`, same daemon), and `guild run` sequentially. From the trials'
   `.guild/attrs/started` and `stopped` (µs since the epoch; ours: the daemon writes `started`
   as the trial becomes running, its shim writes `stopped` once the process has exited), the
   per-trial overhead of a sequential search: each trial's start minus the previous trial's
   stop (median and p90). Targets: parallel wall <= 0.35x sequential; our median overhead
   <= 0.5x Guild's and under 30 ms (the next point is asked ahead while a trial runs). With --rounds N each case runs N times, the order rotated, medians taken.
   Before each timed case this waits (up to WAIT_OTHERS_S) for other bench/ scripts and
   pytest runs to finish, as the machines are small, and says so if one ran meanwhile. A
   target whose searches had failed or missing trials reads "invalid" (see the problems).
   Also shown: (wall - trials x 1 s) / trials, everything but the sleep per trial, start-up of
   the trial's process included (Guild's op_main wrapper starts inside started..stopped).
3. Suggestion time alone, in this process: guildd.optimizers.Search.ask() for a gp search over
   x in [-2, 2] with k = 5, 20 and 39 points told (tutorial losses at random x; one refit and
   one ask, the sequential loop's cost), and with k = 20 told and 3 pending (the constant-liar
   ask a 4-wide parallel search makes as a slot frees); as a baseline, Guild 0.9's own gp
   suggestion (guild.plugins.skopt_gp_main._suggest_x: gp_minimize with x0, y0 and n_calls=1,
   which fits twice) on the same points, in Guild's venv, rounds alternating between the two.
   Also one Search in a 40-trial ask/tell loop on part 2's objective, (x + 0.3)^2, as the
   daemon's sequential loop calls it: each model-based ask, and the asks at k = 5, 20, 39.

4. Ask-ahead quality, in this process: the tutorial search of part 1 (--seeds, --quality-trials)
   with gp and tpe, each point asked after the previous trial's result is told (the loop before
   guildd.askahead) and asked ahead, while the previous trial runs; same seeds and noise. Only
   the order of asks and tells differs, so the two columns show what asking ahead costs.

It makes its own temp GUILD_HOMEs and project dir, never touches ~/.guild, and stops the daemons
it started. Progress goes to stderr; with --json the table goes to stderr too and stdout holds
one JSON object.
"""

import argparse
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import warnings

import psutil
import yaml

from benchlib import DEFAULT_GUILD_VENV, GUILD_INSTALLER, exe_beside_python, fmt_s, log, median, percentile, print_table, yes

SIMULATED_GPUS = "4x80G"
PARALLEL = 4
OPTIMUM_X = -0.3
TOLERANCE = 0.15
QUALITY_TRIALS = 20
SPEED_SEED = 1
TRIAL_SLEEP_S = 1.0  # SLEEP_PY's sleep
SUGGEST_TOLD = (5, 20, 39)
SUGGEST_PENDING_TOLD = 20  # the parallel case: k told, PARALLEL - 1 pending
SUGGEST_REPS = 5
WAIT_OTHERS_S = 20 * 60
WAIT_POLL_S = 10
OTHER_BENCH = re.compile(r"(^|/)bench/(?!batches\.py$)[\w-]+\.py$")
RUN_TIMEOUT_S = 1800

# The Get Started tutorial's script (tests/conftest.py GET_STARTED).
TRAIN_PY = """\
import numpy as np

# Hyperparameters
x = 0.1
noise = 0.1

loss = (np.sin(5 * x) * (1 - np.tanh(x ** 2)) + np.random.randn() * noise)
print("loss: %f" % loss)
"""
SLEEP_PY = """\
import time

x = 0.0

time.sleep(1)
print("loss: %f" % ((x + 0.3) ** 2))
"""
# Guild 0.9's gp suggestion on the points given, timed in Guild's venv. argv: JSON
# {"cases": [[k, xs, ys], ...], "reps": N, "seed": S}; prints {k: [seconds, ...]}.
GUILD_SUGGEST_PY = """\
import json, sys, time, warnings
warnings.filterwarnings("ignore")
from guild.plugins import skopt_gp_main, skopt_util
args = json.loads(sys.argv[1])
names, dims, _ = skopt_util.flag_dims({"x": "[-2.0:2.0]"})
opts = {"acq-func": "gp_hedge", "kappa": 1.96, "xi": 0.05, "noise": "gaussian"}
out = {}
for k, xs, ys in args["cases"]:
    x0 = [[x] for x in xs]
    skopt_gp_main._suggest_x(dims, x0, ys, False, 0, opts)  # warm-up
    times = []
    for rep in range(args["reps"]):
        t0 = time.perf_counter()
        skopt_gp_main._suggest_x(dims, x0, list(ys), False, args["seed"] + rep, opts)
        times.append(time.perf_counter() - t0)
    out[str(k)] = times
print(json.dumps(out))
"""


def tutorial_loss(x, rng):
    return math.sin(5 * x) * (1 - math.tanh(x ** 2)) + rng.gauss(0.0, 1.0) * 0.1


# --- Tools -------------------------------------------------------------------------------


class Env:
    """Paths and environments for one benchmark invocation (all under one temp dir)."""

    def __init__(self, root, guildctl, guild_venv):
        self.root = root
        self.project = os.path.join(root, "project")
        self.homes = {"quality": os.path.join(root, "quality-home"),
                      "speed": os.path.join(root, "speed-home")}
        self.guild_homes = {"quality": os.path.join(root, "guild-quality-home"),
                            "speed": os.path.join(root, "guild-speed-home")}
        self.guildctl = guildctl
        self.guild_venv = guild_venv
        self.guild = os.path.join(guild_venv, "bin", "guild") if guild_venv else None
        for d in (self.project, *self.homes.values(), *self.guild_homes.values()):
            os.makedirs(d)
        for name, text in (("train.py", TRAIN_PY), ("sleep.py", SLEEP_PY)):
            with open(os.path.join(self.project, name), "w") as f:
                f.write(text)
        self.base = {k: v for k, v in os.environ.items()
                     if k not in ("GUILD_HOME", "NO_PIP_FREEZE", "VIRTUAL_ENV", "GUILD_SIMULATED_GPUS")}
        self.started = []  # homes with a daemon this invocation started

    def ctl_env(self, part):
        # The speed daemon sees simulated GPUs (it inherits guildctl's environment at start).
        env = dict(self.base, GUILD_HOME=self.homes[part], GUILDCTL_NO_AUTOSTART="1")
        if part == "speed":
            env["GUILD_SIMULATED_GPUS"] = SIMULATED_GPUS
        return env

    def guild_env(self, part):
        return dict(self.base, GUILD_HOME=self.guild_homes[part])

    def ctl(self, part, *args):
        return [self.guildctl, "-H", self.homes[part], *args]


def run_checked(cmd, env, stdout=subprocess.DEVNULL, timeout=RUN_TIMEOUT_S, what=None):
    """Runs cmd in the project dir; returns (seconds, CompletedProcess). Raises on failure."""
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=ENV.project, env=env, stdout=stdout, stderr=subprocess.PIPE,
                       timeout=timeout)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError("%s exited %d: %s" % (what or " ".join(cmd), p.returncode,
                                                 p.stderr.decode(errors="replace").strip()[-2000:]))
    return dt, p


def start_daemon(part):
    t, p = run_checked(ENV.ctl(part, "daemon", "start"), ENV.ctl_env(part), stdout=subprocess.PIPE,
                       what="guildctl daemon start")
    ENV.started.append(part)
    log("%s daemon started in %.2f s: %s" % (part, t, p.stdout.decode().strip()))


def stop_daemon(part, problems):
    try:
        p = subprocess.run(ENV.ctl(part, "daemon", "stop"), env=ENV.ctl_env(part),
                           capture_output=True, timeout=60)
        log("%s daemon stop: %s" % (part, (p.stdout + p.stderr).decode(errors="replace").strip()))
        if p.returncode != 0:
            problems.append("`guildctl daemon stop` (%s home) exited %d" % (part, p.returncode))
    except subprocess.TimeoutExpired:
        problems.append("`guildctl daemon stop` (%s home) did not return in 60 s" % part)
    ENV.started.remove(part)


ENV = None  # set in main(); the helpers above read it


# --- Run dirs ----------------------------------------------------------------------------


def run_names(home):
    runs = os.path.join(home, "runs")
    return set(os.listdir(runs)) if os.path.isdir(runs) else set()


def read_attr(run_dir, name):
    try:
        with open(os.path.join(run_dir, ".guild", "attrs", name)) as f:
            return yaml.safe_load(f)
    except FileNotFoundError:
        return None


LOSS_RE = re.compile(r"^loss: (\S+)\s*$", re.M)


def read_run(home, name):
    run_dir = os.path.join(home, "runs", name)
    flags = read_attr(run_dir, "flags") or {}
    try:
        with open(os.path.join(run_dir, ".guild", "output"), errors="replace") as f:
            losses = LOSS_RE.findall(f.read())
    except FileNotFoundError:
        losses = []
    try:
        loss = float(losses[-1]) if losses else None
    except ValueError:
        loss = None
    try:
        with open(os.path.join(run_dir, ".guild", "opref")) as f:
            op = f.read().split()[-1]  # `script:DIR '' '' train.py`: the op name is last
    except (FileNotFoundError, IndexError):
        op = None
    return {"id": name, "op": op, "x": flags.get("x") if isinstance(flags, dict) else None,
            "loss": loss, "started": read_attr(run_dir, "started"),
            "stopped": read_attr(run_dir, "stopped"), "exit_status": read_attr(run_dir, "exit_status")}


def new_trials(home, before, script):
    """The runs of `script` among the dirs that appeared since `before`, by start time: a
    search's trials (its batch run is `script+gp` here, Guild's is `skopt gp`)."""
    runs = [read_run(home, name) for name in run_names(home) - before]
    trials = [r for r in runs if r["op"] == script]
    return sorted(trials, key=lambda r: (r["started"] or 0, r["id"]))


# --- 1. Search quality -------------------------------------------------------------------


def quality_search(tool, seed, n_trials, problems):
    """One tutorial search (gp; `tpe`: ours with -o tpe); returns the seed's summary."""
    args = ["run", "train.py", "x=[-2.0:2.0]", "--optimizer", "tpe" if tool == "tpe" else "gp",
            "--max-trials", str(n_trials), "--random-seed", str(seed), "-y"]
    if tool in ("ours", "tpe"):
        home, cmd, env = ENV.homes["quality"], ENV.ctl("quality", *args), ENV.ctl_env("quality")
    else:
        home, cmd, env = ENV.guild_homes["quality"], [ENV.guild, *args], ENV.guild_env("quality")
    before = run_names(home)
    dt, _ = run_checked(cmd, env, what="%s run (seed %d)" % (tool, seed))
    trials = new_trials(home, before, "train.py")
    scored = [t for t in trials if t["loss"] is not None and isinstance(t["x"], (int, float))]
    if len(trials) != n_trials or len(scored) != len(trials):
        problems.append("quality %s seed %d: %d trials, %d with an x and a loss (want %d)"
                        % (tool, seed, len(trials), len(scored), n_trials))
    out = {"seed": seed, "wall_s": dt, "trials": len(trials),
           "xs": [t["x"] for t in trials], "losses": [t["loss"] for t in trials]}
    if not scored:
        out.update(best_x=None, best_loss=None, ok=False)
        return out
    best = min(scored, key=lambda t: t["loss"])
    out.update(best_x=best["x"], best_loss=best["loss"],
               ok=abs(best["x"] - OPTIMUM_X) <= TOLERANCE)
    return out


def bench_quality(seeds, n_trials, problems):
    tools = ["ours", "tpe"] + (["guild"] if ENV.guild else [])
    start_daemon("quality")
    res = {t: [] for t in tools}
    try:
        for seed in range(seeds):
            for tool in tools:
                res[tool].append(quality_search(tool, seed, n_trials, problems))
            log("quality: seed %d/%d: %s" % (seed + 1, seeds, "  ".join(
                "%s best x %s%s (%.0f s)" % (t, fmt_x(res[t][-1]["best_x"]),
                                            "" if res[t][-1]["ok"] else " (miss)",
                                            res[t][-1]["wall_s"]) for t in tools)))
    finally:
        stop_daemon("quality", problems)
    out = {"seeds": seeds, "trials": n_trials, "optimum_x": OPTIMUM_X, "tolerance": TOLERANCE}
    for tool in tools:
        runs = res[tool]
        hits = sum(r["ok"] for r in runs)
        dist = [abs(r["best_x"] - OPTIMUM_X) for r in runs if r["best_x"] is not None]
        out[tool] = {"per_seed": runs, "hits": hits, "rate": hits / seeds,
                     "median_best_dist": median(dist),
                     "median_best_loss": median([r["best_loss"] for r in runs
                                                 if r["best_loss"] is not None]),
                     "median_wall_s": median([r["wall_s"] for r in runs])}
    return out


def fmt_x(x):
    return "-" if x is None else "%+.3f" % x


def ahead_search(algorithm, seed, n_trials, ahead):
    """One tutorial search in this process, as the daemon's sequential loop drives it: each
    trial's point asked once the previous trial's result is told, or (`ahead`, guildd.askahead)
    asked while the previous trial runs, before its result is told."""
    from guild_common.flagfuncs import search_dim
    from guildd import optimizers

    search = optimizers.new_search(algorithm, {}, {"x": search_dim("[-2.0:2.0]", "x")}, seed=seed)
    rng = random.Random(seed)
    trials = []
    following = search.ask()[0]
    for i in range(n_trials):
        current = following
        more = i + 1 < n_trials
        if ahead and more:
            following = search.ask()[0]
        loss = tutorial_loss(current["x"], rng)
        search.tell(current, loss)
        trials.append((current["x"], loss))
        if not ahead and more:
            following = search.ask()[0]
    best_x, best_loss = min(trials, key=lambda t: t[1])
    return {"seed": seed, "best_x": best_x, "best_loss": best_loss, "ok": abs(best_x - OPTIMUM_X) <= TOLERANCE}


def bench_ahead(seeds, n_trials):
    """Search quality with each point asked ahead against asked after each result, gp and tpe,
    same seeds and noise, in this process (no daemon: only the order of asks and tells differs)."""
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for algorithm in ("gp", "tpe"):
            res = {"seeds": seeds, "trials": n_trials}
            for mode in ("after", "ahead"):
                runs = [ahead_search(algorithm, seed, n_trials, mode == "ahead") for seed in range(seeds)]
                res[mode] = {"per_seed": runs, "hits": sum(r["ok"] for r in runs),
                             "median_best_dist": median([abs(r["best_x"] - OPTIMUM_X) for r in runs]),
                             "median_best_loss": median([r["best_loss"] for r in runs])}
                log("ahead: %s asked %s: %d/%d hits" % (algorithm, mode, res[mode]["hits"], seeds))
            out[algorithm] = res
    return out


# --- 2. Speed ----------------------------------------------------------------------------


def others_running():
    """Command lines of other bench/ scripts and pytest runs going on now (not this process,
    not its ancestors)."""
    mine = {os.getpid()} | {p.pid for p in psutil.Process().parents()}
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmd = proc.info["cmdline"] or []
        if proc.info["pid"] in mine:
            continue
        if any(OTHER_BENCH.search(a) or os.path.basename(a) == "pytest" for a in cmd[:3]):
            found.append(" ".join(cmd)[:200])
    return found


def wait_for_others(problems):
    t0 = time.monotonic()
    while True:
        found = others_running()
        if not found:
            waited = time.monotonic() - t0
            if waited > 1:
                log("speed: waited %.0f s for other benchmarks" % waited)
            return waited
        if time.monotonic() - t0 >= WAIT_OTHERS_S:
            problems.append("speed: timed while another benchmark ran: %s" % "; ".join(found))
            return time.monotonic() - t0
        log("speed: waiting for %s" % "; ".join(found))
        time.sleep(WAIT_POLL_S)


def speed_case(case, n_trials, problems):
    args = ["run", "sleep.py", "x=[-2.0:2.0]", "--optimizer", "gp", "--max-trials", str(n_trials),
            "--random-seed", str(SPEED_SEED), "-y"]
    if case == "parallel":
        home, env = ENV.homes["speed"], ENV.ctl_env("speed")
        cmd = ENV.ctl("speed", *args, "--parallel", str(PARALLEL), "--gpus", "1")
    elif case == "sequential":
        home, env = ENV.homes["speed"], ENV.ctl_env("speed")
        cmd = ENV.ctl("speed", *args, "--parallel", "1")
    else:
        home, env, cmd = ENV.guild_homes["speed"], ENV.guild_env("speed"), [ENV.guild, *args]
    before = run_names(home)
    launched = time.time()
    dt, _ = run_checked(cmd, env, what="%s search" % case)
    returned = time.time()
    trials = new_trials(home, before, "sleep.py")
    timed = [t for t in trials if isinstance(t["started"], int) and isinstance(t["stopped"], int)]
    bad = [t for t in trials if t["exit_status"] != 0 or t["loss"] is None]
    valid = len(trials) == n_trials and len(timed) == len(trials) and not bad
    if not valid:
        problems.append("speed %s: %d trials, %d with started and stopped, %d failed or without "
                        "a loss (want %d)" % (case, len(trials), len(timed), len(bad), n_trials))
    gaps = [(b["started"] - a["stopped"]) / 1e6 for a, b in zip(timed, timed[1:])]
    out = {"wall_s": dt, "trials": len(trials), "valid": valid,
           "trial_s": median([(t["stopped"] - t["started"]) / 1e6 for t in timed]),
           "max_concurrent": max_concurrent(timed)}
    if timed:
        out["lead_in_s"] = timed[0]["started"] / 1e6 - launched
        out["tail_s"] = returned - max(t["stopped"] for t in timed) / 1e6
    if case != "parallel":
        out.update(gap_median_s=median(gaps), gap_p90_s=percentile(gaps, 90),
                   gap_max_s=max(gaps) if gaps else None, gaps_s=gaps)
        if out["max_concurrent"] > 1:
            problems.append("speed %s: %d trials overlapped" % (case, out["max_concurrent"]))
    elif out["max_concurrent"] < PARALLEL:
        problems.append("speed parallel: at most %d trials ran at once (want %d)"
                        % (out["max_concurrent"], PARALLEL))
    return out


def max_concurrent(trials):
    events = sorted([(t["started"], 1) for t in trials] + [(t["stopped"], -1) for t in trials],
                    key=lambda e: (e[0], e[1]))
    level = peak = 0
    for _, d in events:
        level += d
        peak = max(peak, level)
    return peak


def bench_speed(n_trials, rounds, problems):
    cases = ["parallel", "sequential"] + (["guild"] if ENV.guild else [])
    res = {"trials": n_trials, "rounds": rounds, "width": PARALLEL, "gpus": SIMULATED_GPUS,
           "waited_for_others_s": wait_for_others(problems)}
    start_daemon("speed")
    runs = {c: [] for c in cases}
    try:
        # A first search loads skopt into the daemon, so no timed case pays for it (and one
        # with Guild warms the disk cache for its packages).
        log("speed: warm-up (a 4-trial gp search each)")
        run_checked(ENV.ctl("speed", "run", "sleep.py", "x=[-2.0:2.0]", "--optimizer", "gp",
                            "--max-trials", "4", "-y"), ENV.ctl_env("speed"), what="warm-up")
        if ENV.guild:
            run_checked([ENV.guild, "run", "sleep.py", "x=[-2.0:2.0]", "--optimizer", "gp",
                         "--max-trials", "4", "-y"], ENV.guild_env("speed"), what="guild warm-up")
        for i in range(rounds):
            # Rotate the order so no case always follows the same neighbour.
            for case in cases[i % len(cases):] + cases[:i % len(cases)]:
                res["waited_for_others_s"] += wait_for_others(problems)
                load = os.getloadavg()[0]
                log("speed: round %d/%d: %s (%d trials; load average %.2f)"
                    % (i + 1, rounds, case, n_trials, load))
                r = speed_case(case, n_trials, problems)
                r["load_before"] = load
                others = others_running()
                if others:
                    problems.append("speed %s (round %d): another benchmark ran meanwhile: %s"
                                    % (case, i + 1, "; ".join(others)))
                runs[case].append(r)
                log("speed: %s %.1f s (trial %.2f s, %d at once%s)" % (
                    case, r["wall_s"], r["trial_s"] or 0, r["max_concurrent"],
                    ", trial end -> next start median %.0f ms" % (r["gap_median_s"] * 1000)
                    if r.get("gap_median_s") is not None else ""))
    finally:
        stop_daemon("speed", problems)
    for case in cases:
        rs = runs[case]
        res[case] = {"samples": rs, "wall_s": median([r["wall_s"] for r in rs]),
                     "trial_s": median([r["trial_s"] for r in rs if r["trial_s"] is not None]),
                     "lead_in_s": median([r["lead_in_s"] for r in rs if "lead_in_s" in r]),
                     "tail_s": median([r["tail_s"] for r in rs if "tail_s" in r]),
                     "max_concurrent": max(r["max_concurrent"] for r in rs),
                     "valid": all(r["valid"] for r in rs)}
        if case != "parallel":
            gaps = [g for r in rs for g in r["gaps_s"]]
            res[case].update(gap_median_s=median(gaps), gap_p90_s=percentile(gaps, 90),
                             gap_max_s=max(gaps) if gaps else None)
    for case in cases:
        # Everything but the trials' sleep, per trial: process start-up included.
        res[case]["cost_per_trial_s"] = (res[case]["wall_s"] - n_trials * TRIAL_SLEEP_S) / n_trials
    res["ratio_parallel"] = res["parallel"]["wall_s"] / res["sequential"]["wall_s"]
    if ENV.guild:
        res["ratio_sequential_guild"] = res["sequential"]["wall_s"] / res["guild"]["wall_s"]
        res["ratio_parallel_guild"] = res["parallel"]["wall_s"] / res["guild"]["wall_s"]
        res["ratio_cost_per_trial"] = (res["sequential"]["cost_per_trial_s"]
                                       / res["guild"]["cost_per_trial_s"])
        if res["guild"]["gap_median_s"]:
            res["ratio_gap"] = res["sequential"]["gap_median_s"] / res["guild"]["gap_median_s"]
            res["ratio_gap_p90"] = res["sequential"]["gap_p90_s"] / res["guild"]["gap_p90_s"]
    return res


# --- 3. Suggestion time ------------------------------------------------------------------


def suggest_points(k, seed=7):
    rng = random.Random(seed)
    xs = [rng.uniform(-2.0, 2.0) for _ in range(k)]
    return xs, [tutorial_loss(x, rng) for x in xs]


def bench_suggest(problems):
    """Our ask() and Guild's suggestion on the same points, interleaved: each round times every
    case once in this process, then once in a Guild process."""
    from guild_common.flagfuncs import search_dim

    wait_for_others(problems)
    t0 = time.perf_counter()
    from guildd import optimizers

    values = {"x": search_dim("[-2.0:2.0]", "x")}

    def told(k, seed):
        s = optimizers.Search("gp", {}, values, seed=seed)
        for x, y in zip(*suggest_points(k)):
            s.tell({"x": x}, y)
        return s

    told(5, 0).ask()  # warm-up: imports skopt and scikit-learn
    log("suggest: skopt loaded in %.2f s" % (time.perf_counter() - t0))
    cases = [(k, 0) for k in SUGGEST_TOLD] + [(SUGGEST_PENDING_TOLD, PARALLEL - 1)]
    ours = {("%d" % k if not pending else "%d+%dp" % (k, pending)): [] for k, pending in cases}
    guild = {"%d" % k: [] for k in SUGGEST_TOLD}
    guild_cases = [[k, *suggest_points(k)] for k in SUGGEST_TOLD]
    loop = {"%d" % k: [] for k in SUGGEST_TOLD}
    loop_all = []
    for rep in range(SUGGEST_REPS):
        for (k, pending), key in zip(cases, ours):
            s = told(k, rep)
            if pending:
                s.ask(pending)  # trials still running: the next ask lies about them
            t = time.perf_counter()
            s.ask()
            ours[key].append(time.perf_counter() - t)
        # As the daemon's sequential loop in part 2 uses it: one Search, ask, tell, ask, ...
        # with the same objective as SLEEP_PY's.
        s = optimizers.Search("gp", {}, values, seed=rep)
        for k in range(max(SUGGEST_TOLD) + 1):
            t = time.perf_counter()
            with warnings.catch_warnings():  # skopt: "evaluated at point [-2.0] before, ..."
                warnings.simplefilter("ignore")
                point = s.ask()[0]
            dt = time.perf_counter() - t
            if k >= s.flags["random-starts"]:
                loop_all.append(dt)
            if "%d" % k in loop:
                loop["%d" % k].append(dt)
            s.tell(point, (point["x"] + 0.3) ** 2)
        if ENV.guild:
            arg = json.dumps({"cases": guild_cases, "reps": 1, "seed": rep})
            python = os.path.join(ENV.guild_venv, "bin", "python")
            try:
                _, p = run_checked([python, "-c", GUILD_SUGGEST_PY, arg], ENV.guild_env("speed"),
                                   stdout=subprocess.PIPE, what="Guild's gp suggestion")
                for key, times in json.loads(p.stdout).items():
                    guild[key] += times
            except (RuntimeError, ValueError) as e:
                problems.append("suggest: Guild's suggestion could not be timed: %s" % e)
                break
        log("suggest: round %d/%d: ours %s; in a loop %s; guild %s" % (
            rep + 1, SUGGEST_REPS,
            ", ".join("%s %.0f ms" % (key, ts[-1] * 1000) for key, ts in ours.items()),
            ", ".join("%s %.0f ms" % (key, ts[-1] * 1000) for key, ts in loop.items()),
            ", ".join("%s %.0f ms" % (key, ts[-1] * 1000) for key, ts in guild.items() if ts) or "-"))
    return {"reps": SUGGEST_REPS,
            "ours": {key: {"median_s": median(ts), "samples_s": ts} for key, ts in ours.items()},
            "loop": {key: {"median_s": median(ts), "samples_s": ts} for key, ts in loop.items()},
            "loop_model_asks": {"median_s": median(loop_all), "p90_s": percentile(loop_all, 90),
                                "count": len(loop_all)},
            "guild": {key: {"median_s": median(ts), "samples_s": ts}
                      for key, ts in guild.items() if ts}}


# --- Report ------------------------------------------------------------------------------


def build_rows(res):
    rows = []  # (figure, measured, baseline, ratio, target, met)
    q = res.get("quality")
    if q:
        ours, guild = q["ours"], q.get("guild")
        fig = "gp quality: best x within %.2f of %.1f (%d seeds)" % (q["tolerance"], q["optimum_x"],
                                                                   q["seeds"])
        measured = "ours %d/%d (%.0f%%)" % (ours["hits"], q["seeds"], 100 * ours["rate"])
        if guild:
            rows.append((fig, measured, "guild %d/%d (%.0f%%)" % (guild["hits"], q["seeds"],
                                                                 100 * guild["rate"]),
                         "%.2f" % (ours["rate"] / guild["rate"]) if guild["rate"] else "-",
                         ">= guild", yes(ours["rate"] >= guild["rate"])))
            rows.append(("gp quality: median |best x - opt|", "%.3f" % ours["median_best_dist"],
                         "%.3f" % guild["median_best_dist"], "", "(reference)", ""))
            rows.append(("gp quality: median best loss", "%.3f" % ours["median_best_loss"],
                         "%.3f" % guild["median_best_loss"], "", "(reference)", ""))
            rows.append(("tutorial search wall (%d trials), median" % q["trials"],
                         fmt_s(ours["median_wall_s"]),
                         fmt_s(guild["median_wall_s"]),
                         "%.2fx" % (ours["median_wall_s"] / guild["median_wall_s"]),
                         "(reference)", ""))
        else:
            rows.append((fig, measured, "Guild skipped", "", ">= guild", "-"))
        tpe = q["tpe"]
        rows.append(("tpe quality: best x within %.2f of %.1f" % (q["tolerance"], q["optimum_x"]),
                     "tpe %d/%d (%.0f%%)" % (tpe["hits"], q["seeds"], 100 * tpe["rate"]),
                     "guild gp %d/%d" % (guild["hits"], q["seeds"]) if guild else "ours gp %d/%d" % (ours["hits"], q["seeds"]),
                     "", "(reference)", ""))
        rows.append(("tpe quality: median |best x - opt| / best loss",
                     "%.3f / %.3f" % (tpe["median_best_dist"], tpe["median_best_loss"]),
                     "%s gp %.3f / %.3f" % (("guild", guild["median_best_dist"], guild["median_best_loss"]) if guild
                                            else ("ours", ours["median_best_dist"], ours["median_best_loss"])),
                     "", "(reference)", ""))
    for algorithm, a in sorted(res.get("ahead", {}).items()):
        now, ahead = a["after"], a["ahead"]
        rows.append(("%s asked ahead vs after each result: hits (%d seeds)" % (algorithm, a["seeds"]),
                     "ahead %d/%d" % (ahead["hits"], a["seeds"]), "after %d/%d" % (now["hits"], a["seeds"]),
                     "", "same within noise", ""))
        rows.append(("%s asked ahead vs after: median |best x - opt| / best loss" % algorithm,
                     "%.3f / %.3f" % (ahead["median_best_dist"], ahead["median_best_loss"]),
                     "%.3f / %.3f" % (now["median_best_dist"], now["median_best_loss"]), "", "(reference)", ""))
    s = res.get("speed")
    if s:
        n = s["trials"]
        par, seq, g = s["parallel"], s["sequential"], s.get("guild")
        rows.append(("%d-trial gp, --parallel %d --gpus 1" % (n, s["width"]),
                     fmt_s(par["wall_s"]), "sequential " + fmt_s(seq["wall_s"]),
                     "%.3fx" % s["ratio_parallel"], "<= 0.35x",
                     yes(s["ratio_parallel"] <= 0.35, par["valid"] and seq["valid"])))
        rows.append(("%d-trial gp, parallel: trials at once" % n, str(par["max_concurrent"]), "",
                     "", "== %d" % s["width"], yes(par["max_concurrent"] == s["width"])))
        if g:
            rows.append(("%d-trial gp, sequential: ours vs guild" % n, fmt_s(seq["wall_s"]),
                         "guild " + fmt_s(g["wall_s"]), "%.3fx" % s["ratio_sequential_guild"],
                         "(reference)", ""))
            rows.append(("%d-trial gp, parallel: ours vs guild" % n, fmt_s(par["wall_s"]),
                         "guild " + fmt_s(g["wall_s"]), "%.3fx" % s["ratio_parallel_guild"],
                         "(reference)", ""))
        if seq["gap_median_s"] is not None:
            rows.append(("trial end -> next start (seq), median (ask ahead)", fmt_s(seq["gap_median_s"]),
                         "", "", "< 30 ms", yes(seq["gap_median_s"] < 0.030, seq["valid"])))
        if g and "ratio_gap" in s:
            rows.append(("trial end -> next start (seq), median", fmt_s(seq["gap_median_s"]),
                         "guild " + fmt_s(g["gap_median_s"]), "%.3fx" % s["ratio_gap"],
                         "<= 0.5x", yes(s["ratio_gap"] <= 0.5, seq["valid"] and g["valid"])))
            rows.append(("trial end -> next start (seq), p90", fmt_s(seq["gap_p90_s"]),
                         "guild " + fmt_s(g["gap_p90_s"]), "%.3fx" % s["ratio_gap_p90"],
                         "(reference)", ""))
            rows.append(("trial end -> next start (seq), max", fmt_s(seq["gap_max_s"]),
                         "guild " + fmt_s(g["gap_max_s"]), "", "(reference)", ""))
            rows.append(("(wall - %d x 1 s sleep) / %d trials (seq)" % (n, n),
                         fmt_s(seq["cost_per_trial_s"]), "guild " + fmt_s(g["cost_per_trial_s"]),
                         "%.3fx" % s["ratio_cost_per_trial"], "(reference)", ""))
        else:
            rows.append(("trial end -> next start (seq), median", fmt_s(seq["gap_median_s"]),
                         "Guild skipped", "", "<= 0.5x", "-"))
        for case in ("parallel", "sequential", "guild"):
            c = s.get(case)
            if not c:
                continue
            rows.append(("%s: trial started->stopped, median" % case, fmt_s(c["trial_s"]),
                         "", "", "(breakdown)", ""))
            rows.append(("%s: launch -> 1st start / last stop -> exit" % case,
                         "%s / %s" % (fmt_s(c["lead_in_s"]), fmt_s(c["tail_s"])), "", "",
                         "(breakdown)", ""))
    sg = res.get("suggest")
    if sg:
        for key, ours in sg["ours"].items():
            k, _, pending = key.partition("+")
            g = sg["guild"].get(key)
            fig = "gp suggestion, %s told%s" % (k, ", %s pending" % pending[:-1] if pending else "")
            rows.append((fig, fmt_s(ours["median_s"]), "guild " + fmt_s(g["median_s"]) if g else "",
                         "%.3fx" % (ours["median_s"] / g["median_s"]) if g else "",
                         "(reference)", ""))
        for key, ours in sg["loop"].items():
            g = sg["guild"].get(key)
            rows.append(("gp suggestion, %s told, in a tell/ask loop" % key, fmt_s(ours["median_s"]),
                         "guild " + fmt_s(g["median_s"]) if g else "",
                         "%.3fx" % (ours["median_s"] / g["median_s"]) if g else "",
                         "(reference)", ""))
        la = sg["loop_model_asks"]
        rows.append(("gp suggestion in the loop, all model asks p50 / p90",
                     "%s / %s" % (fmt_s(la["median_s"]), fmt_s(la["p90_s"])), "", "",
                     "(reference)", ""))
    return rows


def print_seeds(q, out):
    tools = [t for t in ("ours", "tpe", "guild") if t in q]
    print("per-seed best trial (x, loss; * = within %.2f of %.1f)" % (q["tolerance"], q["optimum_x"]),
          file=out)
    print(("seed  " + "  ".join("%-20s" % t for t in tools)).rstrip(), file=out)
    for i in range(q["seeds"]):
        cells = []
        for t in tools:
            r = q[t]["per_seed"][i]
            cells.append("%-20s" % ("%s %s%s" % (fmt_x(r["best_x"]),
                                                 "-" if r["best_loss"] is None else "%+.3f" % r["best_loss"],
                                                 " *" if r["ok"] else "")))
        print(("%4d  %s" % (r["seed"], "  ".join(cells))).rstrip(), file=out)


# --- Main --------------------------------------------------------------------------------


def setup(args):
    global ENV
    guild_venv = None if args.skip_guild else args.guild
    if guild_venv and not os.path.isfile(os.path.join(guild_venv, "bin", "guild")):
        log("Guild 0.9 not found at %s: Guild figures are skipped. Install it with %s"
            % (guild_venv, GUILD_INSTALLER))
        guild_venv = None
    root = tempfile.mkdtemp(prefix="guildd-bench-batches-")
    ENV = Env(root, exe_beside_python("guildctl", "batches.py"), guild_venv)
    log("bench dir %s\n  guildctl %s\n  guild    %s" % (root, ENV.guildctl, ENV.guild or "(skipped)"))


def teardown(args, problems):
    if ENV is None:
        return
    for part in list(ENV.started):
        stop_daemon(part, problems)
    if args.keep:
        log("kept %s" % ENV.root)
    else:
        shutil.rmtree(ENV.root, ignore_errors=True)


def main(argv=None):
    global WAIT_OTHERS_S
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--guild", default=DEFAULT_GUILD_VENV, metavar="PATH",
                    help="Guild AI 0.9 venv (default %(default)s)")
    ap.add_argument("--seeds", type=int, default=20, metavar="N",
                    help="quality: seeds searched by each tool (default %(default)s)")
    ap.add_argument("--quality-trials", type=int, default=QUALITY_TRIALS, metavar="N",
                    help="quality: trials per search (default %(default)s)")
    ap.add_argument("--trials", type=int, default=40, metavar="N",
                    help="speed: trials per search (default %(default)s)")
    ap.add_argument("--rounds", type=int, default=1, metavar="N",
                    help="speed: searches per case, median taken (default %(default)s)")
    ap.add_argument("--wait-others", type=float, default=WAIT_OTHERS_S, metavar="S",
                    help="speed: wait up to S seconds for other benchmarks and tests before each "
                         "timed case (default %(default)s; 0: time at once, noted as a problem)")
    ap.add_argument("--skip-guild", action="store_true", help="no Guild 0.9 baselines")
    ap.add_argument("--skip-quality", action="store_true", help="skip part 1 (search quality)")
    ap.add_argument("--skip-ahead", action="store_true",
                    help="skip part 4 (quality asked ahead vs after each result, in process)")
    ap.add_argument("--skip-speed", action="store_true",
                    help="skip parts 2 and 3 (wall times, overhead, suggestion time)")
    ap.add_argument("--json", action="store_true",
                    help="print a JSON object on stdout (the table then goes to stderr)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dirs")
    args = ap.parse_args(argv)
    WAIT_OTHERS_S = args.wait_others
    if args.seeds < 1 or args.quality_trials < 1 or args.trials < 2 or args.rounds < 1:
        ap.error("--seeds, --quality-trials and --rounds must be >= 1, --trials >= 2")
    problems, res = [], {}
    t0 = time.perf_counter()
    try:
        setup(args)
        if not args.skip_quality:
            log("quality: %d seeds, %d-trial gp searches of train.py" % (args.seeds, args.quality_trials))
            res["quality"] = bench_quality(args.seeds, args.quality_trials, problems)
        if not args.skip_ahead:
            log("ahead: %d seeds, %d-trial gp and tpe searches asked ahead and after" % (args.seeds, args.quality_trials))
            res["ahead"] = bench_ahead(args.seeds, args.quality_trials)
        if not args.skip_speed:
            res["speed"] = bench_speed(args.trials, args.rounds, problems)
            res["suggest"] = bench_suggest(problems)
    finally:
        teardown(args, problems)
    res["problems"] = problems
    res["elapsed_s"] = time.perf_counter() - t0
    res["tools"] = {"guildctl": ENV.guildctl, "guild": ENV.guild}
    out = sys.stderr if args.json else sys.stdout
    print("", file=out)
    if "quality" in res:
        print_seeds(res["quality"], out)
        print("", file=out)
    print_table(build_rows(res), out)
    print("\nproblems: %s" % ("none" if not problems else ""), file=out)
    for p in problems:
        print("  - " + p, file=out)
    print("elapsed %.0f s" % res["elapsed_s"], file=out)
    if args.json:
        json.dump(res, sys.stdout, indent=2, sort_keys=True)
        print()


if __name__ == "__main__":
    main()
