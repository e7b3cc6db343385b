"""Pruning benchmark: how much trial time `--prune` saves on learning curves with a known final
value, and whether the search still finds as good a trial.

    python bench/pruning.py [--seeds 20] [--trials 20] [--steps 40] [--delay 0.04]
                            [--pruner median] [-Fp NAME=VAL ...] [--parallel 1] [--keep] [--json]

Each trial runs curve.py: it prints `step: N` and `loss: V` every --delay seconds for --steps
steps, the loss decaying exponentially from 1 toward an asymptote set by its flag x,
0.1 + 2 (x - 0.3)^2 (so the best trials have x near 0.3), plus Gaussian noise (sd NOISE) drawn
from a generator seeded by x, so a trial prints the same curve in both searches. For each
seed: `guildctl run curve.py x=[0.0:1.0] --optimizer random --max-trials T --random-seed SEED`,
once as it is and once with `--prune PRUNER` (flags -Fp), side by side on one daemon, the order
alternating from seed to seed. Both searches draw the same trials (same seed), so the
difference is pruning alone.

Figures, from the trials' `.guild/attrs/started` and `stopped` (µs), their flags, their last
`loss:` line and their `pruned` attr: total trial time (the sum of stopped - started) of each
search and the share pruning saved; the best final loss among each search's completed trials
(a pruned trial has no final loss). Targets: at least 40% of the total trial time saved over
all seeds, and the best final loss the same within noise: the mean over the seeds of (best with
pruning - best without) at most NOISE. A pruner may now and then stop the best trial early
(its curve, noisy, looked worse than the median at an early step): the seeds where the best
differs by more than 2 NOISE are counted. Nothing is asserted: the closing table says whether
each target is met.
"""

import argparse
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

import yaml

from benchlib import exe_beside_python, log, median, print_table, report, start_guildd, stop_process

NOISE = 0.01

CURVE = """\
import math
import random
import time
x = 0.5
steps = {steps}
delay = {delay}
asymptote = 0.1 + 2 * (x - 0.3) ** 2
rng = random.Random(repr(x))
for step in range(steps):
    loss = asymptote + (1 - asymptote) * math.exp(-0.15 * step) + rng.gauss(0, {noise})
    print("step: %d" % step)
    print("loss: %f" % loss, flush=True)
    time.sleep(delay)
"""


def read_trial(run_dir):
    """(x, seconds it ran, final loss or None, pruned attr or None) of one trial run dir."""
    attrs = run_dir / ".guild" / "attrs"

    def attr(name):
        path = attrs / name
        return yaml.safe_load(path.read_text()) if path.exists() else None

    losses = [line.split(":", 1)[1] for line in (run_dir / ".guild" / "output").read_text().splitlines() if line.startswith("loss:")]
    seconds = (attr("stopped") - attr("started")) / 1e6
    pruned = attr("pruned")
    final = float(losses[-1]) if losses and pruned is None and attr("exit_status") == 0 else None
    return attr("flags")["x"], seconds, final, pruned


def search(guildctl, env, project, seed, args, prune):
    """Runs one search; its trials (read_trial tuples) and its wall time."""
    runs = pathlib.Path(env["GUILD_HOME"]) / "runs"
    before = set(os.listdir(runs)) if runs.exists() else set()
    cmd = [guildctl, "run", "curve.py", "x=[0.0:1.0]", "--optimizer", "random", "--max-trials", str(args.trials),
           "--random-seed", str(seed), "--parallel", str(args.parallel), "--keep-batch", "-y"]
    if prune:
        cmd += ["--prune", args.pruner] + [a for f in args.prune_flags for a in ("-Fp", f)]
    start = time.monotonic()
    r = subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True)
    wall = time.monotonic() - start
    if r.returncode != 0:
        raise RuntimeError(f"search failed ({' '.join(cmd[1:])}): {r.stderr.strip()[-500:]}")
    new = [runs / d for d in sorted(set(os.listdir(runs)) - before)]
    trials = [read_trial(d) for d in new if not any(p.name.startswith("trial-") for p in d.iterdir())]
    return trials, wall


def summarize(trials):
    finals = [f for _x, _s, f, _p in trials if f is not None]
    return {
        "trial_s": sum(s for _x, s, _f, _p in trials),
        "best": min(finals) if finals else None,
        "pruned": sum(p is not None for *_r, p in trials),
        "trials": len(trials),
    }


