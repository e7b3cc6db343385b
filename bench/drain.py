"""Queue benchmark: guildd's staged-run queue draining no-op runs on 8 simulated GPUs, against
Guild AI 0.9's queue and task-spooler, as ratios.

    python bench/drain.py [--runs 2000] [--hold-runs 160] [--guild-runs 20] [--skip-guild]
                          [--skip-tsp] [--noop py|sh] [--no-restart] [--guild PATH_TO_GUILD_VENV] [--keep] [--json]

Every figure is measured in this invocation, baselines included, because the machines this runs
on are noisy. Nothing is asserted; the closing table says whether each target is met.

1. Ours: a guildd on a temp GUILD_HOME with GUILD_SIMULATED_GPUS=8x80G. Queue processing is
   off (a fresh daemon's default, as in Guild: staged runs wait), then --runs no-op runs (see
   below) are staged with `--gpus 1`: the first few with
   `guildctl run noop.sh --gpus 1 --stage -y`, one process each (the CLI stage rate), the rest
   in this process through guildctl.client.Client.start_run, the spec built once by guildctl's
   own scriptop (the gRPC stage rate). The daemon is then restarted (unless --no-restart), so
   its plan() statistics cover the drain alone and the queued runs are read back from their
   dirs. `queue start` (ConfigureQueue, paused=false: processing on) starts the drain; this
   process polls ListRuns with limit 1 every POLL_S until no run is staged, pending or
   running. The figures come from the run dirs afterwards: each run's `.guild/attrs/started`
   (µs; written by the daemon as the run becomes running, just before its shim is spawned),
   `stopped` (written by the shim once the run's process has exited) and `.guild/queue`
   (`granted.devices`):
     - runs started per second: runs / (last start - queue start);
     - freed GPU reused within: per GPU, the next run's start minus the previous run's stop
       on that GPU, p50 / p99 / max over all GPUs;
     - scheduling decision time: the daemon's own plan() times (ListQueue plan_p50_ms /
       plan_p99_ms), and guildd.scheduler.plan() called here on 10,000 queued entries with
       the 8 GPUs held, one free and all free (p50 / p99 of PLAN_CALLS calls).
   A freed GPU reused: in this drain the runs last a few ms and the daemon, not the GPUs, is
   what they wait for (it keeps fewer than one of the 8 GPUs busy on average), so a GPU
   often stays free while the daemon starts runs on others; the figure says how well the
   daemon keeps up, shown as a breakdown. The target is measured where a run waits for the
   GPU itself: 1b. the same daemon, processing off again, --hold-runs runs that each hold their
   GPU for HOLD_S (`time.sleep`, or `sleep` in sh) staged over gRPC and let go at once: all 8
   GPUs are busy and runs wait, so each run's end frees the one GPU the next run must go on;
   the reuse time per GPU, next start minus previous stop (p50 / p99 / max), and how busy the
   GPUs were (run time over 8 x the span), from the run dirs as above.
   CPU over the drain (psutil): the daemon's own, and that of the shims and the runs'
   processes (the daemon's child, the shim server, reaps the shims, and each shim reaps its
   run's process: the server's own and children times, plus the daemon's children times for
   a server that ended), per run; the cores divided by their sum is the rate this box's CPU
   allows, whatever the scheduler does.
2. Baselines, the same no-op: run one after another (process start cost here,
   wall and CPU); task-spooler (`tsp -S 8`, no run record): the jobs queued behind a blocker
   job and let go at once (past TSP_PREQUEUE jobs, fed while it drains: tsp holds ~1000),
   done when `tsp -w` (the last job) returns and `tsp -l` shows none queued or running; Guild
   AI 0.9's queue (`guild run queue run-once=yes -y`) over --guild-runs runs staged with
   `guild run noop.sh --stage -y`, one run at a time (it starts each with `guild run
   --restart`), timed the same way from its run dirs.

The no-op is `noop.sh` (`#!/bin/sh` and `:`), the same for every tool: a queue's own cost per
run is what this measures, and a Python no-op mostly measures Python's start-up. (On the
machines this was written on that is 50 ms of CPU per `python noop.py`, most of it in
site-packages' .pth files: two cores then cap any tool near 35 runs/s, task-spooler
included, where the issue has it at hundreds per second.) --noop py runs `noop.py` (`pass`)
with every tool instead, for that figure.

Targets (from the issue): >= 40 runs/s and >= 40x Guild's queue; plan p99 < 5 ms with 10k
queued; a freed GPU reused within 100 ms (p99, in 1b).

It makes its own temp dirs, never touches ~/.guild, and stops the daemon and tsp server it
started. Progress goes to stderr; with --json the table goes to stderr too and stdout holds one
JSON object.
"""

import os
import sys

