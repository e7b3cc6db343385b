"""`guildctl run --run-dir DIR`: a run in DIR instead of GUILD_HOME/runs/<id>, as Guild 0.9
does it. The run is outside GUILD_HOME, so the daemon's run store can't see it (nor can
`guildctl runs`): no daemon is involved. guildctl writes DIR in Guild's layout with the same
code the daemon uses (guild_common.runlayout), runs the process in the foreground with the
user's own rights, copies its output to the terminal and to DIR/.guild/output, and records
its end. Guild reuses DIR when it exists (its other files stay), and so does this."""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import click

from guild_common import errors, home as homelib, opconfig, rundir, runlayout

# Seconds a stopped process has to exit after SIGTERM before it is killed (as the shim).
STOP_GRACE_SECONDS = 30.0

# Run options that need the daemon (a queue, a run store, a run to start again), refused
# with --run-dir: (option, why).
DAEMON_ONLY = (
    ("stage", "--stage can't be used with --run-dir: a run outside GUILD_HOME has no queue to wait in"),
    ("background", "--background can't be used with --run-dir: the run is guildctl's own foreground process"),
    ("start", "--start can't be used with --run-dir: it starts a staged run of the run store"),
    ("restart", "--restart can't be used with --run-dir: it runs a run of the run store again"),
    ("proto", "--proto can't be used with --run-dir: use the operation and its flags instead"),
    ("needed", "--needed can't be used with --run-dir: runs outside GUILD_HOME aren't searched"),
    ("gpus", "--gpus can't be used with --run-dir: GPUs are granted by guildd's queue (use --no-gpus, or no option)"),
    ("gpu_memory", "--gpu-memory can't be used with --run-dir: GPUs are granted by guildd's queue"),
    ("queue", "--priority, --queue and --after can't be used with --run-dir: a run outside GUILD_HOME isn't queued"),
    ("batch", "batch options can't be used with --run-dir: a batch's trials are runs of the run store"),
)


def option_refusal(given: dict) -> str | None:
    """Why the run options `given` (name -> value, falsy when not given) can't go with
    --run-dir, or None."""
    for name, why in DAEMON_ONLY:
        if given.get(name):
            return why
    return None


def spec_refusal(spec, resources, batch_plan) -> str | None:
    """Why the prepared run can't be made in a run dir, or None: what only the daemon does
    (a batch's trials, a pipeline's steps, dependencies, GPUs from the Guild file)."""
    if batch_plan is not None:
        return "a batch (flag lists or ranges, @file) can't be run with --run-dir: its trials are runs of the run store"
    if spec.steps:
        return f"'{spec.op_name}' is a pipeline: its steps are runs of the run store, so it can't be run with --run-dir"
    if spec.requires_json not in ("", "[]"):
        return f"'{spec.op_name}' has dependencies (requires): they are resolved by guildd, so it can't be run with --run-dir"
    if resources.gpus or resources.devices or resources.gpu_memory:
        return f"'{spec.op_name}' asks for GPUs (resources): GPUs are granted by guildd's queue, so it can't be run with --run-dir"
    return None


def dir_refusal(run_dir: str, guild_home: str) -> str | None:
    """Why `run_dir` can't hold the run, or None. An existing dir is reused, as Guild does;
    a dir in GUILD_HOME's run store would be taken for one of its runs."""
    if os.path.exists(run_dir) and not os.path.isdir(run_dir):
        return f"--run-dir '{run_dir}' exists and is not a directory"
    runs = os.path.realpath(homelib.runs_dir(guild_home))
    real = os.path.realpath(run_dir)
    if real == runs or real.startswith(runs + os.sep):
        return f"--run-dir '{run_dir}' is in GUILD_HOME's run store ({runs}): use 'guildctl run' without --run-dir"
    return None


def run(prepared, run_dir: str, no_gpus: bool, stop_after: float) -> int:
    """Writes the run into `run_dir`, runs it in the foreground and returns its exit code
    (128+N when stopped by signal N, as `guildctl run` does)."""
    run_dir = os.path.abspath(run_dir)
    guild_home = str(homelib.guild_home())
    why = dir_refusal(run_dir, guild_home)
    if why:
        raise errors.InvalidArgument(why)
    spec = prepared.spec
    config = opconfig.config_from_spec(spec)
    run_id = os.path.basename(run_dir)  # Guild's id for a run in a dir of its own choosing
    _clear_run_state(run_dir)
    os.makedirs(run_dir, exist_ok=True)
    values = json.loads(spec.flags_json or "{}")  # as the daemon reads them from the spec
    user_flags = json.loads(spec.user_flags_json or "{}")
    label = opconfig.render_label(config.label_template, list(spec.tags), values)
    runlayout.write_new_run(run_dir, run_id, spec, config, values, user_flags, label, runlayout.current_user(), rundir.now_us())
    cmd = opconfig.render_cmd(config, values)
    env = runlayout.run_env(os.environ, config, values, run_dir, run_id, guild_home)
    if no_gpus:
        env.update(CUDA_VISIBLE_DEVICES="", GUILD_GPUS="")
    runlayout.write_launch_attrs(run_dir, cmd, env, config.env_secrets)
    click.echo(f"Run directory is '{run_dir}' (results will not be visible to Guild)", err=True)
    rundir.write_attr(run_dir, "started", rundir.now_us())
    exit_status = _execute(run_dir, cmd, env, stop_after)
    rundir.write_attrs(run_dir, {"exit_status": exit_status, "stopped": rundir.now_us()})
    rundir.lock_file(run_dir).unlink(missing_ok=True)
    return 128 - exit_status if exit_status < 0 else exit_status


