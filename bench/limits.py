"""Limits benchmark: one run at a time at the far end of what a run can do, against one guildd.

    python bench/limits.py [--output-gb 3] [--scalars 100000] [--files 10000] [--keep] [--json]

A guildd on a temp GUILD_HOME. Each case runs through the real `guildctl`; meanwhile a probe
runs `guildctl runs` every PROBE_S and guildd's RSS is sampled every RSS_S (psutil):

  output      a run writing --output-gb GB of output as fast as Python writes it (64 KiB
              blocks of 100-byte lines, a `loss: X` line every block); the output on disk must
              be whole, the last loss indexed, and `watch --tail 2` of it quick (it must not
              read the whole output).
  long line   a run writing one LONG_LINE_MB MB line with no newline, then sleeping SLEEP_S,
              then `loss: 1.5`: the scalar after the long line must be indexed, and guildd must
              not spin on it while the run sleeps (its CPU over the run).
  scalars     a run printing --scalars `step: N` / `loss: X` pairs: every one counted in the
              index (`runs info --json`), the time `runs info` and `compare` take.
  files       a run writing --files files into its run dir: `ls`, `runs info`, `export` and
              `runs rm` of it, each timed and checked.
  flag value  a flag value of 1 MB sent through guildctl.api (a shell can't pass it: Linux
              refuses one argument over 128 KiB), which must be refused with one line naming
              the limit, and one of 60 KB, which must run with its value whole, its `runs`
              row short.

Figures per case: what happened (ok, or what went wrong), wall time, guildd's peak RSS and CPU
seconds over the case, the probe's p50 / max and errors, and the longest the ListRuns that
`guildctl runs` sends took from this process (sent every RPC_PROBE_S) (the daemon's own answer time, without a client's
start on a busy box): over MAX_WAIT_S is a problem (a case held the daemon's index thread). Progress goes to stderr; with --json
the table goes to stderr too and stdout holds one JSON object.
"""

import os
import sys

import argparse
import json
import pathlib
import shutil
import subprocess
import tempfile
import threading
import time

import psutil

from benchlib import exe_beside_python, fmt_s, log, percentile, report, start_guildd, stop_process

PROBE_S = 0.5
RPC_PROBE_S = 0.1
RUNS_PAGE = 20  # the runs `guildctl runs` asks for
MAX_WAIT_S = 1.0  # the longest the daemon may take to answer that ListRuns during a case
RSS_S = 0.05
LONG_LINE_MB = 3
SLEEP_S = 3.0
FLAG_BIG = 1024 * 1024
FLAG_OK = 60_000
MAX_ROW = 1_200  # characters of a `runs` row: a label is capped at 1,000

BIG_OUTPUT_PY = """
import sys
size = 1000
line = b"x" * 99 + b"\\n"
block = line * 655  # ~64 KiB
out = sys.stdout.buffer
written, i = 0, 0
while written < size:
    i += 1
    chunk = block + b"loss: %d\\n" % i
    out.write(chunk)
    written += len(chunk)
out.flush()
"""
LONG_LINE_PY = """
import sys, time
sys.stdout.write("y" * (%d * 1024 * 1024))
sys.stdout.flush()
time.sleep(%s)
print()
print("loss: 1.5", flush=True)
""" % (LONG_LINE_MB, SLEEP_S)
SCALARS_PY = """
import sys
n = 10
w = sys.stdout.write
for i in range(1, n + 1):
    w("step: %d\\nloss: %f\\n" % (i, 1.0 / i))
"""
FILES_PY = """
n = 10
for i in range(n):
    with open("f%05d.txt" % i, "w") as f:
        f.write(str(i))
"""
FLAG_PY = "x = 'a'\nprint(len(x))\n"


