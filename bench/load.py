"""Load benchmark: many clients at once against one guildd, with and without 2,000 staged runs.

    python bench/load.py [--clients 10] [--ops 200] [--staged 2000] [--keep] [--json]

A guildd on a temp GUILD_HOME (queue processing off, a fresh daemon's default: staged runs
stay staged), one running "ticker" run printing a line every TICK_S, then two phases:

  A. --clients client processes at once, each doing --ops operations drawn from a fixed mix
     (MIX), every one through the real `guildctl` CLI, so each latency is what a user sees,
     process start included: stage a run (`run noop.py --stage -y --label L`), `runs --json`,
     `runs info ID --json`, `queue --json`, `label --set L ID -y` on one of the client's own
     staged runs, and `watch ID --tail 3` of the ticker until its 3 lines are read.
  B. the same after --staged more runs were staged (in this process over gRPC, through
     guildctl.client.Client.start_run, the spec built once by guildctl's scriptop: staging
     2,000 runs one `guildctl` process each would take minutes and measure nothing new).

Meanwhile a probe runs `guildctl runs` every PROBE_S: the daemon must stay responsive to it.
Right after each, it sends the same ListRuns from this process: on a 2-core machine the
clients' own processes (~0.1-0.3 s of CPU per guildctl) take the CPU, so the CLI figures say
what a user waits for on a busy box, and this one how long the daemon itself took.
After each phase the runs are read back (ListRuns over gRPC): every run a client staged must
be there, staged, with the label it last gave it.

Figures: errors (a non-zero exit, an unexpected answer, a run missing or wrong afterwards:
target 0); p50 / p99 / max latency per kind of operation and of the probe (target: probe p99
under 1 s on a 2-core machine); guildd's CPU seconds over each phase and its peak RSS (psutil,
sampled every RSS_S); the load average at the end of each phase (other work on the box shows).
Progress goes to stderr; with --json the table goes to stderr too and stdout holds one JSON
object.
"""

import os
import sys

import argparse
import concurrent.futures
import json
import multiprocessing
import pathlib
import random
import shutil
import subprocess
import tempfile
import threading
import time

import psutil

from benchlib import exe_beside_python, fmt_s, log, percentile, report, start_guildd, stop_process

MIX = (("stage", 20), ("runs --json", 20), ("runs info", 20), ("queue --json", 15), ("label", 15), ("watch", 10))
TICK_S = 0.05
PROBE_S = 0.5
RUNS_PAGE = 20  # the runs `guildctl runs` asks for
RSS_S = 0.1
OP_TIMEOUT_S = 120
WATCH_LINES = 3
STAGE_THREADS = 4
NOOP_PY = "pass\n"
TICKER_PY = "import time\ni = 0\nwhile True:\n    i += 1\n    print('tick %d' % i, flush=True)\n    time.sleep(" + str(TICK_S) + ")\n"


class Env:
    """Paths, environments and the daemon for one invocation (all under one temp dir)."""

    def __init__(self, root):
        self.root = pathlib.Path(root)
        self.project = self.root / "project"
        self.home = self.root / "guild-home"
        self.project.mkdir()
        (self.project / "noop.py").write_text(NOOP_PY)
        (self.project / "ticker.py").write_text(TICKER_PY)
        self.guildctl = exe_beside_python("guildctl", "load.py")
        self.guildd = exe_beside_python("guildd", "load.py")
        base = {k: v for k, v in os.environ.items() if k not in ("GUILD_HOME", "VIRTUAL_ENV", "GUILD_SIMULATED_GPUS")}
        self.env = dict(base, GUILD_HOME=str(self.home), GUILDCTL_NO_AUTOSTART="1")
        self.daemon = None
        self.ticker = None  # the running run's id

    def ctl(self, *args):
        return [self.guildctl, *args]


def start_daemon(env):
    env.daemon = start_guildd(env.guildd, env.guildctl, env.home, env.env, env.root / "guildd.stderr")


def stop_daemon(env):
    if env.daemon is None or env.daemon.poll() is not None:
        return
    if env.ticker:
        subprocess.run(env.ctl("stop", env.ticker, "-y"), env=env.env, capture_output=True, timeout=60)
    stop_process(env.daemon)


def client(env):
    from guildctl.client import Client

    return Client(env.home, autostart=False)


# One client process


def timed(cmd, env, cwd, check):
    """Runs a guildctl command; returns (seconds, error or None, stdout)."""
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=OP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return time.perf_counter() - t0, "timed out after %d s" % OP_TIMEOUT_S, ""
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        return dt, "exit %d: %s" % (p.returncode, (p.stderr.strip().splitlines() or [""])[-1][:300]), p.stdout
    problem = check(p.stdout) if check else None
    return dt, problem, p.stdout