import argparse
import concurrent.futures
import json
import pathlib
import resource
import shutil
import statistics
import subprocess
import tempfile
import time

import psutil

from benchlib import DEFAULT_GUILD_VENV, GUILD_INSTALLER, exe_beside_python, log, percentile, print_table, stop_process, yes

SIMULATED_GPUS = "8x80G"
GPU_COUNT = 8
CLI_STAGE_RUNS = 20  # staged one `guildctl` process each; the rest in-process over gRPC
STAGE_THREADS = 4  # concurrent StartRun calls for the in-process staging
POLL_S = 0.25  # drain completion poll (one ListRuns with limit 1)
TSP_POLL_S = 0.01
TSP_PREQUEUE = 900
PYTHON_RUNS = 20
PLAN_QUEUED = 10_000
PLAN_CALLS = 200
DRAIN_TIMEOUT_S = 1800

NOOP_PY = "pass\n"
NOOP_SH = "#!/bin/sh\n:\n"
HOLD_S = 0.25  # how long a run in 1b holds its GPU
HOLD_PY = "import time\ntime.sleep(%s)\n" % HOLD_S
HOLD_SH = "#!/bin/sh\nsleep %s\n" % HOLD_S
NOT_ENDED = ("staged", "pending", "running")


class Env:
    """Paths and environments for one invocation (all under one temp dir)."""

    def __init__(self, root, guild_venv):
        self.root = pathlib.Path(root)
        self.project = self.root / "project"
        self.home = self.root / "home"
        self.guild_home = self.root / "guild-home"
        self.tsp_dir = self.root / "tsp"
        for d in (self.project, self.home, self.guild_home, self.tsp_dir):
            d.mkdir()
        (self.project / "noop.py").write_text(NOOP_PY)
        (self.project / "noop.sh").write_text(NOOP_SH)
        (self.project / "noop.sh").chmod(0o755)
        (self.project / "hold.py").write_text(HOLD_PY)
        (self.project / "hold.sh").write_text(HOLD_SH)
        (self.project / "hold.sh").chmod(0o755)
        self.noop = "noop.sh"  # or noop.py (--noop py)
        self.guildctl = exe_beside_python("guildctl", "drain.py")
        self.guildd = exe_beside_python("guildd", "drain.py")
        self.guild = os.path.join(guild_venv, "bin", "guild") if guild_venv else None
        base = {k: v for k, v in os.environ.items()
                if k not in ("GUILD_HOME", "NO_PIP_FREEZE", "VIRTUAL_ENV", "GUILD_SIMULATED_GPUS")}
        self.ctl_env = dict(base, GUILD_HOME=str(self.home), GUILDCTL_NO_AUTOSTART="1")
        self.daemon_env = dict(self.ctl_env, GUILD_SIMULATED_GPUS=SIMULATED_GPUS)
        self.guild_env = dict(base, GUILD_HOME=str(self.guild_home))
        self.tsp_env = dict(base, TS_SOCKET=str(self.tsp_dir / "socket"), TMPDIR=str(self.tsp_dir),
                            TS_MAXFINISHED="100000")
        self.daemon = None  # Popen
        self.daemon_err = None

    def ctl(self, *args):
        return [self.guildctl, "-H", str(self.home), *args]

    @property
    def noop_cmd(self):
        """The no-op as a plain process: `python noop.py` (the interpreter guildctl records as
        the run's python) or `./noop.sh`."""
        return [sys.executable, self.noop] if self.noop.endswith(".py") else ["./" + self.noop]

    @property
    def noop_desc(self):
        return " ".join(["python"] + self.noop_cmd[1:]) if self.noop.endswith(".py") else self.noop_cmd[0]


def run_checked(cmd, env, cwd, timeout=600, what=None, stdout=subprocess.DEVNULL):
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, env=env, stdout=stdout, stderr=subprocess.PIPE, timeout=timeout)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError("%s exited %d: %s" % (what or " ".join(map(str, cmd)), p.returncode,
                                                 p.stderr.decode(errors="replace").strip()[-2000:]))
    return dt, p


# The daemon


def start_daemon(env):
    env.daemon_err = open(env.root / "guildd.stderr", "ab")
    t0 = time.perf_counter()
    env.daemon = subprocess.Popen([env.guildd, "--foreground", "--no-log-stderr", "-H", str(env.home)],
                                  env=env.daemon_env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=env.daemon_err, start_new_session=True)
    client = connect(env)
    return client, time.perf_counter() - t0


