"""The per-run supervisor ("shim"): owns one run's process so the run outlives the daemon.

guildd starts `python -I -S shim.py` in a new session and writes a JSON launch spec to its
stdin. The shim starts the operation's process in the run dir with stdout and stderr both
appended straight to `.guild/output` (as `> output 2>&1` would: the kernel keeps their order,
and no pipe or reader sits on the run's path), enforces --stop-after, forwards a stop
(SIGTERM to the shim) to the process group with a SIGKILL after a grace period, and finally
records `exit_status` and `stopped` in Guild's attrs format.

It parses nothing (scalars are the daemon's job) and imports only the standard library, so
it starts without site-packages (-S): every run pays for this interpreter's start-up.
"""

import json
import os
import select
import signal
import subprocess
import sys
import time

STOP_GRACE_SECONDS = 10.0
# Paths inside a run dir (guild_common.rundir's layout; repeated here to stay stdlib-only).
OUTPUT = os.path.join(".guild", "output")
LOCK = os.path.join(".guild", "LOCK")
ATTRS = os.path.join(".guild", "attrs")


class _Stop:
    """Records that a stop was asked for; the handler only sets this."""

    requested = False


def _on_stop_signal(_signum, _frame):
    _Stop.requested = True


def main():
    # Handle a stop before anything else: the daemon may stop a run whose shim is starting.
    signal.signal(signal.SIGTERM, _on_stop_signal)
    signal.signal(signal.SIGINT, _on_stop_signal)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    spec = json.loads(sys.stdin.read())
    run_dir = spec["run_dir"]
    exit_status = -15 if _Stop.requested else _supervise(spec, run_dir, wake_r)
    _write_int_attr(run_dir, "exit_status", exit_status)
    _write_int_attr(run_dir, "stopped", int(time.time() * 1_000_000))
    try:
        os.unlink(os.path.join(run_dir, LOCK))
    except FileNotFoundError:
        pass


def _write_int_attr(run_dir, name, value):
    # An int in YAML is its decimal text: the same bytes rundir.write_attr writes.
    path = os.path.join(run_dir, ATTRS, name)
    tmp = os.path.join(run_dir, ATTRS, f".{name}.tmp")
    with open(tmp, "w") as f:
        f.write(f"{value}\n")
    os.replace(tmp, path)


def _supervise(spec, run_dir, wake_r):
    out_fd = os.open(os.path.join(run_dir, OUTPUT), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        proc = subprocess.Popen(
            spec["cmd"],
            cwd=run_dir,
            env=spec["env"],
            stdin=subprocess.DEVNULL,
            stdout=out_fd,
            stderr=out_fd,
            start_new_session=True,
        )
    except OSError as e:
        os.write(out_fd, f"guildd: cannot start {spec['cmd'][0]}: {e.strerror}\n".encode())
        return 127
    with open(os.path.join(run_dir, LOCK), "w") as f:
        f.write(str(proc.pid))
    deadline = time.monotonic() + spec["stop_after"] if spec.get("stop_after") else None
    stop_sent_at = None
    killed = False
    pidfd = os.pidfd_open(proc.pid)
    while True:
        if stop_sent_at is None:
            next_check = deadline
        else:
            next_check = None if killed else stop_sent_at + STOP_GRACE_SECONDS
        if not (_Stop.requested and stop_sent_at is None):
            timeout = None if next_check is None else max(0.0, next_check - time.monotonic())
            # Wakes on the process's exit, on a signal (the wakeup fd), or at the next check.
            ready, _, _ = select.select([pidfd, wake_r], [], [], timeout)
            if pidfd in ready:
                break
            if wake_r in ready:
                os.read(wake_r, 512)
        now = time.monotonic()
        if deadline is not None and now >= deadline and stop_sent_at is None:
            os.write(out_fd, f"Stopping process early (pid {proc.pid}) - {spec['stop_after']:g} second(s) elapsed\n".encode())
            _Stop.requested = True
        if _Stop.requested and stop_sent_at is None:
            _signal_group(proc.pid, signal.SIGTERM)
            stop_sent_at = now
        elif stop_sent_at is not None and not killed and now - stop_sent_at >= STOP_GRACE_SECONDS:
            _signal_group(proc.pid, signal.SIGKILL)
            killed = True
    os.close(pidfd)
    os.close(out_fd)
    return proc.wait()


def _signal_group(pgid, sig):
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


if __name__ == "__main__":
    main()
