"""Crash matrix: many runs, an optimizer batch and a pipeline on simulated GPUs while guildd
is killed and restarted again and again; then every run's record against what really ran.

    python bench/crash_matrix.py [--runs 100] [--kills 5] [--signal kill|term|both] [--seed N]
                                 [--lines 50] [--delay 0.06] [--trials 6] [--optimizer random]
                                 [--json] [--keep]

A temp GUILD_HOME and a daemon on GUILD_SIMULATED_GPUS=8x80G. Every run is the operation
`train` (or `trial`, `step`: the same script) of a Guild file: it prints `line 0` to
`line L-1` (--lines, --delay seconds apart), then `loss: SEED/1000` (its flag `seed`).
Submitted through guildctl.api, as `guildctl run ... --background` would:
  - --runs runs, half started at once, half staged with `--gpus 1` (queue processing is
    off, as in a fresh daemon, until every run is submitted; then `queue start` lets them
    onto the 8 GPUs, a few at a time);
  - one optimizer batch, `trial delay=uniform[..] -o random --max-trials T --parallel 2
    --keep-batch` (--optimizer: another than random);
  - one pipeline, `pipe`: two `step` runs one after the other.
Then guildd is killed --kills times (SIGKILL, or SIGTERM: a graceful stop), the first while
the pipeline's first step prints, the others each at a random moment after the previous
daemon answered (spread over the time the runs take), and started again at once; then
every run is waited for. A last daemon reads the records back. Figures (target: all zero):
  runs lost            submitted (or made by the batch or the pipeline) but not listed;
  truncated output     a run's .guild/output without each of its lines and its loss once;
  wrong status         a run, trial, step, batch or pipeline not `completed`;
  scalars missing      no `loss` scalar, or not SEED/1000;
  short batches        batches with fewer than T trials listed;
  pipeline lines lost  lines a step printed that its pipeline's own output does not hold;
  made twice           trials or steps in no batch or pipeline: a child started, the daemon
                       killed before it was linked, and made again by the resumed loop.
Also printed: lines duplicated (a crash between a copy and its record may copy twice; not
a loss), kills that found no run active, and how long it took.

Nothing is asserted (tests/e2e/test_crash_matrix.py runs a small matrix and asserts the
figures are zero). It makes its own temp dir, never touches ~/.guild, and stops the daemon
and whatever runs it left.
"""

import argparse
import contextlib
import dataclasses
import io
import json
import math
import os
import pathlib
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import psutil

from benchlib import exe_beside_python, log, stop_process

GPU_COUNT = 8
SIMULATED_GPUS = "%dx80G" % GPU_COUNT
END_TIMEOUT_S = 600  # all runs ended after the last kill
READY_TIMEOUT_S = 60

TRAIN_PY = """\
import time

seed = 1
lines = 50
delay = 0.06

for i in range(lines):
    print("line %d" % i, flush=True)
    time.sleep(delay)
print("loss: %s" % (seed / 1000.0), flush=True)
"""

GUILD_YML = """\
train:
  main: train
  flags-import: all
trial:
  main: train
  flags-import: all
step:
  main: train
  flags-import: all
pipe:
  steps:
    - step seed=901 lines={lines} delay={delay}
    - step seed=902 lines={lines} delay={delay}
"""
PIPE_SEEDS = (901, 902)
BATCH_SEED = 1  # trials keep the flag's default


@dataclasses.dataclass
class Matrix:
    """What one matrix submits; the defaults are the issue's."""

    runs: int = 100
    kills: int = 5
    sig: int = signal.SIGKILL
    seed: int = 0
    lines: int = 50
    delay: float = 0.06
    trials: int = 6
    optimizer: str = "random"


