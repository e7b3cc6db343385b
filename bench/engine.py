"""Engine benchmark: guildd + guildctl against plain Python and Guild AI 0.9, as ratios.

    python bench/engine.py [--guild PATH_TO_GUILD_VENV] [--runs N] [--lines N] [--json]

Every figure is a ratio of two things measured in the same invocation, interleaved, because
the machines this runs on are noisy: absolute times mean little, ratios travel. Nothing is
asserted; the closing table says whether each target is met.

1. Start-up overhead: `guildctl run noop.py -y` against a warm daemon vs `python noop.py`,
   and the same for `guild run noop.py -y` (as users run it, and with NO_PIP_FREEZE=1).
   Target: overhead_ours / overhead_guild <= 1/3.
2. Output capture: a script printing --lines lines (`step: N` / `loss: X` alternating), plain
   Python to /dev/null vs `guildctl run` in the foreground and in the background (until
   `guildctl watch` returns). Target <= 1.5x Python. Then every scalar must be recorded:
   `runs info --json` scalars.loss == [last value, last step] and the run's TF event files
   hold one `loss` event per step.
3. Watch latency: a script printing time.time() every 0.2 s through `guildctl run`; the
   delay until the line reaches this process, p50/p95/max.

It makes its own temp GUILD_HOMEs and project dir, never touches ~/.guild, and stops the
daemon it started. Progress goes to stderr; with --json the table goes to stderr too and
stdout holds one JSON object.
"""

import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from benchlib import DEFAULT_GUILD_VENV, GUILD_INSTALLER, exe_beside_python, fmt_s, log, median, percentile, print_table, yes

GUILD_CAPTURE_BUDGET_S = 120  # Guild's capture run is ~28x Python; scale it down past this
POLL_S = 0.02

NOOP_PY = "pass\n"
CAPTURE_PY = """\
for i in range({pairs}):
    print("step: %d" % i)
    print("loss: %f" % (1.0 / (i + 1)))
"""
LATENCY_PY = """\
import time
for _ in range(20):
    print(f"t={time.time():.6f}", flush=True)
    time.sleep(0.2)
"""


# Tools


class Env:
    """Paths and environments for one benchmark invocation (all under one temp dir)."""

    def __init__(self, root, guildctl, guild_venv):
        self.root = root
        self.project = os.path.join(root, "project")
        self.home = os.path.join(root, "guildctl-home")
        self.guild_home = os.path.join(root, "guild-home")
        self.guildctl = guildctl
        self.guild = os.path.join(guild_venv, "bin", "guild") if guild_venv else None
        for d in (self.project, self.home, self.guild_home):
            os.makedirs(d)
        base = {k: v for k, v in os.environ.items()
                if k not in ("GUILD_HOME", "NO_PIP_FREEZE", "VIRTUAL_ENV")}
        # guildctl gets -H on every call; GUILD_HOME too, so nothing can fall back to ~/.guild.
        self.ctl_env = dict(base, GUILD_HOME=self.home, GUILDCTL_NO_AUTOSTART="1")
        self.guild_env = dict(base, GUILD_HOME=self.guild_home)
        self.guild_env_npf = dict(self.guild_env, NO_PIP_FREEZE="1")
        self.python = sys.executable  # replaced by the daemon's own interpreter in setup()

    def ctl(self, *args):
        return [self.guildctl, "-H", self.home, *args]


def write_scripts(env, pairs):
    for name, text in (("noop.py", NOOP_PY), ("capture.py", CAPTURE_PY.format(pairs=pairs)),
                       ("latency.py", LATENCY_PY)):
        write_script(env, name, text)


def write_script(env, name, text):
    with open(os.path.join(env.project, name), "w") as f:
        f.write(text)


def run_checked(cmd, env, stdout=subprocess.DEVNULL, timeout=600, what=None):
    """Runs cmd in the project dir; returns (seconds, CompletedProcess). Raises on failure."""
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=ENV.project, env=env, stdout=stdout, stderr=subprocess.PIPE,
                       timeout=timeout)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError("%s exited %d: %s" % (what or " ".join(cmd), p.returncode,
                                                 p.stderr.decode(errors="replace").strip()[-2000:]))
    return dt, p


