"""Hostile-input figures: the property-based fuzz suite (tests/fuzz) with its deep profile.

    python bench/fuzz.py [--profile deep|ci] [--examples N] [--json] [-k EXPR]

Runs `pytest tests/fuzz` with HYPOTHESIS_PROFILE (deep: --examples per parser test, default
2,000, and half that per RPC and per guildctl command, where a case costs a daemon call or a
whole command; 2,000 takes over an hour on 2 cores, 1,000 about 35 minutes), each case against the pure parsers, a real guildd
over its Unix socket, or guildctl's commands in-process against it. The suite counts into a
JSON file (GUILD_FUZZ_FIGURES) and this script prints:

  - cases tried, per kind and in all;
  - tracebacks: an exception other than our clear errors, in a parser, the CLI or a reply;
  - INTERNAL (or UNKNOWN / UNIMPLEMENTED / DATA_LOSS) status codes from the daemon;
  - half-written runs: a run dir without its id, op, initialized attrs or opref;
  - reads or writes outside GUILD_HOME and the run's dir: a canary file's content in a
    reply, another run's file reached by `..`, the canary dir, the project, the daemon's cwd
    or a path climbing out of the run changed;
  - daemon down: guildd exited or stopped answering.

Each target is 0. The findings are distinct cases (hypothesis replays a failing case while it
shrinks it; that counts once), and the first few are printed. Exit status: pytest's.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KINDS = [("tracebacks", "tracebacks"), ("internal", "INTERNAL status codes"), ("half_written", "half-written runs"),
         ("escapes", "reads or writes outside"), ("daemon_down", "daemon down")]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="deep", choices=["deep", "ci"])
    parser.add_argument("--examples", type=int, default=2000, help="examples per parser test with --profile deep")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("-k", dest="select", help="pytest -k: only the tests matching EXPR")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="guild-fuzz-") as tmp:
        figures_path = os.path.join(tmp, "figures.json")
        env = {**os.environ, "HYPOTHESIS_PROFILE": args.profile, "GUILD_FUZZ_FIGURES": figures_path,
               "GUILD_FUZZ_EXAMPLES": str(args.examples)}
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/fuzz"]
        if args.select:
            cmd += ["-k", args.select]
        start = time.monotonic()
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        elapsed = time.monotonic() - start
        if not os.path.exists(figures_path):
            sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
            sys.exit(f"bench/fuzz.py: the suite wrote no figures (pytest exited {proc.returncode})")
        with open(figures_path) as f:
            figures = json.load(f)
    figures["seconds"] = round(elapsed, 1)
    figures["pytest_exit"] = proc.returncode
    figures["pytest_summary"] = (proc.stdout.strip().splitlines() or [""])[-1]
    if args.json:
        print(json.dumps(figures, indent=1, sort_keys=True))
    else:
        report(figures, args.profile)
    sys.exit(proc.returncode)


def report(figures, profile):
    print(f"Hostile input (tests/fuzz, profile {profile}, {figures['seconds']} s): {figures['pytest_summary']}")
    print(f"  {'cases tried':<34} {figures['cases_total']:>8}")
    for test, n in sorted(figures["cases"].items()):
        print(f"    {test:<32} {n:>8}")
    for key, label in KINDS:
        n = figures.get(key, 0)
        print(f"  {label:<34} {n:>8}   target 0  {'met' if n == 0 else 'NOT MET'}")
    for key, examples in sorted(figures.get("examples", {}).items()):
        print(f"\n  {key}:")
        for text in examples:
            print("    - " + text.replace("\n", "\n      "))


if __name__ == "__main__":
    main()