class Home:
    """A temp GUILD_HOME, its project, and the daemon serving it."""

    def __init__(self, root: pathlib.Path, m: Matrix):
        self.root = root
        self.home = root / "guild-home"
        self.project = root / "project"
        self.project.mkdir(parents=True)
        (self.project / "train.py").write_text(TRAIN_PY)
        (self.project / "guild.yml").write_text(GUILD_YML.format(lines=m.lines, delay=m.delay))
        self.guildd = exe_beside_python("guildd", "crash_matrix.py")
        base = {k: v for k, v in os.environ.items() if k not in ("GUILD_HOME", "VIRTUAL_ENV", "GUILD_SIMULATED_GPUS")}
        self.env = dict(base, GUILD_HOME=str(self.home), GUILDCTL_NO_AUTOSTART="1", GUILD_SIMULATED_GPUS=SIMULATED_GPUS)
        self.daemon = None
        self.session = None

    def start(self):
        """Starts guildd and returns a Session once it is ready (it reads the index and the
        queue back, and adopts or ends the runs, before that)."""
        from guildctl import api

        with open(self.root / "guildd.stderr", "ab") as err:
            self.daemon = subprocess.Popen([self.guildd, "--foreground", "--no-log-stderr", "-H", str(self.home)],
                                           env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                           stderr=err, start_new_session=True)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            try:
                session = api.Session(self.home, autostart=False)
                with contextlib.redirect_stderr(io.StringIO()):  # "guildd is starting", while it is
                    ready = session.client.daemon_info().ready
                if ready:
                    self.session = session
                    return session
                session.close()
            except api.GuildError:
                if self.daemon.poll() is not None:
                    raise RuntimeError("guildd exited %d at start (see %s)"
                                       % (self.daemon.returncode, self.root / "guildd.stderr"))
            if time.monotonic() > deadline:
                raise RuntimeError("guildd was not ready within %d s" % READY_TIMEOUT_S)
            time.sleep(0.05)

    def kill(self, sig):
        if self.session is not None:
            self.session.close()
            self.session = None
        self.daemon.send_signal(sig)
        self.daemon.wait(timeout=60)

    def stop(self):
        """Stops the daemon and whatever runs are left under the home."""
        if self.session is not None:
            self.session.close()
            self.session = None
        stop_process(self.daemon, timeout=30)
        for proc in psutil.process_iter(["cwd"]):
            if (proc.info["cwd"] or "").startswith(str(self.home)):
                try:
                    proc.kill()
                except psutil.Error:
                    pass


def submit(h: Home, m: Matrix):
    """Submits the runs, the batch and the pipeline; returns {run id: seed} of the runs, the
    batch's id and the pipeline's id."""
    s = h.session
    runs = {}
    for i in range(m.runs):
        seed = 1 + i
        staged = i % 2 == 1
        r = s.run("train", seed=seed, lines=m.lines, delay=m.delay, cwd=h.project, background=True, stage=staged,
                  gpus=1 if staged else None)
        runs[r.id] = seed
    batch = s.run("trial", delay="uniform[%s:%s]" % (m.delay / 2, m.delay), lines=m.lines, cwd=h.project,
                  optimizer=m.optimizer, max_trials=m.trials, parallel=2, keep_batch=True, background=True)
    pipe = s.run("pipe", cwd=h.project, background=True)
    return runs, batch.id, pipe.id


def active(s) -> int:
    found, _ = s.client.list_runs(statuses=["staged", "pending", "running"])
    return len(found)


def wait_step_output(h: Home, pipe_id: str, lines: int):
    """Waits until the pipeline's first step has printed `lines` lines."""
    output = h.home / "runs" / pipe_id / "step" / ".guild" / "output"
    deadline = time.monotonic() + END_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            if output.read_text(errors="replace").count("line ") >= lines:
                return
        except OSError:
            pass
        time.sleep(0.02)
    raise RuntimeError("the pipeline's first step printed no %d lines within %d s" % (lines, END_TIMEOUT_S))