def ctl_json(*args):
    _, p = run_checked(ENV.ctl(*args), ENV.ctl_env, stdout=subprocess.PIPE)
    return json.loads(p.stdout)


ENV = None  # set in main(); the helpers above read it


# 1. Start-up overhead


def bench_noop(runs, problems):
    env = ENV
    cases = [("python", [env.python, "noop.py"], env.ctl_env),
             ("guildctl", env.ctl("run", "noop.py", "-y"), env.ctl_env)]
    if env.guild:
        cases += [("guild", [env.guild, "run", "noop.py", "-y"], env.guild_env),
                  ("guild_npf", [env.guild, "run", "noop.py", "-y"], env.guild_env_npf)]
    log("noop: warm-up (one run each)")
    for name, cmd, cenv in cases:
        run_checked(cmd, cenv, what=name)
    times = {name: [] for name, _, _ in cases}
    for i in range(runs):
        # Rotate the order so no tool always follows the same neighbour.
        order = cases[i % len(cases):] + cases[:i % len(cases)]
        for name, cmd, cenv in order:
            dt, _ = run_checked(cmd, cenv, what=name)
            times[name].append(dt)
        log("noop: round %d/%d: %s" % (i + 1, runs, "  ".join(
            "%s %.0f ms" % (n, times[n][-1] * 1000) for n, _, _ in cases)))
    med = {n: median(ts) for n, ts in times.items()}
    res = {"runs": runs, "median_s": med, "samples_s": times}
    res["overhead_ours_s"] = med["guildctl"] - med["python"]
    if env.guild:
        res["overhead_guild_s"] = med["guild"] - med["python"]
        res["overhead_guild_npf_s"] = med["guild_npf"] - med["python"]
        res["ratio"] = res["overhead_ours_s"] / res["overhead_guild_s"]
        res["ratio_npf"] = res["overhead_ours_s"] / res["overhead_guild_npf_s"]
    latest = ctl_json("runs", "info", "--json")
    if latest.get("status") != "completed" or latest.get("exit_status") != 0:
        problems.append("noop: latest run is %r (exit %r) right after `guildctl run` returned"
                        % (latest.get("status"), latest.get("exit_status")))
    return res


# 2. Output capture


RUN_ID_RE = re.compile(r"\b([0-9a-f]{32})\b")


def run_status(run_id):
    # `runs list --json` keys times as µs since the epoch (Guild 0.9's list format).
    return next(r for r in ctl_json("runs", "list", run_id, "--json") if r["id"] == run_id)


def bench_capture_background():
    """Seconds from launching `run --background` until `watch <id>` returns, plus the id."""
    t0 = time.perf_counter()
    _, p = run_checked(ENV.ctl("run", "capture.py", "-y", "--background"), ENV.ctl_env,
                       stdout=subprocess.PIPE, what="guildctl run --background")
    m = RUN_ID_RE.search(p.stdout.decode() + p.stderr.decode())
    if not m:
        raise RuntimeError("no run id in `run --background` output: %r" % p.stdout)
    run_id = m.group(1)
    run_checked(ENV.ctl("watch", run_id), ENV.ctl_env, what="guildctl watch")
    return time.perf_counter() - t0, run_id, time.time()


def wait_completed(run_id, timeout=120):
    """Polls `runs info` every POLL_S until the run is no longer running; returns (info, s)."""
    t0 = time.perf_counter()
    while True:
        info = run_status(run_id)
        if info.get("status") not in ("running", "pending", "staged"):
            return info, time.perf_counter() - t0
        if time.perf_counter() - t0 > timeout:
            return info, time.perf_counter() - t0
        time.sleep(POLL_S)