class Env:
    def __init__(self, root):
        self.root = pathlib.Path(root)
        self.project = self.root / "project"
        self.home = self.root / "guild-home"
        self.project.mkdir()
        for name, text in (("big.py", BIG_OUTPUT_PY), ("longline.py", LONG_LINE_PY), ("scalars.py", SCALARS_PY),
                           ("files.py", FILES_PY), ("flag.py", FLAG_PY)):
            (self.project / name).write_text(text)
        self.guildctl = exe_beside_python("guildctl", "limits.py")
        self.guildd = exe_beside_python("guildd", "limits.py")
        base = {k: v for k, v in os.environ.items() if k not in ("GUILD_HOME", "VIRTUAL_ENV", "GUILD_SIMULATED_GPUS")}
        self.env = dict(base, GUILD_HOME=str(self.home), GUILDCTL_NO_AUTOSTART="1")
        self.daemon = None

    def ctl(self, *args, timeout=3600):
        """(seconds, CompletedProcess) of one guildctl command."""
        t0 = time.perf_counter()
        p = subprocess.run([self.guildctl, *args], env=self.env, cwd=self.project, capture_output=True, text=True,
                           timeout=timeout)
        return time.perf_counter() - t0, p


def start_daemon(env):
    env.daemon = start_guildd(env.guildd, env.guildctl, env.home, env.env, env.root / "guildd.stderr")


def stop_daemon(env):
    stop_process(env.daemon)


class Watch:
    """guildd's peak RSS and CPU over a case, and a `guildctl runs` probe every PROBE_S."""

    def __init__(self, env):
        self.env = env
        self.proc = psutil.Process(env.daemon.pid)
        self.stop = threading.Event()
        self.peak_rss = 0
        self.probe = []  # (seconds, error or None): `guildctl runs`
        self.rpc_probe = []  # seconds: the ListRuns it sends, from this process (no client start-up)
        self.threads = [threading.Thread(target=f, daemon=True) for f in (self._rss, self._probe, self._rpc_probe)]

    def __enter__(self):
        t = self.proc.cpu_times()
        self.cpu0 = t.user + t.system
        self.t0 = time.perf_counter()
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join()
        t = self.proc.cpu_times()
        self.cpu_s = t.user + t.system - self.cpu0
        self.wall_s = time.perf_counter() - self.t0

    def _rss(self):
        while not self.stop.is_set():
            self.peak_rss = max(self.peak_rss, self.proc.memory_info().rss)
            self.stop.wait(RSS_S)

    def _probe(self):
        while not self.stop.is_set():
            dt, p = self.env.ctl("runs", timeout=120)
            self.probe.append((dt, None if p.returncode == 0 else p.stderr.strip()[-200:]))
            self.stop.wait(PROBE_S)

    def _rpc_probe(self):
        from guildctl.client import Client

        c = Client(self.env.home, autostart=False)
        try:
            while not self.stop.is_set():
                t0 = time.perf_counter()
                c.list_runs(limit=RUNS_PAGE)
                self.rpc_probe.append(time.perf_counter() - t0)
                self.stop.wait(RPC_PROBE_S)
        finally:
            c.close()

    def figures(self):
        lat = [dt for dt, _ in self.probe]
        return {"wall_s": self.wall_s, "daemon_cpu_s": self.cpu_s, "daemon_peak_rss": self.peak_rss,
                "probe_n": len(lat), "probe_p50": percentile(lat, 50), "probe_max": max(lat) if lat else None,
                "probe_errors": [e for _, e in self.probe if e],
                "rpc_probe_max": max(self.rpc_probe) if self.rpc_probe else None}


def run_id_of(p):
    return next((w for w in p.stdout.split() if len(w) == 32), None)


def info(env, run_id):
    dt, p = env.ctl("runs", "info", run_id, "--json")
    return dt, (json.loads(p.stdout) if p.returncode == 0 else None)


def loss_of(run):
    """The last `loss` the index holds for a run and its step (runs info --json: Guild's
    `[value, step]`), or (None, None)."""
    loss = ((run or {}).get("scalars") or {}).get("loss")
    return (loss[0], loss[1]) if loss else (None, None)


# Cases: each returns (problems, figures)