def connect(env, timeout=60):
    from guild_common import errors
    from guildctl.client import Client

    deadline = time.monotonic() + timeout
    while True:
        try:
            client = Client(env.home, autostart=False)
        except errors.DaemonUnavailable:
            if env.daemon.poll() is not None:
                raise RuntimeError("guildd exited %d at start (see %s)" % (env.daemon.returncode,
                                                                           env.root / "guildd.stderr"))
            if time.monotonic() > deadline:
                raise RuntimeError("guildd did not answer within %d s" % timeout)
            time.sleep(0.02)
            continue
        while not client.daemon_info().ready:  # a restart reads the index and the queue back first
            time.sleep(0.02)
        return client


def stop_daemon(env, problems):
    if env.daemon is None or env.daemon.poll() is not None:
        if env.daemon_err is not None:
            env.daemon_err.close()
        return
    if not stop_process(env.daemon):
        problems.append("guildd did not stop within 60 s of SIGTERM; killed")
    env.daemon_err.close()


# 1. Ours: stage, drain, read the run dirs


def noop_spec(env, script=None):
    """The spec `guildctl run NOOP --gpus 1 --stage -y` sends, built by guildctl's scriptop."""
    from guildctl import queueopts, scriptop

    script = script or env.noop
    op = scriptop.for_opspec(script, env.project)
    values, user = scriptop.flag_values(op, [], False, env.project)
    params = dict(flags=[], force_flags=False, label=None, tags=[], stage=True, background=False,
                  stop_after=None, opspec=script, gpus="1", no_gpus=False)
    spec = scriptop.run_spec(op, values, user, None, [], None, params, env.project)
    spec.env.clear()
    spec.env.update(env.ctl_env)  # what the CLI, run from the bench's environment, would send
    spec.resources.CopyFrom(queueopts.resource_request("1"))
    return spec


def stage_ours(env, client, runs, problems):
    cli_n = min(CLI_STAGE_RUNS, runs)
    log("ours: staging %d runs with `guildctl run %s --gpus 1 --stage -y`" % (cli_n, env.noop))
    cmd = env.ctl("run", env.noop, "--gpus", "1", "--stage", "-y")
    t0 = time.perf_counter()
    for _ in range(cli_n):
        run_checked(cmd, env.ctl_env, env.project, what="guildctl run --stage")
    cli_s = time.perf_counter() - t0
    rest = runs - cli_n
    log("ours: staging %d runs in-process (Client.start_run, %d threads)" % (rest, STAGE_THREADS))
    spec = noop_spec(env)
    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(STAGE_THREADS) as pool:
        staged = list(pool.map(lambda _: client.start_run(spec, stage=True).status, range(rest)))
    grpc_s = time.perf_counter() - t0
    if any(s != "staged" for s in staged):
        problems.append("stage: %d of %d runs not staged" % (sum(s != "staged" for s in staged), rest))
    return {"cli_runs": cli_n, "cli_s": cli_s, "cli_rate": cli_n / cli_s if cli_n else None,
            "grpc_runs": rest, "grpc_s": grpc_s, "grpc_rate": rest / grpc_s if rest else None,
            "grpc_threads": STAGE_THREADS}


def drain_ours(env, client, runs, restart, problems):
    res = {}
    if restart:
        log("ours: restarting guildd (queued runs are read back; plan stats cover the drain only)")
        client.close()
        stop_daemon(env, problems)
        client, res["restart_s"] = start_daemon(env)
        log("ours: guildd answered %.2f s after start, with %d runs queued" % (res["restart_s"], runs))
    q = client.list_queue()
    res["queued_before"] = len(q.entries)
    res["plans_before"] = q.plans
    if len(q.entries) != runs or not q.paused:
        problems.append("before the drain: %d queued (want %d), paused=%s" % (len(q.entries), runs, q.paused))
    daemon = psutil.Process(env.daemon.pid)
    cpu0, shims0 = daemon.cpu_times(), shims_cpu_s(daemon)
    log("ours: queue start; draining %d runs on %d simulated GPUs" % (runs, GPU_COUNT))
    t_resume, polls = resume_and_wait(client, "drain", problems)
    t_done = time.time()
    cpu1, shims1 = daemon.cpu_times(), shims_cpu_s(daemon)
    q = client.list_queue()
    res.update(wall_s=t_done - t_resume, polls=polls, plans=q.plans - res["plans_before"],
               plan_p50_ms=q.plan_p50_ms, plan_p99_ms=q.plan_p99_ms,
               daemon_cpu_s=(cpu1.user + cpu1.system) - (cpu0.user + cpu0.system),
               children_cpu_s=shims1 - shims0)
    res["figures"] = run_dir_figures(env.home, t_resume, runs, problems)
    client.close()
    return res