def kill_loop(h: Home, m: Matrix, rnd: random.Random, pipe_id: str):
    """Kills and restarts guildd m.kills times: first while the pipeline's first step prints
    (what it prints while no daemon runs must reach the pipeline's output), then each at a
    random moment after the last start; returns how many kills found no run active."""
    # The runs last about this long: the staged ones go 8 at a time, the trials 2 at a time.
    span = m.lines * m.delay * max(math.ceil(m.runs / 2 / GPU_COUNT) + 1, math.ceil(m.trials / 2), 2)
    idle = 0
    for k in range(m.kills):
        if k == 0:
            wait_step_output(h, pipe_id, m.lines // 4)  # the first kill lands while a step prints
        else:
            time.sleep(rnd.uniform(0.2, max(0.5, 1.5 * span / (m.kills + 1))))
        if not active(h.session):
            idle += 1
        log("kill %d/%d (%s)" % (k + 1, m.kills, signal.Signals(m.sig).name))
        h.kill(m.sig)
        h.start()
    return idle


def wait_end(s):
    deadline = time.monotonic() + END_TIMEOUT_S
    while active(s):
        if time.monotonic() > deadline:
            raise RuntimeError("runs still active %d s after the last kill" % END_TIMEOUT_S)
        time.sleep(0.5)


def expected_lines(m: Matrix, seed: int):
    return ["line %d" % i for i in range(m.lines)] + ["loss: %s" % (seed / 1000.0)]


def output_lines(run_dir) -> list:
    try:
        return (pathlib.Path(run_dir) / ".guild" / "output").read_text(errors="replace").splitlines()
    except OSError:
        return []


def missing_and_dups(have: list, want: list):
    """Lines of `want` (with their counts) `have` lacks, and lines it holds more often."""
    missing = dups = 0
    for line in set(want):
        n, k = have.count(line), want.count(line)
        missing += max(0, k - n)
        dups += max(0, n - k)
    return missing, dups


def linked(listed: dict, parent_id: str, named) -> dict:
    """{link name: child id} of the children linked into a parent's run dir."""
    parent = listed.get(parent_id)
    if parent is None:
        return {}
    out = {}
    for entry in os.scandir(parent.run_dir):
        if named(entry.name) and entry.is_symlink():
            out[entry.name] = os.path.basename(os.readlink(entry.path))
    return out


def log_lines(log_path, run_id: str, n: int = 8) -> str:
    """The daemons' last `n` log lines about a run, to say how a problem came about."""
    try:
        lines = [line.strip() for line in pathlib.Path(log_path).read_text(errors="replace").splitlines() if run_id[:8] in line]
    except OSError:
        return ""
    return " | ".join(lines[-n:])


def check(s, m: Matrix, runs: dict, batch_id: str, pipe_id: str, log_path=None) -> dict:
    """The figures: every run's record against the truth (`log_path`: the daemons' log, quoted
    for a run with a problem)."""
    listed = {r.id: r for r in s.runs()}
    f = dict(runs_lost=0, truncated_output=0, wrong_status=0, scalars_missing=0, short_batches=0,
             pipeline_lines_lost=0, runs_made_twice=0, lines_duplicated=0, checked=0)
    problems = []

    def check_run(run_id, seed, what):
        r = listed.get(run_id)
        if r is None:
            f["runs_lost"] += 1
            problems.append("%s %s lost" % (what, run_id[:8]))
            return
        f["checked"] += 1
        if r.status != "completed":
            f["wrong_status"] += 1
            problems.append("%s %s is %s (log: %s)" % (what, run_id[:8], r.status, log_lines(log_path, run_id) if log_path else "-"))
        missing, dups = missing_and_dups(output_lines(r.run_dir), expected_lines(m, seed))
        f["lines_duplicated"] += dups
        if missing:
            f["truncated_output"] += 1
            problems.append("%s %s: %d lines missing from its output" % (what, run_id[:8], missing))
        loss = r.scalars.get("loss")
        if loss is None or abs(loss - seed / 1000.0) > 1e-6:
            f["scalars_missing"] += 1
            size = len("\n".join(output_lines(r.run_dir)))
            problems.append("%s %s: loss scalar %s, want %s (output %d bytes; log: %s)"
                            % (what, run_id[:8], loss, seed / 1000.0, size, log_lines(log_path, run_id) if log_path else "-"))

    for run_id, seed in runs.items():
        check_run(run_id, seed, "run")
    for run_id, what in ((batch_id, "batch"), (pipe_id, "pipeline")):
        r = listed.get(run_id)
        if r is None:
            f["runs_lost"] += 1
            problems.append("%s %s lost" % (what, run_id[:8]))
        elif r.status != "completed":
            f["wrong_status"] += 1
            problems.append("%s %s is %s" % (what, run_id[:8], r.status))
    trials = linked(listed, batch_id, lambda name: name.startswith("trial-"))
    if len(trials) < m.trials:
        f["short_batches"] += 1
        f["runs_lost"] += m.trials - len(trials)
        problems.append("batch: %d trials linked, want %d" % (len(trials), m.trials))
    for trial_id in trials.values():
        check_run(trial_id, BATCH_SEED, "trial")
    steps = linked(listed, pipe_id, lambda name: name.startswith("step"))
    want_pipe = []
    for name, seed in zip(("step", "step_2"), PIPE_SEEDS):
        if name in steps:
            check_run(steps[name], seed, "step")
        else:
            f["runs_lost"] += 1
            problems.append("pipeline step %s lost" % name)
        want_pipe += expected_lines(m, seed)
    if pipe_id in listed:
        missing, dups = missing_and_dups(output_lines(listed[pipe_id].run_dir), want_pipe)
        f["pipeline_lines_lost"] += missing
        f["lines_duplicated"] += dups
        if missing:
            problems.append("pipeline %s: %d of its steps' lines missing from its output" % (pipe_id[:8], missing))
    children = set(trials.values()) | set(steps.values())
    for r in listed.values():
        if r.op in ("trial", "step") and r.id not in children:
            f["runs_made_twice"] += 1
            problems.append("%s %s (%s) is in no batch or pipeline: a child made again" % (r.op, r.id[:8], r.status))
    return dict(f, problems=problems)


def run_matrix(root: pathlib.Path, m: Matrix) -> dict:
    """One whole matrix in `root` (a new dir); returns its figures (and `problems`, one line
    each)."""
    rnd = random.Random(m.seed)
    h = Home(root, m)
    t0 = time.monotonic()
    try:
        s = h.start()
        s.client.configure_queue(paused=True)
        log("submitting %d runs (half staged), a batch of %d trials, a pipeline" % (m.runs, m.trials))
        runs, batch_id, pipe_id = submit(h, m)
        s.client.configure_queue(paused=False)
        idle = kill_loop(h, m, rnd, pipe_id)
        wait_end(h.session)
        h.kill(signal.SIGTERM)  # the records as a fresh daemon reads them back
        s = h.start()
        figures = check(s, m, runs, batch_id, pipe_id, h.home / "guildd.log")
        figures.update(kills=m.kills, idle_kills=idle, elapsed_s=round(time.monotonic() - t0, 1))
        return figures
    finally:
        h.stop()


FIGURES = (
    ("runs lost", "runs_lost"),
    ("runs with truncated output", "truncated_output"),
    ("runs with a wrong status", "wrong_status"),
    ("runs with the loss scalar missing", "scalars_missing"),
    ("batches short of their trial count", "short_batches"),
    ("pipeline: step lines missing from its output", "pipeline_lines_lost"),
    ("trials or steps made twice (not linked)", "runs_made_twice"),
)


def print_figures(name: str, m: Matrix, f: dict, out=sys.stdout):
    print("\n%s: %d runs (half staged on %s GPUs), a %d-trial %s batch --parallel 2, a 2-step pipeline; "
          "%d kills, %d of them with no run active; %.1f s"
          % (name, m.runs, SIMULATED_GPUS, m.trials, m.optimizer, f["kills"], f["idle_kills"], f["elapsed_s"]), file=out)
    width = max(len(label) for label, _ in FIGURES)
    for label, key in FIGURES:
        print("  %-*s  %5d   target 0  %s" % (width, label, f[key], "met" if f[key] == 0 else "NOT MET"), file=out)
    print("  %-*s  %5d   (reference: a copy repeated, not a loss)" % (width, "lines duplicated", f["lines_duplicated"]), file=out)
    print("  %-*s  %5d   (reference)" % (width, "runs checked", f["checked"]), file=out)
    for p in f["problems"][:20]:
        print("    - " + p, file=out)
    if len(f["problems"]) > 20:
        print("    ... %d more" % (len(f["problems"]) - 20), file=out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=100, metavar="N", help="runs, half of them staged (default %(default)s)")
    ap.add_argument("--kills", type=int, default=5, metavar="N", help="daemon kills per matrix (default %(default)s)")
    ap.add_argument("--signal", choices=("kill", "term", "both"), default="both",
                    help="kill -9, SIGTERM (graceful), or a matrix of each (default %(default)s)")
    ap.add_argument("--seed", type=int, default=0, help="random seed for the kill moments (default %(default)s)")
    ap.add_argument("--lines", type=int, default=50, metavar="N", help="lines each run prints (default %(default)s)")
    ap.add_argument("--delay", type=float, default=0.06, metavar="S", help="seconds between lines (default %(default)s)")
    ap.add_argument("--trials", type=int, default=6, metavar="N", help="the batch's trials (default %(default)s)")
    ap.add_argument("--optimizer", default="random", help="the batch's optimizer: random, gp, forest... (default %(default)s)")
    ap.add_argument("--json", action="store_true", help="also print the figures as one JSON object")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = ap.parse_args(argv)
    if args.runs < 2 or args.kills < 0 or args.lines < 1 or args.trials < 1:
        ap.error("--runs must be >= 2, --kills >= 0, --lines and --trials >= 1")
    sigs = {"kill": [signal.SIGKILL], "term": [signal.SIGTERM], "both": [signal.SIGKILL, signal.SIGTERM]}[args.signal]
    root = pathlib.Path(tempfile.mkdtemp(prefix="guildd-bench-crash-"))
    log("bench dir %s" % root)
    results = {}
    try:
        for sig in sigs:
            m = Matrix(runs=args.runs, kills=args.kills, sig=sig, seed=args.seed, lines=args.lines, delay=args.delay,
                       trials=args.trials, optimizer=args.optimizer)
            name = signal.Signals(sig).name
            results[name] = run_matrix(root / name, m)
            print_figures("guildd %s x%d" % (name, m.kills), m, results[name])
    finally:
        if args.keep:
            log("kept %s" % root)
        else:
            shutil.rmtree(root, ignore_errors=True)
    if args.json:
        print(json.dumps(results, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