def run(args):
    guildctl = exe_beside_python("guildctl", "pruning.py")
    guildd = exe_beside_python("guildd", "pruning.py")
    base = pathlib.Path(tempfile.mkdtemp(prefix="bench-pruning-"))
    home, project = base / "home", base / "project"
    project.mkdir()
    (project / "curve.py").write_text(CURVE.format(steps=args.steps, delay=args.delay, noise=NOISE))
    env = {**os.environ, "GUILD_HOME": str(home), "GUILDCTL_NO_AUTOSTART": "1"}
    env.pop("VIRTUAL_ENV", None)
    daemon = start_guildd(guildd, guildctl, home, env, base / "guildd.stderr")
    seeds = []
    try:
        for seed in range(args.seeds):
            arms = {}
            for prune in ((False, True) if seed % 2 == 0 else (True, False)):
                trials, wall = search(guildctl, env, project, seed, args, prune)
                arms["prune" if prune else "plain"] = {**summarize(trials), "wall_s": wall}
            plain, pruned = arms["plain"], arms["prune"]
            saved = 1 - pruned["trial_s"] / plain["trial_s"]
            diff = None if pruned["best"] is None or plain["best"] is None else pruned["best"] - plain["best"]
            seeds.append({"seed": seed, "plain": plain, "prune": pruned, "saved": saved, "best_diff": diff})
            log(f"seed {seed}: trial time {plain['trial_s']:.1f} s -> {pruned['trial_s']:.1f} s (saved {saved:.0%}, "
                f"{pruned['pruned']}/{pruned['trials']} pruned); best final loss {plain['best']:.4f} -> {pruned['best']:.4f}")
    finally:
        stop_process(daemon)
        if args.keep:
            log(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    total_plain = sum(s["plain"]["trial_s"] for s in seeds)
    total_prune = sum(s["prune"]["trial_s"] for s in seeds)
    diffs = [s["best_diff"] for s in seeds if s["best_diff"] is not None]
    return {
        "config": {k: v for k, v in vars(args).items() if k != "json"} | {"noise": NOISE},
        "seeds": seeds,
        "saved_total": 1 - total_prune / total_plain if total_plain else None,
        "saved_median": median([s["saved"] for s in seeds]),
        "best_diff_max": max((abs(d) for d in diffs), default=None),
        "best_diff_mean": sum(diffs) / len(diffs) if diffs else None,
        "same_best": sum(abs(d) <= 2 * NOISE for d in diffs),
        "valid": len(diffs) == len(seeds) > 0,
    }


def print_report(res, out):
    print(f"{'seed':>4}  {'trial s':>8}  {'pruned s':>8}  {'saved':>6}  {'pruned':>6}  {'best':>7}  {'best (pruned)':>13}  {'diff':>7}", file=out)
    for s in res["seeds"]:
        print(f"{s['seed']:>4}  {s['plain']['trial_s']:>8.1f}  {s['prune']['trial_s']:>8.1f}  {s['saved']:>6.0%}  "
              f"{s['prune']['pruned']:>2}/{s['prune']['trials']:<3}  {s['plain']['best']:>7.4f}  {s['prune']['best']:>13.4f}  "
              f"{s['best_diff']:>+7.4f}", file=out)
    print("", file=out)
    n = len(res["seeds"])
    c = res["config"]
    print(f"{n} seeds, {c['trials']} random-search trials each, {c['steps']} steps of {c['delay']} s; --prune {c['pruner']} "
          f"{' '.join(c['prune_flags'])}", file=out)
    rows = [
        ("trial time saved (all seeds)", f"{res['saved_total']:.0%}", "no pruning", "-", ">= 40%",
         _yes(res["saved_total"] is not None and res["saved_total"] >= 0.4, res["valid"])),
        ("trial time saved (median seed)", f"{res['saved_median']:.0%}", "no pruning", "-", "-", "-"),
        ("best final loss, mean diff", f"{res['best_diff_mean']:+.4f}", f"noise sd {NOISE}", "-", f"<= {NOISE}",
         _yes(res["best_diff_mean"] is not None and res["best_diff_mean"] <= NOISE, res["valid"])),
        ("best final loss, max |diff|", f"{res['best_diff_max']:.4f}", "-", "-", "-", "-"),
        (f"seeds with the same best (|diff| <= {2 * NOISE})", f"{res['same_best']}/{n}", "-", "-", "-", "-"),
    ]
    print_table(rows, out)


def _yes(flag, valid):
    return "invalid" if not valid else "yes" if flag else "NO"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--delay", type=float, default=0.04)
    p.add_argument("--pruner", default="median")
    p.add_argument("-Fp", dest="prune_flags", action="append", default=None, help="pruner flag NAME=VAL (repeatable)")
    p.add_argument("--parallel", type=int, default=1)
    p.add_argument("--keep", action="store_true", help="keep the temp GUILD_HOME")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    if args.prune_flags is None:
        args.prune_flags = ["warmup-steps=3", "startup-trials=3"]
    report(run(args), args.json, print_report)


if __name__ == "__main__":
    sys.exit(main())