def resume_and_wait(client, what, problems):
    """Switches queue processing on (`guildctl queue start`) and polls until no run is staged,
    pending or running; returns when it switched on (time.time()) and how many polls it took."""
    t_go = time.time()
    client.configure_queue(paused=False)
    polls = 0
    while True:
        time.sleep(POLL_S)
        _, left = client.list_runs(statuses=NOT_ENDED, limit=1)
        polls += 1
        if left == 0:
            return t_go, polls
        if time.time() - t_go > DRAIN_TIMEOUT_S:
            problems.append("%s: %d runs still not ended after %d s" % (what, left, DRAIN_TIMEOUT_S))
            return t_go, polls


def hold_ours(env, client, runs, problems):
    """1b: runs that hold their GPU HOLD_S each, staged with processing off, let go at once."""
    script = env.noop.replace("noop", "hold")
    client.configure_queue(paused=True)
    spec = noop_spec(env, script)
    log("ours: staging %d `%s` runs (%.2f s each) for the reuse figure" % (runs, script, HOLD_S))
    with concurrent.futures.ThreadPoolExecutor(STAGE_THREADS) as pool:
        ids = set(pool.map(lambda _: client.start_run(spec, stage=True).id, range(runs)))
    log("ours: queue start; %d runs wait for %d GPUs" % (runs, GPU_COUNT))
    t_go, _polls = resume_and_wait(client, "hold", problems)
    f = run_dir_figures(env.home, t_go, runs, problems, ids)
    log("ours: %d runs holding a GPU %.2f s: GPUs %.0f%% busy, reuse p50 %s p99 %s"
        % (f["runs"], HOLD_S, f["gpu_busy"] * 100, fmt_ms(f["reuse_ms_p50"]), fmt_ms(f["reuse_ms_p99"])))
    return {"runs": runs, "hold_s": HOLD_S, "script": script, "figures": f}


def shims_cpu_s(daemon):
    """CPU seconds the shims and the runs' processes took so far: the daemon's live children
    (the shim server, which reaps the shims) with their reaped children, and the daemon's
    reaped children (a server that ended)."""
    t = daemon.cpu_times()
    total = t.children_user + t.children_system
    for child in daemon.children():
        try:
            c = child.cpu_times()
        except psutil.Error:
            continue
        total += c.user + c.system + c.children_user + c.children_system
    return total


def read_int_attr(run_dir, name):
    """An attr as Guild writes it (YAML: `1795355694078206\n...\n`), if it is an int."""
    from guild_common import rundir

    value = rundir.read_attr(run_dir, name)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def run_dir_figures(home, t_go, runs, problems, ids=None):
    """Figures from the run dirs (those of `ids` only, if given)."""
    recs = []
    for run_dir in (home / "runs").iterdir():
        if ids is not None and run_dir.name not in ids:
            continue
        started, stopped = read_int_attr(run_dir, "started"), read_int_attr(run_dir, "stopped")
        exit_status = read_int_attr(run_dir, "exit_status")
        try:
            granted = json.loads((run_dir / ".guild" / "queue").read_text()).get("granted") or {}
        except (FileNotFoundError, ValueError):
            granted = {}
        recs.append((run_dir.name, started, stopped, exit_status, tuple(granted.get("devices") or ())))
    bad = [r for r in recs if r[1] is None or r[2] is None or r[3] != 0]
    if len(recs) != runs or bad:
        problems.append("run dirs: %d (want %d), %d without started/stopped or exit 0"
                        % (len(recs), runs, len(bad)))
    recs = [r for r in recs if r[1] is not None and r[2] is not None]
    wrong = [r for r in recs if len(r[4]) != 1]
    if wrong:
        problems.append("%d runs were granted other than 1 GPU (e.g. %s: %r)" % (len(wrong), wrong[0][0][:8],
                                                                                wrong[0][4]))
    go_us = t_go * 1e6
    starts = sorted(r[1] for r in recs)
    stops = sorted(r[2] for r in recs)
    gaps, overlaps = [], 0
    per_gpu = {}
    for r in recs:
        for d in r[4]:
            per_gpu.setdefault(d, []).append((r[1], r[2]))
    for d, spans in per_gpu.items():
        spans.sort()
        for (s0, e0), (s1, _e1) in zip(spans, spans[1:]):
            if s1 < e0:
                overlaps += 1
            gaps.append((s1 - e0) / 1e3)
    if overlaps:
        problems.append("%d times a run started on a GPU before the previous run on it stopped" % overlaps)
    busy = sum(r[2] - r[1] for r in recs) / 1e6
    last_start_s = (starts[-1] - go_us) / 1e6
    last_stop_s = (stops[-1] - go_us) / 1e6
    durations = [(r[2] - r[1]) / 1e3 for r in recs]
    return {
        "runs": len(recs),
        "first_start_ms": (starts[0] - go_us) / 1e3,
        "last_start_s": last_start_s,
        "last_stop_s": last_stop_s,
        "started_per_s": len(recs) / last_start_s,
        "completed_per_s": len(recs) / last_stop_s,
        "gpus_used": sorted(per_gpu),
        "runs_per_gpu": {d: len(s) for d, s in sorted(per_gpu.items())},
        "reuse_ms_p50": percentile(gaps, 50),
        "reuse_ms_p99": percentile(gaps, 99),
        "reuse_ms_max": max(gaps) if gaps else None,
        "run_ms_p50": percentile(durations, 50),
        "mean_concurrency": busy / last_stop_s,
        "gpu_busy": busy / (GPU_COUNT * (stops[-1] - starts[0]) / 1e6),
    }