def watch_lines(cmd, env, cwd):
    """`guildctl watch --tail N` until N lines are read; returns (seconds, error or None)."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    timer = threading.Timer(OP_TIMEOUT_S, p.kill)
    timer.start()
    try:
        got = [line for line, _ in zip(p.stdout, range(WATCH_LINES))]
        dt = time.perf_counter() - t0
    finally:
        timer.cancel()
        p.terminate()
        _, err = p.communicate()
    ticks = [line for line in got if line.startswith("tick ")]
    if len(ticks) < WATCH_LINES:
        return dt, "watch read %d of %d lines: %s" % (len(ticks), WATCH_LINES, err.strip()[-300:])
    return dt, None


def json_check(kind):
    def check(out):
        try:
            value = json.loads(out)
        except ValueError:
            return "%s printed no JSON: %r" % (kind, out[:200])
        if kind == "runs info" and not value.get("id"):
            return "runs info without an id"
        return None
    return check


def client_loop(env_vars, project, guildctl, ticker, client_no, ops, seed):
    """One client: `ops` operations from MIX, one guildctl process each. Returns its records
    ((kind, seconds, error)) and what its runs must look like afterwards ({id: label})."""
    rng = random.Random(seed)
    kinds, weights = zip(*MIX)
    mine = {}  # run id -> the label it must have
    records = []
    for i in range(ops):
        kind = rng.choices(kinds, weights)[0]
        if kind in ("runs info", "label") and not mine:
            kind = "stage"  # nothing of its own yet
        if kind == "stage":
            label = "load c%d op%d" % (client_no, i)
            dt, err, out = timed([guildctl, "run", "noop.py", "--stage", "-y", "--label", label], env_vars, project, None)
            run_id = next((w for w in out.split() if len(w) == 32), None) if not err else None
            if not err and not run_id:
                err = "stage printed no run id: %r" % out[:200]
            if run_id:
                mine[run_id] = label
        elif kind == "runs --json":
            dt, err, _ = timed([guildctl, "runs", "--json"], env_vars, project, json_check(kind))
        elif kind == "runs info":
            run_id = rng.choice([ticker, *mine])
            dt, err, _ = timed([guildctl, "runs", "info", run_id, "--json"], env_vars, project, json_check(kind))
        elif kind == "queue --json":
            dt, err, _ = timed([guildctl, "queue", "--json"], env_vars, project, json_check(kind))
        elif kind == "label":
            run_id = rng.choice(sorted(mine))
            label = "load c%d relabelled op%d" % (client_no, i)
            dt, err, _ = timed([guildctl, "label", "--set", label, run_id, "-y"], env_vars, project, None)
            if not err:
                mine[run_id] = label
        else:
            dt, err = watch_lines([guildctl, "watch", ticker, "--tail", str(WATCH_LINES)], env_vars, project)
        records.append((kind, dt, err))
    return records, mine


# The probe and the daemon's figures


class Sampler(threading.Thread):
    """`guildctl runs` every PROBE_S (latency, errors), then the same ListRuns from this
    process (the daemon's own answer time, without a client process's start, which the CPU
    the clients take slows), and the daemon's RSS every RSS_S."""

    def __init__(self, env):
        super().__init__(daemon=True)
        self.env = env
        self.proc = psutil.Process(env.daemon.pid)
        self.stop = threading.Event()
        self.probe = []  # (seconds, error): `guildctl runs`
        self.rpc_probe = []  # (seconds, error): the ListRuns it sends, from this process
        self.peak_rss = 0
        self.rss_thread = threading.Thread(target=self.sample_rss, daemon=True)

    def sample_rss(self):
        while not self.stop.is_set():
            try:
                self.peak_rss = max(self.peak_rss, self.proc.memory_info().rss)
            except psutil.Error:
                return
            self.stop.wait(RSS_S)

    def run(self):
        self.rss_thread.start()
        c = client(self.env)
        try:
            while not self.stop.is_set():
                t0 = time.perf_counter()
                dt, err, _ = timed(self.env.ctl("runs"), self.env.env, self.env.project, None)
                self.probe.append((dt, err))
                t1 = time.perf_counter()
                try:
                    c.list_runs(limit=RUNS_PAGE)
                    self.rpc_probe.append((time.perf_counter() - t1, None))
                except Exception as e:  # an error is a figure here
                    self.rpc_probe.append((time.perf_counter() - t1, "%s: %s" % (type(e).__name__, e)))
                self.stop.wait(max(0.0, PROBE_S - (time.perf_counter() - t0)))
        finally:
            c.close()

    def finish(self):
        self.stop.set()
        self.join()
        self.rss_thread.join()