def _clear_run_state(run_dir: str) -> None:
    """A reused dir loses its earlier run's attrs, output and lock (Guild writes them anew);
    the rest of its files stay."""
    gdir = rundir.guild_dir(run_dir)
    shutil.rmtree(rundir.attrs_dir(run_dir), ignore_errors=True)
    for name in ("output", "output.stderr", "LOCK"):
        (gdir / name).unlink(missing_ok=True)


def _execute(run_dir: str, cmd: list[str], env: dict, stop_after: float) -> int:
    """Runs `cmd` in `run_dir` in a session of its own, so that Ctrl-C reaches guildctl, which
    stops it (see _Stopper), and returns its exit status (negative: the signal that ended it)."""
    out_path = rundir.output_path(run_dir)
    stopper = _Stopper()
    previous = signal.signal(signal.SIGINT, stopper.on_sigint)
    try:
        try:
            proc = subprocess.Popen(cmd, cwd=run_dir, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, start_new_session=True)
        except OSError as e:
            with open(out_path, "ab") as out:
                out.write(f"guildctl: cannot start {cmd[0]}: {e.strerror}\n".encode())
            click.echo(f"guildctl: cannot start {cmd[0]}: {e.strerror}", err=True)
            return 127
        stopper.started(proc.pid)
        rundir.lock_file(run_dir).write_text(str(proc.pid))
        with open(out_path, "ab", buffering=0) as out:
            tee = _Tee(out, rundir.guild_dir(run_dir) / "output.stderr")
            copiers = [threading.Thread(target=tee.copy, args=(proc.stdout, False), daemon=True),
                       threading.Thread(target=tee.copy, args=(proc.stderr, True), daemon=True)]
            for t in copiers:
                t.start()
            _wait(proc, stop_after, tee, stopper)
            for t in copiers:
                t.join()
        return proc.returncode
    finally:
        signal.signal(signal.SIGINT, previous)


def _wait(proc: subprocess.Popen, stop_after: float, tee: "_Tee", stopper: "_Stopper") -> None:
    """Waits for the process's end, stopping it at `stop_after` seconds and killing it when
    a stop has had its grace period."""
    deadline = time.monotonic() + stop_after if stop_after else None
    while proc.poll() is None:
        try:
            proc.wait(0.5)
        except subprocess.TimeoutExpired:
            pass
        now = time.monotonic()
        if deadline is not None and now >= deadline and stopper.sent is None and proc.poll() is None:
            tee.note(f"Stopping process early (pid {proc.pid}) - {stop_after:g} second(s) elapsed\n")
            stopper.stop()
        elif stopper.sent is not None and now - stopper.sent >= STOP_GRACE_SECONDS:
            stopper.stop()


class _Stopper:
    """Stops the run's process: SIGTERM to its group, then SIGKILL (after the grace period,
    or at a second Ctrl-C). Ctrl-C is handled by this, not by KeyboardInterrupt, so that it
    can't land between starting the process and waiting for it: one before the process has
    started stops it as soon as it has."""

    def __init__(self) -> None:
        self.pid: int | None = None
        self.requested = False
        self.sent: float | None = None  # when SIGTERM was sent
        self.killed = False

    def started(self, pid: int) -> None:
        self.pid = pid
        if self.requested:
            self.stop()

    def on_sigint(self, _signum, _frame) -> None:
        if self.sent is None:
            click.echo("\nStopping the run (Ctrl-C again to kill it)", err=True)
        self.stop()

    def stop(self) -> None:
        self.requested = True
        if self.pid is None or self.killed:
            return
        if self.sent is None:
            _signal_group(self.pid, signal.SIGTERM)
            self.sent = time.monotonic()
        else:
            _signal_group(self.pid, signal.SIGKILL)
            self.killed = True


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass  # ended meanwhile


class _Tee:
    """The process's stdout and stderr copied as they come to the terminal and to the run's
    output; stderr's byte ranges noted in `output.stderr` as the shim notes them."""

    def __init__(self, out, ranges_path) -> None:
        self.out = out
        self.ranges_path = ranges_path
        self.lock = threading.Lock()

    def copy(self, pipe, is_stderr: bool) -> None:
        term = sys.stderr.buffer if is_stderr else sys.stdout.buffer
        for data in iter(lambda: pipe.read1(65536), b""):
            with self.lock:
                self._write(data, is_stderr)
                term.write(data)
                term.flush()
        pipe.close()

    def note(self, text: str) -> None:
        with self.lock:
            self._write(text.encode(), False)
            sys.stdout.write(text)
            sys.stdout.flush()

    def _write(self, data: bytes, is_stderr: bool) -> None:
        start = self.out.seek(0, os.SEEK_END)
        self.out.write(data)
        if is_stderr:
            with open(self.ranges_path, "a") as ranges:
                ranges.write(f"{start} {start + len(data)}\n")
