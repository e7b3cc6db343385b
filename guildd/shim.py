"""The per-run supervisor ("shim"): owns one run's process so the run outlives the daemon.

guildd starts `python -m guildd.shim` in a new session and writes a JSON launch spec to its
stdin. The shim starts the operation's process in the run dir, copies its stdout and stderr
into `.guild/output` (and `output.index`) as they come, enforces --stop-after, forwards a stop
(SIGTERM to the shim) to the process group with a SIGKILL after a grace period, and finally
records `exit_status` and `stopped`. It parses nothing: scalars are the daemon's job, off the
run's path. It imports only the standard library and rundir so it starts fast.
"""

import json
import os
import selectors
import signal
import subprocess
import sys
import time

from guild_common import rundir

STOP_GRACE_SECONDS = 10.0
READ_SIZE = 1 << 16
EXIT_DRAIN_SECONDS = 1.0


class _Stop:
    """Records that a stop was asked for; the handler only sets this (and the wakeup fd
    wakes the select loop)."""

    requested = False


def _on_stop_signal(_signum, _frame):
    _Stop.requested = True


def main():
    signal.signal(signal.SIGTERM, _on_stop_signal)
    signal.signal(signal.SIGINT, _on_stop_signal)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    spec = json.loads(sys.stdin.read())
    run_dir = spec["run_dir"]
    exit_status = -15 if _Stop.requested else _supervise(spec, run_dir, wake_r)
    rundir.write_attr(run_dir, "exit_status", exit_status)
    rundir.write_attr(run_dir, "stopped", rundir.now_us())
    try:
        rundir.lock_file(run_dir).unlink()
    except FileNotFoundError:
        pass


def _supervise(spec, run_dir, wake_r):
    out_fd = os.open(rundir.output_path(run_dir), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    index_fd = os.open(rundir.output_index_path(run_dir), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        proc = subprocess.Popen(
            spec["cmd"],
            cwd=run_dir,
            env=spec["env"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as e:
        msg = f"guildd: cannot start {spec['cmd'][0]}: {e.strerror}\n".encode()
        os.write(out_fd, msg)
        os.write(index_fd, rundir.INDEX_RECORD.pack(int(time.time() * 1000), 1))
        return 127
    rundir.lock_file(run_dir).write_text(str(proc.pid))
    deadline = time.monotonic() + spec["stop_after"] if spec.get("stop_after") else None
    stop_sent_at = None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ, 0)
    sel.register(proc.stderr, selectors.EVENT_READ, 1)
    sel.register(wake_r, selectors.EVENT_READ, None)
    open_streams = 2
    exited_at = None
    while True:
        now = time.monotonic()
        if exited_at is None and proc.poll() is not None:
            exited_at = now
        # A process that left children holding its stdout still ends the run: read what they
        # write for a moment, then stop reading.
        if exited_at is not None and (not open_streams or now - exited_at > EXIT_DRAIN_SECONDS):
            break
        if deadline is not None and now >= deadline and stop_sent_at is None:
            _note(out_fd, index_fd, f"Stopping process early (pid {proc.pid}) - {spec['stop_after']:g} second(s) elapsed\n")
            _Stop.requested = True
        if _Stop.requested and stop_sent_at is None:
            _signal_group(proc.pid, signal.SIGTERM)
            stop_sent_at = now
        if stop_sent_at is not None and now - stop_sent_at > STOP_GRACE_SECONDS:
            _signal_group(proc.pid, signal.SIGKILL)
        if not open_streams or exited_at is not None:
            # Output closed but the process lives on, or the reverse: wait without spinning.
            timeout = 0.05
        else:
            timeout = 1.0 if deadline is None else max(0.0, min(1.0, deadline - now))
        for key, _ in sel.select(timeout):
            if key.data is None:
                os.read(wake_r, 512)
                continue
            data = os.read(key.fd, READ_SIZE)
            if not data:
                sel.unregister(key.fileobj)
                open_streams -= 1
                continue
            os.write(out_fd, data)
            lines = data.count(b"\n")
            if lines:
                record = rundir.INDEX_RECORD.pack(int(time.time() * 1000), key.data)
                os.write(index_fd, record * lines)
        if not open_streams and exited_at is None:
            try:
                proc.wait(timeout=0.05)
            except subprocess.TimeoutExpired:
                pass
    os.close(out_fd)
    os.close(index_fd)
    return proc.returncode


def _note(out_fd, index_fd, text):
    os.write(out_fd, text.encode())
    os.write(index_fd, rundir.INDEX_RECORD.pack(int(time.time() * 1000), 1))


def _signal_group(pgid, sig):
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


if __name__ == "__main__":
    main()