def cpu_s(proc):
    t = proc.cpu_times()
    return t.user + t.system


# Phases


def phase(env, name, clients, ops, seed):
    log("%s: %d clients x %d ops" % (name, clients, ops))
    sampler = Sampler(env)
    cpu0 = cpu_s(sampler.proc)
    sampler.start()
    t0 = time.perf_counter()
    # spawn, not fork: a forked client would inherit the pipe of a probe running at that
    # moment, and the probe would wait for that client to end.
    with concurrent.futures.ProcessPoolExecutor(clients, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(client_loop, env.env, str(env.project), env.guildctl, env.ticker, c, ops, seed * 1000 + c)
                   for c in range(clients)]
        results = [f.result() for f in futures]
    wall = time.perf_counter() - t0
    sampler.finish()
    daemon_cpu = cpu_s(sampler.proc) - cpu0
    records = [r for recs, _ in results for r in recs]
    expected = {run_id: label for _, mine in results for run_id, label in mine.items()}
    missing, wrong = verify(env, expected)
    res = {"name": name, "clients": clients, "ops": ops, "wall_s": wall, "daemon_cpu_s": daemon_cpu,
           "daemon_peak_rss": sampler.peak_rss, "kinds": {}, "errors": [], "runs_expected": len(expected),
           "runs_missing": missing, "runs_wrong": wrong}
    for kind, _ in MIX:
        lat = [dt for k, dt, _ in records if k == kind]
        errs = [e for k, _, e in records if k == kind and e]
        res["kinds"][kind] = summary(lat, errs)
        res["errors"] += ["%s: %s" % (kind, e) for e in errs]
    res["probe"] = summary([dt for dt, _ in sampler.probe], [e for _, e in sampler.probe if e])
    res["rpc_probe"] = summary([dt for dt, _ in sampler.rpc_probe], [e for _, e in sampler.rpc_probe if e])
    res["errors"] += ["probe: %s" % e for _, e in sampler.probe if e]
    res["errors"] += ["ListRuns probe: %s" % e for _, e in sampler.rpc_probe if e]
    res["loadavg"] = os.getloadavg()[0]
    log("%s: %.1f s, %d errors, %d runs missing, %d wrong" % (name, wall, len(res["errors"]), missing, wrong))
    return res


def summary(lat, errs):
    return {"n": len(lat), "errors": len(errs), "p50": percentile(lat, 50), "p99": percentile(lat, 99),
            "max": max(lat) if lat else None}


def verify(env, expected):
    """Every run the clients staged is there, staged, with its last label: (missing, wrong)."""
    c = client(env)
    try:
        runs = {r.id: r for r in c.list_runs()[0]}  # limit 0: every run
    finally:
        c.close()
    missing = sum(1 for run_id in expected if run_id not in runs)
    wrong = sum(1 for run_id, label in expected.items()
                if run_id in runs and (runs[run_id].label != label or runs[run_id].status != "staged"))
    return missing, wrong


def stage_many(env, n):
    """`n` runs staged over gRPC, STAGE_THREADS at a time (see the module's docstring)."""
    from guildctl import scriptop

    log("staging %d runs over gRPC (Client.start_run, %d threads)" % (n, STAGE_THREADS))
    op = scriptop.for_opspec("noop.py", env.project)
    values, user = scriptop.flag_values(op, [], False, env.project)
    params = dict(flags=[], force_flags=False, label=None, tags=[], stage=True, background=False,
                  stop_after=None, opspec="noop.py", gpus=None, no_gpus=False)
    spec = scriptop.run_spec(op, values, user, None, [], None, params, env.project)
    t0 = time.perf_counter()
    c = client(env)
    try:
        with concurrent.futures.ThreadPoolExecutor(STAGE_THREADS) as pool:
            statuses = list(pool.map(lambda _: c.start_run(spec, stage=True).status, range(n)))
    finally:
        c.close()
    dt = time.perf_counter() - t0
    bad = sum(1 for s in statuses if s != "staged")
    log("staged %d runs in %.1f s (%d not staged)" % (n, dt, bad))
    return {"runs": n, "seconds": dt, "not_staged": bad}