def count_tfevents(run_dir, tag="loss"):
    """(events for `tag`, seconds) over the run's event files, read by TensorBoard itself."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    t0 = time.perf_counter()
    n, files = 0, sorted(glob.glob(os.path.join(run_dir, ".guild", "events.out.tfevents.*")))
    for path in files:
        acc = EventAccumulator(path, size_guidance={"scalars": 0})
        acc.Reload()
        if tag in acc.Tags().get("scalars", []):
            n += len(acc.Scalars(tag))
    return n, len(files), time.perf_counter() - t0


def verify_scalars(label, run_id, pairs, problems, tfevents):
    """Checks a capture run recorded every scalar; returns a dict of what it found."""
    info = ctl_json("runs", "info", run_id, "--json")  # the scalars, once all are indexed
    out = {"run_id": run_id, "status": info.get("status"), "exit_status": info.get("exit_status")}
    if info.get("status") != "completed":
        # The final status is written after indexing, so anything else is worth a look.
        _, waited = wait_completed(run_id)
        info = ctl_json("runs", "info", run_id, "--json")
        problems.append("%s run %s: status %r when checked, %r after %.2f s more polling"
                        % (label, run_id[:8], out["status"], info.get("status"), waited))
        out["status_after_wait"] = info.get("status")
    loss = (info.get("scalars") or {}).get("loss")
    out["scalars_loss"] = loss
    want_step, want_val = pairs - 1, 1.0 / pairs
    ok = (isinstance(loss, list) and len(loss) == 2 and loss[1] == want_step
          and abs(loss[0] - float("%f" % want_val)) < 1e-6)
    out["scalars_ok"] = ok
    if not ok:
        problems.append("%s run %s: scalars.loss = %r, want [%f, %d]"
                        % (label, run_id[:8], loss, want_val, want_step))
    if tfevents:
        n, nfiles, secs = count_tfevents(info["run_dir"])
        out.update(tfevents_loss=n, tfevents_files=nfiles, tfevents_read_s=secs,
                   tfevents_ok=(n == pairs))
        if n != pairs:
            problems.append("%s run %s: %d `loss` events in %d event file(s), want %d"
                            % (label, run_id[:8], n, nfiles, pairs))
    return out


def bench_guild_capture(pairs):
    """Guild 0.9 on the capture script once, scaled down if it would pass the budget."""
    env = ENV
    pilot = max(1000, pairs // 10)
    write_script(env, "capture_pilot.py", CAPTURE_PY.format(pairs=pilot))
    py_pilot = median([run_checked([env.python, "capture_pilot.py"], env.ctl_env)[0]
                       for _ in range(3)])
    g_pilot, _ = run_checked([env.guild, "run", "capture_pilot.py", "-y"], env.guild_env,
                             what="guild run (pilot)")
    projected = g_pilot * pairs / pilot
    log("capture: guild pilot %d pairs: %.2f s (python %.3f s); projected full %.1f s"
        % (pilot, g_pilot, py_pilot, projected))
    if projected <= GUILD_CAPTURE_BUDGET_S:
        py = median([run_checked([env.python, "capture.py"], env.ctl_env)[0] for _ in range(3)])
        g, _ = run_checked([env.guild, "run", "capture.py", "-y"], env.guild_env, what="guild run")
        return {"pairs": pairs, "scaled": False, "guild_s": g, "python_s": py, "ratio": g / py}
    return {"pairs": pilot, "scaled": True, "guild_s": g_pilot, "python_s": py_pilot,
            "ratio": g_pilot / py_pilot, "projected_full_s": projected}


def bench_capture(reps, pairs, problems):
    env = ENV
    times = {"python": [], "pipe": [], "fg": [], "bg": []}
    fg_ids, bg_ids, run_s, exit_lag = [], [], [], []
    pipe = "%s -u capture.py | cat > /dev/null" % env.python
    log("capture: %d lines (%d step/loss pairs), %d rounds" % (2 * pairs, pairs, reps))
    for i in range(reps):
        dt, _ = run_checked([env.python, "capture.py"], env.ctl_env, what="python capture.py")
        times["python"].append(dt)
        dt, _ = run_checked(["sh", "-c", pipe], env.ctl_env, what=pipe)
        times["pipe"].append(dt)
        dt, _ = run_checked(env.ctl("run", "capture.py", "-y"), env.ctl_env,
                            what="guildctl run capture.py")
        times["fg"].append(dt)
        latest = ctl_json("runs", "info", "--json")
        fg_ids.append(latest["id"])
        if latest.get("status") != "completed":
            problems.append("capture fg: `guildctl run` returned while run %s was %r"
                            % (latest["id"][:8], latest.get("status")))
        dt, run_id, returned = bench_capture_background()
        times["bg"].append(dt)
        bg_ids.append(run_id)
        st = run_status(run_id)
        if st.get("started") and st.get("stopped"):
            # started/stopped are the run process's own times (µs), written by its shim.
            run_s.append((st["stopped"] - st["started"]) / 1e6)
            exit_lag.append(returned - st["stopped"] / 1e6)
        if st.get("status") != "completed":
            _, lag = wait_completed(run_id)
            problems.append("capture bg: `watch` returned while run %s was %r; completed %.0f ms"
                            " later" % (run_id[:8], st.get("status"), lag * 1000))
        log("capture: round %d/%d: python %.2f s, python -u | cat %.2f s, guildctl fg %.2f s, "
            "guildctl bg+watch %.2f s" % (i + 1, reps, times["python"][-1], times["pipe"][-1],
                                          times["fg"][-1], times["bg"][-1]))
    med = {k: median(v) for k, v in times.items()}
    res = {"rounds": reps, "pairs": pairs, "lines": 2 * pairs, "median_s": med,
           "samples_s": times, "ratio_fg": med["fg"] / med["python"],
           "ratio_bg": med["bg"] / med["python"], "ratio_pipe": med["pipe"] / med["python"],
           "bg_process_s": median(run_s), "bg_exit_to_watch_return_s": median(exit_lag)}
    log("capture: verifying scalars (TensorBoard reads the event files; slow)")
    checks = [verify_scalars("capture fg", rid, pairs, problems, tfevents=(k == reps - 1))
              for k, rid in enumerate(fg_ids)]
    checks += [verify_scalars("capture bg", rid, pairs, problems, tfevents=(k == reps - 1))
               for k, rid in enumerate(bg_ids)]
    res["checks"] = checks
    res["scalars_ok"] = all(c["scalars_ok"] for c in checks)
    tf = [c for c in checks if "tfevents_ok" in c]
    res["tfevents_ok"] = all(c["tfevents_ok"] for c in tf)
    res["tfevents_loss"] = [c["tfevents_loss"] for c in tf]
    if env.guild:
        log("capture: Guild 0.9 (once)")
        res["guild"] = bench_guild_capture(pairs)
    return res


# 3. Watch latency


def bench_latency(problems):
    proc = subprocess.Popen(ENV.ctl("run", "latency.py", "-y"), cwd=ENV.project, env=ENV.ctl_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
    delays = []
    while True:
        line = proc.stdout.readline()
        now = time.time()
        if not line:
            break
        m = re.match(rb"t=(\d+\.\d+)", line.strip())
        if m:
            delays.append((now - float(m.group(1))) * 1000.0)
    err = proc.stderr.read()
    rc = proc.wait()
    if rc != 0:
        problems.append("latency: guildctl exited %d: %s" % (rc, err.decode(errors="replace")))
    if len(delays) != 20:
        problems.append("latency: got %d timestamp lines, want 20" % len(delays))
    return {"samples_ms": delays, "p50_ms": percentile(delays, 50),
            "p95_ms": percentile(delays, 95), "max_ms": max(delays) if delays else None,
            "first_ms": delays[0] if delays else None,
            "p50_after_first_ms": percentile(delays[1:], 50),
            "max_after_first_ms": max(delays[1:]) if len(delays) > 1 else None}


# Report


def build_rows(res):
    rows = []  # (figure, measured, baseline, ratio, target, met)
    n = res["noop"]
    med = n["median_s"]
    rows.append(("noop: guildctl run (warm daemon)", fmt_s(med["guildctl"]),
                 "python " + fmt_s(med["python"]), "%.1fx" % (med["guildctl"] / med["python"]),
                 "", ""))
    if "ratio" in n:
        rows.append(("noop: guild run", fmt_s(med["guild"]), "python " + fmt_s(med["python"]),
                     "%.1fx" % (med["guild"] / med["python"]), "", ""))
        rows.append(("noop: guild run, NO_PIP_FREEZE=1", fmt_s(med["guild_npf"]),
                     "python " + fmt_s(med["python"]),
                     "%.1fx" % (med["guild_npf"] / med["python"]), "", ""))
        rows.append(("noop overhead (- python): ours vs guild", fmt_s(n["overhead_ours_s"]),
                     fmt_s(n["overhead_guild_s"]), "%.3f" % n["ratio"], "<= 0.333",
                     yes(n["ratio"] <= 1 / 3)))
        rows.append(("noop overhead: ours vs guild NO_PIP_FREEZE", fmt_s(n["overhead_ours_s"]),
                     fmt_s(n["overhead_guild_npf_s"]), "%.3f" % n["ratio_npf"], "<= 0.333",
                     yes(n["ratio_npf"] <= 1 / 3)))
    else:
        rows.append(("noop overhead (- python): ours vs guild",
                     fmt_s(n["overhead_ours_s"]), "Guild skipped", "", "<= 0.333", "-"))
    c = res["capture"]
    med = c["median_s"]
    base = "python " + fmt_s(med["python"])
    rows.append(("capture %dk lines: guildctl run fg" % (c["lines"] // 1000), fmt_s(med["fg"]),
                 base, "%.2fx" % c["ratio_fg"], "<= 1.5x", yes(c["ratio_fg"] <= 1.5)))
    rows.append(("capture: run --background + watch", fmt_s(med["bg"]), base,
                 "%.2fx" % c["ratio_bg"], "<= 1.5x", yes(c["ratio_bg"] <= 1.5)))
    rows.append(("capture: python -u | cat (pipe floor)", fmt_s(med["pipe"]), base,
                 "%.2fx" % c["ratio_pipe"], "(reference)", ""))
    if c["bg_process_s"] is not None:
        rows.append(("capture bg: run process started->stopped", fmt_s(c["bg_process_s"]), base,
                     "%.2fx" % (c["bg_process_s"] / med["python"]), "(breakdown)", ""))
        rows.append(("capture bg: stopped -> watch returned", fmt_s(c["bg_exit_to_watch_return_s"]),
                     "", "", "(breakdown)", ""))
    g = c.get("guild")
    if g:
        rows.append(("capture: guild run%s" % (" (%dk lines, scaled)" % (2 * g["pairs"] // 1000)
                                                 if g["scaled"] else ""),
                     fmt_s(g["guild_s"]), "python " + fmt_s(g["python_s"]),
                     "%.1fx" % g["ratio"], "(reference)", ""))
    checks = c["checks"]
    rows.append(("scalars.loss == [%g, %d] (%d runs)" % (1.0 / c["pairs"], c["pairs"] - 1,
                                                       len(checks)),
                 "%d/%d ok" % (sum(x["scalars_ok"] for x in checks), len(checks)), "", "",
                 "all", yes(c["scalars_ok"])))
    rows.append(("tfevents `loss` events", ", ".join(str(x) for x in c["tfevents_loss"]),
                 str(c["pairs"]), "", "== %d" % c["pairs"], yes(c["tfevents_ok"])))
    lat = res["latency"]
    if lat["samples_ms"]:
        rows.append(("watch latency p50 / p95 / max", "%.1f / %.1f / %.1f ms" % (
            lat["p50_ms"], lat["p95_ms"], lat["max_ms"]), "", "", "(reference)", ""))
        rows.append(("watch latency first line", "%.1f ms" % lat["first_ms"], "", "",
                     "(reference)", ""))
        if lat["max_after_first_ms"] is not None:
            rows.append(("watch latency lines 2..20 p50 / max", "%.1f / %.1f ms" % (
                lat["p50_after_first_ms"], lat["max_after_first_ms"]), "", "", "(reference)", ""))
    return rows


# Main


def setup(args, problems):
    global ENV
    guild_venv = args.guild
    if not os.path.isfile(os.path.join(guild_venv, "bin", "guild")):
        log("Guild 0.9 not found at %s: Guild figures are skipped. Install it with %s"
            % (guild_venv, GUILD_INSTALLER))
        guild_venv = None
    root = tempfile.mkdtemp(prefix="guildd-bench-")
    ENV = Env(root, exe_beside_python("guildctl", "engine.py"), guild_venv)
    write_scripts(ENV, args.lines // 2)
    # The baseline is the interpreter the daemon runs scripts with, not whatever `python` is.
    _, p = run_checked(ENV.ctl("run", "noop.py", "--print-cmd"), ENV.ctl_env,
                       stdout=subprocess.PIPE, what="guildctl run --print-cmd")
    ENV.python = p.stdout.decode().split()[0]
    log("bench dir %s\n  guildctl %s\n  python   %s\n  guild    %s"
        % (root, ENV.guildctl, ENV.python, ENV.guild or "(skipped)"))
    t, p = run_checked(ENV.ctl("daemon", "start"), ENV.ctl_env, stdout=subprocess.PIPE,
                       what="guildctl daemon start")
    log("daemon started in %.2f s: %s" % (t, p.stdout.decode().strip()))


def teardown(args, problems):
    if ENV is None:
        return
    try:
        p = subprocess.run(ENV.ctl("daemon", "stop"), env=ENV.ctl_env, capture_output=True,
                           timeout=60)
        log("daemon stop: %s" % (p.stdout + p.stderr).decode(errors="replace").strip())
        if p.returncode != 0:
            problems.append("`guildctl daemon stop` exited %d" % p.returncode)
    except subprocess.TimeoutExpired:
        problems.append("`guildctl daemon stop` did not return in 60 s")
    if args.keep:
        log("kept %s" % ENV.root)
    else:
        shutil.rmtree(ENV.root, ignore_errors=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--guild", default=DEFAULT_GUILD_VENV, metavar="PATH",
                    help="Guild AI 0.9 venv (default %(default)s)")
    ap.add_argument("--runs", type=int, default=10, metavar="N",
                    help="noop runs per tool, median taken (default %(default)s)")
    ap.add_argument("--lines", type=int, default=200_000, metavar="N",
                    help="output lines of the capture script, half step, half loss "
                         "(default %(default)s)")
    ap.add_argument("--capture-runs", type=int, default=3, metavar="N",
                    help="capture rounds, median taken (default %(default)s)")
    ap.add_argument("--json", action="store_true",
                    help="print a JSON object on stdout (the table then goes to stderr)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dirs")
    args = ap.parse_args(argv)
    if args.lines < 2 or args.runs < 1 or args.capture_runs < 1:
        ap.error("--lines must be >= 2, --runs and --capture-runs >= 1")
    problems, res = [], {}
    t0 = time.perf_counter()
    try:
        setup(args, problems)
        res["noop"] = bench_noop(args.runs, problems)
        res["capture"] = bench_capture(args.capture_runs, args.lines // 2, problems)
        log("latency: 20 lines, 0.2 s apart")
        res["latency"] = bench_latency(problems)
    finally:
        teardown(args, problems)
    res["problems"] = problems
    res["elapsed_s"] = time.perf_counter() - t0
    res["tools"] = {"guildctl": ENV.guildctl, "python": ENV.python, "guild": ENV.guild}
    out = sys.stderr if args.json else sys.stdout
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