def case_output(env, size):
    _, p = env.ctl("run", "big.py", "size=%d" % size, "-y")
    problems = [] if p.returncode == 0 else ["run exited %d: %s" % (p.returncode, p.stderr.strip()[-200:])]
    run_id = run_id_of(env.ctl("select")[1]) or ""
    out_size = os.path.getsize(env.home / "runs" / run_id / ".guild" / "output") if run_id else 0
    if out_size < size:
        problems.append("output on disk %d bytes of %d" % (out_size, size))
    _, run = info(env, run_id)
    blocks = -(-size // (100 * 655 + 12))
    last, _ = loss_of(run)
    if last is None or abs(float(last) - blocks) > 1:
        problems.append("last loss indexed %r, want about %d" % (last, blocks))
    tail_s, t = env.ctl("watch", run_id, "--tail", "2")
    if t.stdout.splitlines() != ["x" * 99, "loss: %d" % blocks]:
        problems.append("watch --tail 2 printed %r" % t.stdout[-300:])
    return problems, {"output_bytes": out_size, "watch_tail_2_s": tail_s}


def case_long_line(env):
    _, p = env.ctl("run", "longline.py", "-y")
    problems = [] if p.returncode == 0 else ["run exited %d" % p.returncode]
    _, run = info(env, run_id_of(env.ctl("select")[1]) or "")
    last, _ = loss_of(run)
    if last is None or float(last) != 1.5:
        problems.append("the loss after a %d MB line was not indexed (%r)" % (LONG_LINE_MB, last))
    return problems, {}


def case_scalars(env, n):
    t0 = time.perf_counter()
    _, p = env.ctl("run", "scalars.py", "n=%d" % n, "-y")
    run_s = time.perf_counter() - t0
    problems = [] if p.returncode == 0 else ["run exited %d" % p.returncode]
    run_id = run_id_of(env.ctl("select")[1]) or ""
    info_s, run = info(env, run_id)
    last, step = loss_of(run)
    if last is None or abs(float(last) - 1.0 / n) > 1e-6 or step != n:
        problems.append("last loss %r at step %r, want %f at step %d" % (last, step, 1.0 / n, n))
    compare_s, c = env.ctl("compare", run_id, "--table")
    if c.returncode != 0:
        problems.append("compare exited %d: %s" % (c.returncode, c.stderr.strip()[-200:]))
    return problems, {"run_s": run_s, "info_s": info_s, "compare_s": compare_s}


def case_files(env, n):
    _, p = env.ctl("run", "files.py", "n=%d" % n, "-y")
    problems = [] if p.returncode == 0 else ["run exited %d" % p.returncode]
    run_id = run_id_of(env.ctl("select")[1]) or ""
    ls_s, ls = env.ctl("ls", run_id)
    listed = sum(1 for line in ls.stdout.splitlines() if line.strip().startswith("f"))
    if ls.returncode != 0 or listed < n:
        problems.append("ls exited %d, listed %d of %d files" % (ls.returncode, listed, n))
    info_s, run = info(env, run_id)
    if run is None:
        problems.append("runs info failed")
    export_dir = env.root / "export"
    export_s, e = env.ctl("export", str(export_dir), run_id, "-y")
    exported = len(list((export_dir / run_id).glob("f*.txt"))) if (export_dir / run_id).is_dir() else 0
    if e.returncode != 0 or exported != n:
        problems.append("export exited %d, %d of %d files exported" % (e.returncode, exported, n))
    rm_s, r = env.ctl("runs", "rm", run_id, "-y")
    if r.returncode != 0:
        problems.append("runs rm exited %d: %s" % (r.returncode, r.stderr.strip()[-200:]))
    return problems, {"ls_s": ls_s, "info_s": info_s, "export_s": export_s, "rm_s": rm_s}


def case_flag_value(env):
    from guildctl import api

    problems, figures = [], {}
    s = api.connect(env.home, autostart=False)
    try:
        try:
            s.run("flag.py", cwd=env.project, x="a" * FLAG_BIG, quiet=True)
            problems.append("a 1 MB flag value was accepted")
        except api.InvalidArgument as e:
            figures["refused_with"] = str(e)
            if "\n" in str(e) or "limit" not in str(e):
                problems.append("the refusal is not one line naming the limit: %r" % str(e)[:300])
        run = s.run("flag.py", cwd=env.project, x="b" * FLAG_OK, quiet=True)
        if run.status != "completed" or run.flags.get("x") != "b" * FLAG_OK:
            problems.append("a %d-byte flag value: run %s, value %s" % (FLAG_OK, run.status,
                                                                         "whole" if run.flags.get("x") == "b" * FLAG_OK else "changed"))
    finally:
        s.close()
    _, rows = env.ctl("runs")
    longest = max((len(line) for line in rows.stdout.splitlines()), default=0)
    figures["longest_row"] = longest
    if longest > MAX_ROW:
        problems.append("a `runs` row of %d characters (a %d-byte flag value in its default label)" % (longest, FLAG_OK))
    return problems, figures


# Report


def describe(figures):
    parts = []
    for key, value in sorted(figures.items()):
        if key.endswith("_s"):
            parts.append("%s %s" % (key[:-2], fmt_s(value)))
        elif key == "refused_with":
            parts.append("refused: %s" % value)
        else:
            parts.append("%s %s" % (key, value))
    return "; ".join(parts)


def print_report(res, out):
    head = ("case", "result", "wall", "guildd peak RSS", "guildd CPU", "probe p50 / max", "probe errors",
            "its ListRuns max")
    rows = []
    for name, c in res["cases"].items():
        w = c["watch"]
        rows.append((name, "ok" if not c["problems"] else "PROBLEMS: %d" % len(c["problems"]), fmt_s(w["wall_s"]),
                     "%.0f MB" % (w["daemon_peak_rss"] / 2**20), "%.1f s" % w["daemon_cpu_s"],
                     "%s / %s" % (fmt_s(w["probe_p50"]), fmt_s(w["probe_max"])), str(len(w["probe_errors"])),
                     fmt_s(w["rpc_probe_max"])))
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    line = "  ".join("%-*s" % (wd, h) for wd, h in zip(widths, head))
    print(line, file=out)
    print("-" * len(line), file=out)
    for r in rows:
        print("  ".join("%-*s" % (wd, v) for wd, v in zip(widths, r)).rstrip(), file=out)
    print("", file=out)
    for name, c in res["cases"].items():
        print("%s: %s" % (name, describe(c["figures"]) or "-"), file=out)
        for p in c["problems"] + ["probe: " + e for e in c["watch"]["probe_errors"][:5]]:
            print("  - " + p, file=out)
    print("daemon alive at the end: %s; elapsed %.0f s" % (res["daemon_alive"], res["elapsed_s"]), file=out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--output-gb", type=float, default=3.0, help="GB of output of the big run (default %(default)s)")
    ap.add_argument("--scalars", type=int, default=100_000, help="step/loss pairs of the scalars run (default %(default)s)")
    ap.add_argument("--files", type=int, default=10_000, help="files in the files run's dir (default %(default)s)")
    ap.add_argument("--json", action="store_true", help="print a JSON object on stdout (the table then goes to stderr)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    env = Env(tempfile.mkdtemp(prefix="guildd-bench-limits-"))
    log("bench dir %s" % env.root)
    cases = [("output %.1f GB" % args.output_gb, lambda: case_output(env, int(args.output_gb * 1e9))),
             ("one %d MB line" % LONG_LINE_MB, lambda: case_long_line(env)),
             ("%d scalars" % args.scalars, lambda: case_scalars(env, args.scalars)),
             ("%d files" % args.files, lambda: case_files(env, args.files)),
             ("flag value 1 MB / 60 KB", lambda: case_flag_value(env))]
    res = {"cases": {}}
    try:
        start_daemon(env)
        for name, case in cases:
            log("case: %s" % name)
            with Watch(env) as w:
                try:
                    problems, figures = case()
                except Exception as e:  # a case that breaks is a figure too: the others still run
                    problems, figures = ["%s: %s" % (type(e).__name__, e)], {}
            wf = w.figures()
            if wf["rpc_probe_max"] is not None and wf["rpc_probe_max"] > MAX_WAIT_S:
                problems.append("a ListRuns waited %s for the daemon (target < %s)" % (fmt_s(wf["rpc_probe_max"]),
                                                                                   fmt_s(MAX_WAIT_S)))
            res["cases"][name] = {"problems": problems, "figures": figures, "watch": wf}
            log("  %s" % ("ok" if not problems else "; ".join(problems)))
        res["daemon_alive"] = env.daemon.poll() is None
    finally:
        stop_daemon(env)
        if args.keep:
            log("kept %s" % env.root)
        else:
            shutil.rmtree(env.root, ignore_errors=True)
    res["elapsed_s"] = time.perf_counter() - t0
    report(res, args.json, print_report)
    return 1 if any(c["problems"] for c in res["cases"].values()) or not res["daemon_alive"] else 0


if __name__ == "__main__":
    sys.exit(main())