# Direct plan() timing


def bench_plan(queued, calls):
    from guildd import scheduler

    gpus = tuple(scheduler.GpuState(index=i, memory_total=80 * 2**30, memory_free=80 * 2**30)
                 for i in range(GPU_COUNT))
    entries = [scheduler.Entry(run_id="%032x" % n, user="bench", request=scheduler.Request(gpus=1), seq=n)
               for n in range(queued)]

    def holdings(held):
        return tuple(scheduler.Holding(run_id="f" * 24 + "%08x" % i, user="bench", devices=(i,), started_us=i)
                     for i in held)

    cases = [("8 GPUs held", holdings(range(GPU_COUNT)), 0),
             ("1 GPU free", holdings(range(GPU_COUNT - 1)), 1),
             ("8 GPUs free", (), GPU_COUNT)]
    out = {}
    for name, running, want in cases:
        box = scheduler.Box(gpus=gpus, running=running, cpu_slots=2)
        starts = scheduler.plan(entries, box)  # warm-up; its starts are reported (not checked)
        times = []
        for _ in range(calls):
            t0 = time.perf_counter()
            scheduler.plan(entries, box)
            times.append((time.perf_counter() - t0) * 1000)
        out[name] = {"p50_ms": percentile(times, 50), "p99_ms": percentile(times, 99),
                     "starts": len(starts), "want_starts": want}
        log("plan(): %d queued, %s: p50 %.3f ms, p99 %.3f ms (%d starts)"
            % (queued, name, out[name]["p50_ms"], out[name]["p99_ms"], len(starts)))
    return out


# 2. Baselines


def bench_python(env, n):
    cmd = env.noop_cmd
    run_checked(cmd, env.ctl_env, env.project)
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    times = [run_checked(cmd, env.ctl_env, env.project)[0] for _ in range(n)]
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime) / n
    med = statistics.median(times)
    log("%s: median %.1f ms over %d, %.1f ms CPU each" % (env.noop_desc, med * 1000, n, cpu * 1000))
    return {"runs": n, "median_s": med, "per_s": 1 / med, "cpu_s": cpu, "cmd": cmd}


