"""Runs-management benchmark at scale: guildctl (warm daemon over its index) against Guild AI
0.9 (which scans the run dirs on every command), on the same GUILD_HOME.

    python bench/runs.py [--sizes 10000,100000] [--repeat 5] [--guild VENV] [--keep] [--json]

For each size it writes N runs in Guild 0.9's format with ../shared/tools/make-guild-runs.py,
lets guildd build its index once, then times these whole commands (median of --repeat runs for
guildctl, one run for Guild, which is slow):

    runs                                        (list the 20 latest)
    runs -C -S "last day" -l best               (status, time range and label filters)
    compare --csv - --min loss --top 10         (flags and scalars of every run, ordered)

Targets: each guildctl command under 0.5 s and at least 20x faster than Guild; the daemon's
memory (RSS) under 300 MB; a cold start of the daemon over the built index under 3 s. The
outputs are checked to agree: the same run ids listed, and compare's best run is the one
make-guild-runs.py recorded as best. Nothing is asserted; the table says which targets hold.
"""

import argparse
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import psutil

from benchlib import DEFAULT_GUILD_VENV, log

REPO = pathlib.Path(__file__).resolve().parent.parent
MAKE_RUNS = REPO.parent / "shared" / "tools" / "make-guild-runs.py"
COMMANDS = [
    ("runs", ["runs"]),
    ("runs -C -S 'last day' -l best", ["runs", "-C", "-S", "last day", "-l", "best"]),
    ("compare --csv - --min loss --top 10", ["compare", "--csv", "-", "--min", "loss", "--top", "10"]),
]
# Guild 0.9 spells the old filters -Sc / -Fs / -Fl.
GUILD_COMMANDS = {
    "runs": ["runs"],
    "runs -C -S 'last day' -l best": ["runs", "-Sc", "-Fs", "last day", "-Fl", "best"],
    "compare --csv - --min loss --top 10": ["compare", "--csv", "-", "--min", "loss", "--top", "10"],
}


def guildctl_exe():
    # The console script beside this interpreter: a pyenv shim on PATH adds ~40 ms per call.
    exe = pathlib.Path(sys.executable).parent / "guildctl"
    return str(exe) if exe.exists() else "guildctl"


def timed(argv, env):
    start = time.perf_counter()
    r = subprocess.run(argv, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({r.returncode}): {r.stderr.strip()}")
    return elapsed, r.stdout


def daemon_pid(home):
    text = (home / "guildd.lock").read_text().strip()
    return int(text) if text else None


def bench_size(n, repeat, guild, workdir):
    home = workdir / f"home-{n}"
    log(f"[{n}] writing {n} runs with {MAKE_RUNS.name}")
    subprocess.run([sys.executable, str(MAKE_RUNS), str(home), str(n)], check=True, capture_output=True)
    best = (home / ".best-run").read_text().strip()
    env = {**os.environ, "GUILD_HOME": str(home)}
    ctl = guildctl_exe()
    start = time.perf_counter()
    subprocess.run([ctl, "daemon", "start"], env=env, check=True, capture_output=True)
    timed([ctl, "runs", "-n", "1"], env)  # waits for the first index build
    log(f"[{n}] first index build: {time.perf_counter() - start:.1f} s")
    results = {"size": n}
    outputs = {}
    for name, args in COMMANDS:
        timed([ctl, *args], env)  # warm-up
        samples = []
        for _ in range(repeat):
            elapsed, out = timed([ctl, *args], env)
            samples.append(elapsed)
        outputs[name] = out
        results[name] = {"guildctl": statistics.median(samples)}
        log(f"[{n}] guildctl {name}: {statistics.median(samples) * 1000:.0f} ms")
    pid = daemon_pid(home)
    results["rss_mb"] = psutil.Process(pid).memory_info().rss / 2**20
    subprocess.run([ctl, "daemon", "stop"], env=env, check=True, capture_output=True)
    start = time.perf_counter()
    subprocess.run([ctl, "daemon", "start"], env=env, check=True, capture_output=True)
    timed([ctl, "runs", "-n", "1"], env)
    results["cold_start_s"] = time.perf_counter() - start
    log(f"[{n}] cold start over the built index: {results['cold_start_s']:.2f} s")
    compare_lines = outputs["compare --csv - --min loss --top 10"].splitlines()
    results["best_run_found"] = len(compare_lines) > 1 and best.startswith(compare_lines[1].split(",")[0])
    if guild:
        genv = {**env, "NO_PIP_FREEZE": "1"}
        for name, _args in COMMANDS:
            elapsed, out = timed([guild, *GUILD_COMMANDS[name]], genv)
            results[name]["guild"] = elapsed
            log(f"[{n}] guild {name}: {elapsed:.1f} s")
            if name == "runs":
                ours = [line.split()[0] for line in outputs[name].splitlines()]
                theirs = [line.split()[0] for line in out.splitlines() if line.startswith("[")]
                results["same_runs_listed"] = ours == theirs
    subprocess.run([ctl, "daemon", "stop"], env=env, capture_output=True)
    return results


def report(all_results):
    rows = []
    for res in all_results:
        n = res["size"]
        for name, _args in COMMANDS:
            ours = res[name]["guildctl"]
            theirs = res[name].get("guild")
            ratio = f"{theirs / ours:.0f}x faster" if theirs else "(no Guild)"
            met = ours < 0.5 and (theirs is None or theirs / ours >= 20)
            rows.append((f"{n} runs: {name}", f"{ours * 1000:.0f} ms", f"{theirs:.1f} s" if theirs else "-", ratio,
                         "< 0.5 s, >= 20x", "yes" if met else "NO"))
        rows.append((f"{n} runs: daemon RSS", f"{res['rss_mb']:.0f} MB", "", "", "< 300 MB", "yes" if res["rss_mb"] < 300 else "NO"))
        rows.append((f"{n} runs: daemon cold start", f"{res['cold_start_s']:.2f} s", "", "", "< 3 s", "yes" if res["cold_start_s"] < 3 else "NO"))
        rows.append((f"{n} runs: compare finds the best run", str(res["best_run_found"]), "", "", "True", "yes" if res["best_run_found"] else "NO"))
        if "same_runs_listed" in res:
            rows.append((f"{n} runs: same runs as `guild runs`", str(res["same_runs_listed"]), "", "", "True", "yes" if res["same_runs_listed"] else "NO"))
    widths = [max(len(str(r[i])) for r in rows + [HEADER]) for i in range(len(HEADER))]
    for r in [HEADER] + rows:
        print("  ".join(str(c).ljust(widths[i]) for i, c in enumerate(r)).rstrip())


HEADER = ("figure", "guildctl", "guild 0.9", "ratio", "target", "met")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="10000,100000")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--guild", default=DEFAULT_GUILD_VENV, help="Guild 0.9 venv (../shared/tools/install-guild-anchor)")
    p.add_argument("--keep", action="store_true", help="keep the generated GUILD_HOMEs")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    guild = os.path.join(args.guild, "bin", "guild")
    if not os.path.exists(guild):
        log(f"Guild 0.9 not found at {guild}: Guild figures skipped (install with ../shared/tools/install-guild-anchor)")
        guild = None
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="guildd-bench-runs-"))
    try:
        results = [bench_size(int(n), args.repeat, guild, workdir) for n in args.sizes.split(",")]
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    report(results)
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
