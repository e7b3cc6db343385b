"""Helpers shared by the benchmark scripts in bench/ (drain.py, batches.py, engine.py, runs.py).

The scripts are run as `python bench/X.py`, so bench/ is first on sys.path and they import this
module as `import benchlib` / `from benchlib import ...`.
"""

import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time

DEFAULT_GUILD_VENV = "/tmp/guild-anchor"
GUILD_INSTALLER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "tools", "install-guild-anchor")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def median(xs):
    return statistics.median(xs) if xs else None


def percentile(xs, p):
    """Nearest-rank percentile; fine for the few dozen samples taken here."""
    xs = sorted(xs)
    if not xs:
        return None
    k = max(0, min(len(xs) - 1, math.ceil(p / 100.0 * len(xs)) - 1))
    return xs[k]


def exe_beside_python(name, prog):
    """A console script beside this interpreter: a pyenv shim in front adds ~40 ms per call.
    `prog` (the calling script's name) starts the exit message when it is not found."""
    sibling = os.path.join(os.path.dirname(sys.executable), name)
    for path in (sibling, shutil.which(name)):
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    sys.exit("%s: %s not found (install /work/main with pip install -e)" % (prog, name))


def start_guildd(guildd, guildctl, home, env, stderr_path, timeout=60.0):
    """guildd in the foreground on `home`, in its own session (a Ctrl-C reaches the bench alone,
    whose `finally` stops it), returned once `guildctl daemon status` answers."""
    with open(stderr_path, "ab") as err:
        proc = subprocess.Popen([guildd, "--foreground", "--no-log-stderr", "-H", str(home)], env=env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
    deadline = time.monotonic() + timeout
    while subprocess.run([guildctl, "daemon", "status"], env=env, capture_output=True).returncode != 0:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("guildd did not start (see %s)" % stderr_path)
        time.sleep(0.05)
    return proc


def stop_process(proc, timeout=60.0):
    """SIGTERM, then SIGKILL after `timeout` seconds; True when it ended on SIGTERM (or had ended)."""
    if proc is None or proc.poll() is not None:
        return True
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
        return True
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return False


# Report


def report(res, as_json, print_report):
    """`print_report(res, out)` for people (on stderr with --json) and, with --json, the
    figures as JSON on stdout for scripts."""
    out = sys.stderr if as_json else sys.stdout
    print("", file=out)
    print_report(res, out)
    if as_json:
        json.dump(res, sys.stdout, indent=2, sort_keys=True, default=str)
        print()


def fmt_s(s):
    return "-" if s is None else ("%.1f ms" % (s * 1000) if s < 1 else "%.2f s" % s)


def yes(flag, valid=True):
    return "invalid" if not valid else "yes" if flag else "NO"


def print_table(rows, out):
    head = ("figure", "measured", "baseline", "ratio", "target", "met")
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
    line = "  ".join("%-*s" % (w, h) for w, h in zip(widths, head))
    print(line, file=out)
    print("-" * len(line), file=out)
    for r in rows:
        print("  ".join("%-*s" % (w, v) for w, v in zip(widths, r)).rstrip(), file=out)