def find_tsp():
    for name in ("tsp", "ts"):
        path = shutil.which(name)
        if path:
            try:
                out = subprocess.run([path, "-h"], capture_output=True, timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                continue
            text = (out.stdout + out.stderr).decode(errors="replace").lower()
            if "task spooler" in text or "-s [num]" in text:  # not moreutils' `ts`
                return path
    if os.geteuid() == 0 and shutil.which("apt-get"):
        log("tsp: not found; apt-get install -y task-spooler")
        subprocess.run(["apt-get", "install", "-y", "task-spooler"], capture_output=True, timeout=300)
        return shutil.which("tsp")
    return None


def tsp_unfinished(tsp, env):
    out = subprocess.run([tsp, "-l"], env=env.tsp_env, capture_output=True, text=True).stdout
    return sum(1 for line in out.splitlines()[1:] if line.split()[1:2] in (["running"], ["queued"]))


def bench_tsp(env, tsp, runs, problems):
    go = env.tsp_dir / "go"
    run = lambda *args: run_checked([tsp, *args], env.tsp_env, env.project, what="tsp " + " ".join(args),
                                    stdout=subprocess.PIPE)  # noqa: E731
    # tsp holds at most ~1000 waiting jobs (each is a client process with a connection to the
    # server, TS_MAXCONN; past it `tsp CMD` blocks): the first TSP_PREQUEUE go in behind the
    # blocker, the rest are fed while it drains (`tsp CMD` ~1 ms each, counted in its time).
    pre = min(runs, TSP_PREQUEUE)
    try:
        run("-S", "1")
        run("sh", "-c", "while [ ! -e %s ]; do sleep 0.005; done" % go)  # holds the one slot
        log("tsp: queueing %d `%s` jobs behind a blocker" % (pre, env.noop_desc))
        t0 = time.perf_counter()
        for _ in range(pre):
            run(*env.noop_cmd)
        queue_s = time.perf_counter() - t0
        run("-S", str(GPU_COUNT))
        log("tsp: go, %d slots%s" % (GPU_COUNT, ", feeding %d more" % (runs - pre) if runs > pre else ""))
        t0 = time.perf_counter()
        go.touch()
        for _ in range(runs - pre):
            run(*env.noop_cmd)
        run("-w")  # blocks until the last job queued ends: no polling while the rest run
        while tsp_unfinished(tsp, env):  # jobs started before it may still be running
            time.sleep(TSP_POLL_S)
        drain_s = time.perf_counter() - t0
        out = subprocess.run([tsp, "-l"], env=env.tsp_env, capture_output=True, text=True).stdout
        finished = [line.split() for line in out.splitlines()[1:] if line.split()[1:2] == ["finished"]]
        failed = sum(1 for f in finished if f[3:4] != ["0"])
        if len(finished) != runs + 1 or failed:
            problems.append("tsp: %d jobs finished (want %d), %d with a non-zero exit"
                            % (len(finished) - 1, runs, failed))
    finally:
        go.touch()  # lets the blocker end, whatever happened
        subprocess.run([tsp, "-K"], env=env.tsp_env, capture_output=True)
    log("tsp: %d jobs in %.2f s" % (runs, drain_s))
    return {"path": tsp, "runs": runs, "prequeued": pre, "queue_s": queue_s, "queue_rate": pre / queue_s,
            "drain_s": drain_s, "per_s": runs / drain_s, "slots": GPU_COUNT}


def bench_guild(env, runs, problems):
    log("guild: staging %d runs with `guild run %s --stage -y`" % (runs, env.noop))
    t0 = time.perf_counter()
    for _ in range(runs):
        run_checked([env.guild, "run", env.noop, "--stage", "-y"], env.guild_env, env.project,
                    what="guild run --stage")
    stage_s = time.perf_counter() - t0
    log("guild: `guild run queue run-once=yes -y`")
    t_go = time.time()
    t0 = time.perf_counter()
    run_checked([env.guild, "run", "queue", "run-once=yes", "-y"], env.guild_env, env.project,
                what="guild run queue", timeout=3600)
    wall_s = time.perf_counter() - t0
    recs = []
    for run_dir in (env.guild_home / "runs").iterdir():
        opref = (run_dir / ".guild" / "opref").read_text() if (run_dir / ".guild" / "opref").exists() else ""
        if env.noop not in opref:
            continue  # the queue's own run
        recs.append((read_int_attr(run_dir, "started"), read_int_attr(run_dir, "stopped"),
                     read_int_attr(run_dir, "exit_status")))
    done = [r for r in recs if r[0] and r[1] and r[2] == 0]
    if len(done) != runs:
        problems.append("guild: %d of %d runs completed by its queue" % (len(done), runs))
    done.sort()
    go_us = t_go * 1e6
    gaps = [(b[0] - a[1]) / 1e3 for a, b in zip(done, done[1:])]
    res = {"runs": runs, "stage_s": stage_s, "stage_rate": runs / stage_s, "wall_s": wall_s,
           "first_start_ms": (done[0][0] - go_us) / 1e3 if done else None}
    if done:
        last_start_s = (done[-1][0] - go_us) / 1e6
        res.update(last_start_s=last_start_s, started_per_s=len(done) / last_start_s,
                   completed_per_s=len(done) / ((done[-1][1] - go_us) / 1e6),
                   next_start_ms_p50=percentile(gaps, 50), next_start_ms_p99=percentile(gaps, 99))
    log("guild: %d runs drained in %.1f s" % (len(done), wall_s))
    return res


# Report


def fmt_ms(ms):
    return "-" if ms is None else ("%.2f ms" % ms if ms < 10 else "%.0f ms" % ms)


def build_rows(res):
    rows = []  # (figure, measured, baseline, ratio, target, met)
    py = res["python"]
    st = res["stage"]
    d = res["drain"]
    f = d["figures"]
    py_rate = "%s %.1f/s" % (res["noop_desc"].split()[0], py["per_s"])
    rows.append(("%s, one after another" % res["noop_desc"], "%.1f ms" % (py["median_s"] * 1000), "",
                 "", "(reference)", ""))
    if st["cli_runs"]:
        rows.append(("stage rate, guildctl run --stage (CLI)", "%.1f runs/s" % st["cli_rate"], py_rate,
                     "", "(reference)", ""))
    if st["grpc_runs"]:
        rows.append(("stage rate, Client.start_run x%d threads" % st["grpc_threads"],
                     "%.0f runs/s" % st["grpc_rate"], "", "", "(reference)", ""))
    if "restart_s" in d:
        rows.append(("guildd restart with %d queued, until ready" % d["queued_before"],
                     "%.2f s" % d["restart_s"], "", "", "(reference)", ""))
    g = res.get("guild")
    t = res.get("tsp")
    ours = f["started_per_s"]
    base, ratio, met = "", "", ours >= 40
    if g and g.get("started_per_s"):
        base, ratio = "guild %.2f/s" % g["started_per_s"], "%.1fx" % (ours / g["started_per_s"])
        met = met and ours / g["started_per_s"] >= 40
    rows.append(("runs started/s, %d x %s on %d GPUs" % (f["runs"], res["noop"], GPU_COUNT), "%.1f runs/s" % ours, base,
                 ratio, ">= 40/s, >= 40x", yes(met)))
    if t:
        rows.append(("runs started/s vs task-spooler (no record)", "%.1f runs/s" % ours,
                     "tsp %.1f/s" % t["per_s"], "%.2fx" % (ours / t["per_s"]), "(reference)", ""))
    rows.append(("runs started/s vs %s one after another" % res["noop_desc"].split()[0], "%.1f runs/s" % ours, py_rate,
                 "%.2fx" % (ours / py["per_s"]), "(reference)", ""))
    rows.append(("runs completed/s (queue start -> last stop)", "%.1f runs/s" % f["completed_per_s"],
                 "guild %.2f/s" % g["completed_per_s"] if g and g.get("completed_per_s") else "", "",
                 "(reference)", ""))
    rows.append(("drain: first run started after queue start", fmt_ms(f["first_start_ms"]),
                 "guild " + fmt_ms(g["first_start_ms"]) if g else "", "", "(reference)", ""))
    h = res.get("hold")
    if h:
        hf = h["figures"]
        rows.append(("freed GPU reused within p50 / p99 (1b: %d x %.2f s runs)" % (hf["runs"], h["hold_s"]),
                     "%s / %s" % (fmt_ms(hf["reuse_ms_p50"]), fmt_ms(hf["reuse_ms_p99"])),
                     "guild next run %s / %s" % (fmt_ms(g.get("next_start_ms_p50")), fmt_ms(g.get("next_start_ms_p99")))
                     if g else "", "", "p99 < 100 ms",
                     yes(hf["reuse_ms_p99"] is not None and hf["reuse_ms_p99"] < 100)))
        rows.append(("1b: freed GPU reused within max; GPUs busy", "%s; %.0f%%" % (fmt_ms(hf["reuse_ms_max"]), hf["gpu_busy"] * 100),
                     "", "", "(reference)", ""))
    rows.append(("no-op drain: a GPU's next run after its last, p50 / p99 / max",
                 "%s / %s / %s" % (fmt_ms(f["reuse_ms_p50"]), fmt_ms(f["reuse_ms_p99"]), fmt_ms(f["reuse_ms_max"])),
                 "", "", "(breakdown)", ""))
    rows.append(("run process started -> stopped p50", fmt_ms(f["run_ms_p50"]), "", "",
                 "(breakdown)", ""))
    rows.append(("runs running at once, mean over the drain", "%.1f" % f["mean_concurrency"], "", "",
                 "(breakdown)", ""))
    rows.append(("guildd CPU over the drain, per run", "%.1f ms" % (d["daemon_cpu_s"] * 1000 / f["runs"]),
                 "", "%.0f%% of a core" % (100 * d["daemon_cpu_s"] / d["wall_s"]), "(breakdown)", ""))
    per_run_cpu = (d["daemon_cpu_s"] + d["children_cpu_s"]) / f["runs"]
    rows.append(("shim + run process CPU, per run", "%.1f ms" % (d["children_cpu_s"] * 1000 / f["runs"]),
                 "%s %.1f ms" % (res["noop_desc"].split()[0], py["cpu_s"] * 1000), "", "(breakdown)", ""))
    rows.append(("CPU ceiling: %d cores / CPU per run" % res["cores"], "%.1f runs/s" % (res["cores"] / per_run_cpu),
                 "%s %.1f/s" % (res["noop_desc"].split()[0], res["cores"] / py["cpu_s"]), "", "(breakdown)", ""))
    rows.append(("guildd plan() p50 / p99 (%d plans, <= %d queued)" % (d["plans"], d["queued_before"]),
                 "%s / %s" % (fmt_ms(d["plan_p50_ms"]), fmt_ms(d["plan_p99_ms"])), "", "", "p99 < 5 ms",
                 yes(d["plan_p99_ms"] < 5)))
    for name, p in res["plan"].items():
        rows.append(("plan() p50 / p99, %dk queued, %s" % (res["plan_queued"] // 1000, name),
                     "%s / %s" % (fmt_ms(p["p50_ms"]), fmt_ms(p["p99_ms"])), "", "", "p99 < 5 ms",
                     yes(p["p99_ms"] < 5)))
    if t:
        rows.append(("task-spooler: queue rate (tsp CMD)", "%.0f jobs/s" % t["queue_rate"], "", "",
                     "(reference)", ""))
    if g:
        rows.append(("guild: stage rate (guild run --stage)", "%.2f runs/s" % g["stage_rate"], "", "",
                     "(reference)", ""))
        rows.append(("guild: queue run-once wall, %d runs" % g["runs"], "%.1f s" % g["wall_s"], "", "",
                     "(reference)", ""))
    return rows


# Main


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=2000, metavar="N",
                    help="no-op runs staged and drained by guildd and by tsp (default %(default)s)")
    ap.add_argument("--hold-runs", type=int, default=160, metavar="N",
                    help="runs holding a GPU %.2f s each, for the reuse figure (1b; 0: skip; default "
                         "%%(default)s)" % HOLD_S)
    ap.add_argument("--guild-runs", type=int, default=20, metavar="N",
                    help="runs drained by Guild 0.9's queue, ~1 run/s (default %(default)s)")
    ap.add_argument("--noop", choices=("py", "sh"), default="sh",
                    help="the no-op: noop.py (`pass`, run by Python) or noop.sh (`:`, by /bin/sh), the "
                         "same for every tool (default %(default)s)")
    ap.add_argument("--guild", default=DEFAULT_GUILD_VENV, metavar="PATH",
                    help="Guild AI 0.9 venv (default %(default)s)")
    ap.add_argument("--skip-guild", action="store_true", help="no Guild 0.9 baseline")
    ap.add_argument("--skip-tsp", action="store_true", help="no task-spooler baseline")
    ap.add_argument("--no-restart", action="store_true",
                    help="drain with the daemon that staged the runs (its plan stats then include "
                         "the plans made while staging with processing off)")
    ap.add_argument("--json", action="store_true",
                    help="print a JSON object on stdout (the table then goes to stderr)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dirs")
    args = ap.parse_args(argv)
    if args.runs < 2 or args.guild_runs < 2:
        ap.error("--runs and --guild-runs must be >= 2")
    guild_venv = None
    if not args.skip_guild:
        if os.path.isfile(os.path.join(args.guild, "bin", "guild")):
            guild_venv = args.guild
        else:
            log("Guild 0.9 not available at %s: Guild figures are skipped (install it with %s)"
                % (args.guild, os.path.normpath(GUILD_INSTALLER)))
    problems, res = [], {}
    t0 = time.perf_counter()
    env = Env(tempfile.mkdtemp(prefix="guildd-bench-queue-"), guild_venv)
    env.noop = "noop." + args.noop
    res["noop"], res["noop_desc"], res["cores"] = env.noop, env.noop_desc, os.cpu_count()
    log("bench dir %s\n  guildctl %s\n  guildd   %s\n  guild    %s"
        % (env.root, env.guildctl, env.guildd, env.guild or "(skipped)"))
    try:
        res["python"] = bench_python(env, PYTHON_RUNS)
        client, res["daemon_start_s"] = start_daemon(env)
        client.configure_queue(paused=True)
        res["stage"] = stage_ours(env, client, args.runs, problems)
        res["drain"] = drain_ours(env, client, args.runs, not args.no_restart, problems)
        client = connect(env)
        res["hold"] = hold_ours(env, client, args.hold_runs, problems) if args.hold_runs else None
        client.close()
        stop_daemon(env, problems)
        f = res["drain"]["figures"]
        log("ours: %d runs, %.1f started/s, GPU reuse p50 %s p99 %s"
            % (f["runs"], f["started_per_s"], fmt_ms(f["reuse_ms_p50"]), fmt_ms(f["reuse_ms_p99"])))
        res["plan_queued"] = PLAN_QUEUED
        res["plan"] = bench_plan(PLAN_QUEUED, PLAN_CALLS)
        if args.skip_tsp:
            res["tsp"] = None
        else:
            tsp = find_tsp()
            if tsp:
                res["tsp"] = bench_tsp(env, tsp, args.runs, problems)
            else:
                log("task-spooler not available (no tsp, and it could not be installed): skipped")
                res["tsp"] = None
        res["guild"] = bench_guild(env, args.guild_runs, problems) if env.guild else None
    finally:
        stop_daemon(env, problems)
        if args.keep:
            log("kept %s" % env.root)
        else:
            shutil.rmtree(env.root, ignore_errors=True)
    res["problems"] = problems
    res["elapsed_s"] = time.perf_counter() - t0
    out = sys.stderr if args.json else sys.stdout
    print("", file=out)
    print_table(build_rows(res), out)
    print("\nproblems: %s" % ("none" if not problems else ""), file=out)
    for p in problems:
        print("  - " + p, file=out)
    print("elapsed %.0f s" % res["elapsed_s"], file=out)
    if args.json:
        json.dump(res, sys.stdout, indent=2, sort_keys=True, default=str)
        print()


if __name__ == "__main__":
    main()