def start_ticker(env):
    out = subprocess.run(env.ctl("run", "ticker.py", "--background", "-y"), env=env.env, cwd=env.project,
                         capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise RuntimeError("could not start the ticker run: %s" % out.stderr.strip())
    env.ticker = next(w for w in out.stdout.split() if len(w) == 32)
    deadline = time.monotonic() + 30
    while "tick %d" % WATCH_LINES not in subprocess.run(env.ctl("cat", env.ticker, "--output"), env=env.env,
                                                         capture_output=True, text=True).stdout:
        if time.monotonic() > deadline:
            raise RuntimeError("the ticker run printed nothing in 30 s")
        time.sleep(0.1)


# Report


def print_report(res, out):
    head = ("phase", "operation", "n", "errors", "p50", "p99", "max")
    rows = []
    for ph in res["phases"]:
        for kind, s in [*ph["kinds"].items(), ("probe: guildctl runs", ph["probe"]),
                        ("probe: its ListRuns, in-process", ph["rpc_probe"])]:
            rows.append((ph["name"], kind, str(s["n"]), str(s["errors"]), fmt_s(s["p50"]), fmt_s(s["p99"]), fmt_s(s["max"])))
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    line = "  ".join("%-*s" % (w, h) for w, h in zip(widths, head))
    print(line, file=out)
    print("-" * len(line), file=out)
    for r in rows:
        print("  ".join("%-*s" % (w, v) for w, v in zip(widths, r)).rstrip(), file=out)
    print("", file=out)
    for ph in res["phases"]:
        errors = len(ph["errors"]) + ph["runs_missing"] + ph["runs_wrong"]
        p99 = ph["probe"]["p99"]
        print("%s: %d clients x %d ops in %.1f s; errors %d (target 0: %s); runs staged by clients %d, missing %d, "
              "wrong %d; probe p99 %s (target < 1 s: %s), its ListRuns p99 %s; guildd CPU %.1f s (%.0f%% of a core), "
              "peak RSS %.0f MB; load average at the end %.1f on %d cores"
              % (ph["name"], ph["clients"], ph["ops"], ph["wall_s"], errors, "met" if errors == 0 else "NOT met",
                 ph["runs_expected"], ph["runs_missing"], ph["runs_wrong"], fmt_s(p99),
                 "met" if p99 is not None and p99 < 1 else "NOT met", fmt_s(ph["rpc_probe"]["p99"]), ph["daemon_cpu_s"],
                 100 * ph["daemon_cpu_s"] / ph["wall_s"], ph["daemon_peak_rss"] / 2**20, ph["loadavg"], os.cpu_count()),
              file=out)
        for e in ph["errors"][:10]:
            print("  - " + e, file=out)
    if res.get("staging"):
        s = res["staging"]
        print("staged %d runs over gRPC for phase B in %.1f s (%.0f runs/s)" % (s["runs"], s["seconds"], s["runs"] / s["seconds"]),
              file=out)
    print("elapsed %.0f s" % res["elapsed_s"], file=out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=10, metavar="N", help="client processes at once (default %(default)s)")
    ap.add_argument("--ops", type=int, default=200, metavar="N", help="operations per client (default %(default)s)")
    ap.add_argument("--staged", type=int, default=2000, metavar="N",
                    help="runs staged before phase B (0: skip phase B; default %(default)s)")
    ap.add_argument("--seed", type=int, default=1, help="seed of the operation mix (default %(default)s)")
    ap.add_argument("--json", action="store_true", help="print a JSON object on stdout (the table then goes to stderr)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = ap.parse_args(argv)
    if args.clients < 1 or args.ops < 1 or args.staged < 0:
        ap.error("--clients and --ops must be >= 1, --staged >= 0")
    t0 = time.perf_counter()
    env = Env(tempfile.mkdtemp(prefix="guildd-bench-load-"))
    log("bench dir %s" % env.root)
    res = {"phases": [], "staging": None}
    try:
        start_daemon(env)
        start_ticker(env)
        res["phases"].append(phase(env, "A", args.clients, args.ops, args.seed))
        if args.staged:
            res["staging"] = stage_many(env, args.staged)
            res["phases"].append(phase(env, "B (+%d staged)" % args.staged, args.clients, args.ops, args.seed + 1))
    finally:
        stop_daemon(env)
        if args.keep:
            log("kept %s" % env.root)
        else:
            shutil.rmtree(env.root, ignore_errors=True)
    res["elapsed_s"] = time.perf_counter() - t0
    report(res, args.json, print_report)
    failed = any(ph["errors"] or ph["runs_missing"] or ph["runs_wrong"] for ph in res["phases"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
