"""The per-run supervisor ("shim"): owns one run's process so the run outlives the daemon.

A shim gets its run's launch spec (marshal: the same interpreter reads it back, with no import
to pay for), starts the operation's process in the run dir with its stdout appended straight to
`.guild/output` (no pipe or reader on the path of the bulk of a run's output) and its stderr on
a pipe the shim copies to the same file, noting each copy's byte range in `.guild/output.stderr`
(`START END` lines) so that watchers can give stderr back as stderr, as Guild does. Stdout keeps
the kernel's order; a stderr write lands when the shim reads it, microseconds later, so it can
follow a stdout line written right after it (as with Guild's two readers). The shim enforces
--stop-after, forwards a stop (SIGTERM to the shim)
to the process group with a SIGKILL after a grace period, and finally records `exit_status` and
`stopped` in Guild's attrs format. A run may die of a full disk: before it starts, the shim
reserves the few bytes its `LOCK` and its end need (see `reserve`), writes them in place, and
tries again a few times if that fails; failing still, the daemon records the end.

Shims are forked, not started: guildd keeps one `python -I -S shim.py --serve` (the shim
server) running in a session of its own and writes each launch spec to its stdin, 4 bytes of
length then the spec; the server forks, answers the child's pid (or `!` and why it could not)
on a line of its stdout, and reaps its children. The child becomes the shim: a session of its
own, stdin and stdout on /dev/null, stderr the daemon's log. A fork of this small process costs
a fraction of a millisecond where a fresh interpreter costs ten or more, and every run pays for
it. When the daemon goes, the server reads end-of-file and exits; the shims go on.
`python -I -S shim.py` alone runs one shim, its spec on stdin.

It parses nothing (scalars are the daemon's job) and imports only built-in modules, so it
starts without site-packages (-S) in about the time of a bare interpreter. (`_signal` is what
`signal` wraps, without its enum import; the process is started with os.posix_spawn rather than
subprocess, which imports a dozen modules.)
"""

from __future__ import annotations

import _signal as signal
import marshal
import os
import select
import sys
import time

# Annotations only (not evaluated): importing typing would cost every run's shim.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import FrameType
    from typing import Any

STOP_GRACE_SECONDS = 10.0
DIR_CHECK_SECONDS = 1.0  # how often the shim checks that its run dir is still there
SERVER_REAP_SECONDS = 1.0  # the server reaps ended shims at least this often
END_RETRY_SECONDS = (0.1, 0.5, 2.0)  # waits before each new try to record the end
RESERVED_BYTES = 32  # per reserved file: a pid, an exit status or a µs time, and a newline
# Paths inside a run dir (guild_common.rundir's layout; repeated here to stay stdlib-only).
OUTPUT = os.path.join(".guild", "output")
STDERR_RANGES = os.path.join(".guild", "output.stderr")
LOCK = os.path.join(".guild", "LOCK")
ATTRS = os.path.join(".guild", "attrs")
# What is written in place of a reserved file: LOCK, and the end's attrs.
RESERVED = (LOCK, os.path.join(ATTRS, "exit_status"), os.path.join(ATTRS, "stopped"))


class _Stop:
    """Records that a stop was asked for; the handler only sets this."""

    requested = False


def _on_stop_signal(_signum: int, _frame: FrameType | None) -> None:
    _Stop.requested = True


def main(argv: list[str]) -> None:
    if argv[1:] == ["--serve"]:
        serve()
    else:
        wake_r = _handle_signals()
        spec = marshal.loads(sys.stdin.buffer.read())
        become_owner(spec)
        shim(spec, wake_r)


def serve() -> None:
    """The shim server: a shim per launch spec read from stdin, until end-of-file."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        ready, _, _ = select.select([0], [], [], SERVER_REAP_SECONDS)
        _reap()
        if not ready:
            continue
        header = _read_exact(0, 4)
        data = _read_exact(0, int.from_bytes(header, "big")) if header else None
        if data is None:
            return
        try:
            pid = os.fork()
        except OSError as e:
            os.write(1, f"!{e.strerror}\n".encode())
            continue
        if pid == 0:
            _forked_shim(data)
        os.write(1, f"{pid}\n".encode())


def _forked_shim(data: bytes) -> None:
    status = 1
    try:
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)  # the server's request and answer pipes are the daemon's, not ours
        os.dup2(devnull, 1)
        os.close(devnull)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        spec = marshal.loads(data)
        become_owner(spec)
        shim(spec, _handle_signals())
        status = 0
    except BaseException as e:
        os.write(2, f"guildd shim {os.getpid()}: {type(e).__name__}: {e}\n".encode())
    finally:
        os._exit(status)  # never back into the server's loop


def become_owner(spec: dict[str, Any]) -> None:
    """A shared daemon's run: the shim becomes the run's owner (groups, gid, then uid) before
    it touches anything, so the run's process and every file the shim writes are the owner's.
    Refuses (PermissionError: the shim exits non-zero, a line in the daemon's log) to go on
    as root, or when any step doesn't take. No uid in the spec: a per-user daemon's run, as
    its user."""
    uid = spec.get("uid")
    if uid is None:
        return
    gid = spec["gid"]
    if uid == 0:
        raise PermissionError("refusing to run a shared daemon's run as root")
    os.setgroups(list(spec.get("groups") or (gid,)))
    os.setgid(gid)
    os.setuid(uid)
    if os.getuid() != uid or os.geteuid() != uid or os.getgid() != gid or os.getegid() != gid:
        raise PermissionError(f"could not become uid {uid} gid {gid}")


def _read_exact(fd: int, n: int) -> bytes | None:
    """n bytes from fd, or None at end-of-file."""
    chunks = []
    while n:
        chunk = os.read(fd, n)
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _handle_signals() -> int:
    """Handles a stop before anything else (the daemon may stop a run whose shim is starting);
    returns the read end of the pipe a signal wakes."""
    signal.signal(signal.SIGTERM, _on_stop_signal)
    signal.signal(signal.SIGINT, _on_stop_signal)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    return wake_r


def shim(spec: dict[str, Any], wake_r: int) -> None:
    run_dir = os.path.abspath(spec["run_dir"])  # checked after the chdir into it
    exit_status = -15 if _Stop.requested else _supervise(spec, run_dir, wake_r)
    if _removed(run_dir):
        # Removed by hand while the run ran (its process was stopped): its end would make
        # the dir again, and the daemon forgets the run.
        print(f"guildd shim {os.getpid()}: run dir {run_dir} was removed: its process was stopped, no end recorded",
              file=sys.stderr, flush=True)
        return
    for wait in (*END_RETRY_SECONDS, None):
        try:
            write_end(run_dir, exit_status, int(time.time() * 1_000_000))
            break
        except OSError:
            if wait is None:
                raise  # the shim exits non-zero, and the daemon records the end
            time.sleep(wait)
    # LOCK's reserved file is still there when the process never started.
    for path in (os.path.join(run_dir, LOCK), _reserved_path(run_dir, LOCK)):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def _removed(run_dir: str) -> bool:
    """Whether the run dir is gone (removed by hand while the run ran); one the shim may not
    look at is not."""
    try:
        os.lstat(run_dir)
    except FileNotFoundError:
        return True
    except OSError:
        pass
    return False


def _reserved_path(run_dir: str | os.PathLike[str], path: str) -> str:
    return os.path.join(run_dir, ".guild", f".{os.path.basename(path)}.reserved")


def reserve(run_dir: str | os.PathLike[str]) -> None:
    """Allocates, before the run starts, the files its LOCK and its end are written in place
    of: then a run that fills the disk still leaves room for its end. OSError when the disk
    has no room even for these."""
    for path in RESERVED:
        fd = os.open(_reserved_path(run_dir, path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, b" " * RESERVED_BYTES)
        finally:
            os.close(fd)


def write_end(run_dir: str | os.PathLike[str], exit_status: int, stopped_us: int) -> None:
    """Records a run's end, `exit_status` then `stopped`, in Guild's attrs format (an int in
    YAML is its decimal text: the same bytes guild_common.rundir.write_attr writes). Each is
    written in place of its reserved file when there is one, needing no new space; the
    daemon records the end this way too when a shim died before it could."""
    _write_in_place(run_dir, RESERVED[1], f"{exit_status}\n")
    _write_in_place(run_dir, RESERVED[2], f"{stopped_us}\n")


def _write_in_place(run_dir: str | os.PathLike[str], path: str, text: str) -> None:
    """Writes `text` to run_dir/path atomically (a reader sees the old file or the new one),
    through its reserved file: overwritten in place, cut to size, renamed over `path`."""
    tmp = _reserved_path(run_dir, path)
    fd: int | None
    try:
        fd = os.open(tmp, os.O_WRONLY)
        created = False
    except FileNotFoundError:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o644)  # none reserved: this needs space
        created = True
    try:
        data = text.encode()
        if os.pwrite(fd, data, 0) != len(data):
            raise OSError(f"short write to {tmp}")
        os.ftruncate(fd, len(data))
        os.close(fd)
        fd = None
        os.replace(tmp, os.path.join(run_dir, path))
    except OSError:
        if fd is not None:
            os.close(fd)
        if created:
            os.unlink(tmp)  # no half-written file left; a reserved one stays for the next try
        raise


def _note(fd: int, text: str) -> None:
    """Writes a line of the shim's own to the run's output, if there is room: a full disk
    must not kill the shim that owns the run's process."""
    try:
        os.write(fd, text.encode())
    except OSError:
        pass


def _supervise(spec: dict[str, Any], run_dir: str, wake_r: int) -> int:
    out_fd = os.open(os.path.join(run_dir, OUTPUT), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        reserve(run_dir)
    except OSError as e:
        # Not started: a run with no room for its end would leave no trace of how it ended.
        _note(out_fd, f"guildd: cannot start {spec['cmd'][0]}: {e.strerror}\n")
        os.close(out_fd)
        return 1
    env = spec["env"]
    # The command is looked up on the run's PATH, and it runs in the run dir.
    os.environ["PATH"] = env.get("PATH", os.defpath)
    os.chdir(run_dir)
    err = _Stderr(run_dir, out_fd)
    try:
        pid = os.posix_spawnp(
            spec["cmd"][0],
            spec["cmd"],
            env,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, out_fd, 1),
                (os.POSIX_SPAWN_DUP2, err.fd2, 2),
            ],
            setsid=True,
        )
    except OSError as e:
        err.close()
        _note(out_fd, f"guildd: cannot start {spec['cmd'][0]}: {e.strerror}\n")
        os.close(out_fd)
        return 127
    err.spawned()
    try:
        _write_in_place(run_dir, LOCK, str(pid))
    except OSError:
        pass  # LOCK tells Guild AI (and the daemon, if the shim dies) the pid; the shim owns the process regardless
    deadline = time.monotonic() + spec["stop_after"] if spec.get("stop_after") else None
    stop_sent_at = None
    killed = False
    pidfd = os.pidfd_open(pid)
    while True:
        if stop_sent_at is None:
            next_check = deadline
        else:
            next_check = None if killed else stop_sent_at + STOP_GRACE_SECONDS
        if not (_Stop.requested and stop_sent_at is None):
            timeout = DIR_CHECK_SECONDS if next_check is None else min(DIR_CHECK_SECONDS, max(0.0, next_check - time.monotonic()))
            # Wakes on the process's exit, on a signal (the wakeup fd), on stderr output, or at
            # the next check.
            ready, _, _ = select.select([pidfd, wake_r] + err.fds(), [], [], timeout)
            if pidfd in ready:
                break
            if wake_r in ready:
                os.read(wake_r, 512)
            if err.read_end in ready:
                err.copy()
        now = time.monotonic()
        if stop_sent_at is None and _removed(run_dir):
            _Stop.requested = True  # the run was removed by hand: nothing to run it for
        if deadline is not None and now >= deadline and stop_sent_at is None:
            _note(out_fd, f"Stopping process early (pid {pid}) - {spec['stop_after']:g} second(s) elapsed\n")
            _Stop.requested = True
        if _Stop.requested and stop_sent_at is None:
            _signal_group(pid, signal.SIGTERM)
            stop_sent_at = now
        elif stop_sent_at is not None and not killed and now - stop_sent_at >= STOP_GRACE_SECONDS:
            _signal_group(pid, signal.SIGKILL)
            killed = True
    os.close(pidfd)
    while err.copy():  # what it wrote last; not what processes it left behind write later
        pass
    err.close()
    os.close(out_fd)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


class _Stderr:
    """The process's stderr: a pipe the shim copies to the output, each copy's byte range
    noted in STDERR_RANGES. Its own open file of the output, so that the offset after an
    append is where that append ended, whatever the process writes to stdout meanwhile;
    opened at the first stderr bytes (most runs write none: a run's start pays one pipe).
    Where the pipe or these files can't be had, stderr goes to the output as stdout does."""

    def __init__(self, run_dir: str, out_fd: int) -> None:
        self.run_dir = run_dir
        self.shared_fd = out_fd  # the output as the process's stdout has it
        self._files: tuple[int, int] | None = None  # the output and STDERR_RANGES, once opened
        self.read_end: int | None
        self.write_end: int | None
        try:
            self.read_end, self.write_end = os.pipe()
        except OSError:
            self.read_end = self.write_end = None
            self.fd2 = out_fd  # what the process's stderr is made from
            return
        self.fd2 = self.write_end
        os.set_blocking(self.read_end, False)

    def spawned(self) -> None:
        if self.write_end is not None:
            os.close(self.write_end)  # the process has it: the pipe ends when its copies do
            self.write_end = None

    def fds(self) -> list[int]:
        return [] if self.read_end is None else [self.read_end]

    def copy(self) -> bool:
        """Copies what is in the pipe; False when it is empty or at its end."""
        if self.read_end is None:
            return False
        try:
            data = os.read(self.read_end, 65536)
        except BlockingIOError:
            return False
        if not data:
            os.close(self.read_end)
            self.read_end = None
            return False
        try:
            out_fd, ranges_fd = self._files or self._open()
        except OSError:
            self._write(self.shared_fd, data)  # no range file: kept as stdout is
            return True
        n = self._write(out_fd, data)
        if n:
            end = os.lseek(out_fd, 0, os.SEEK_CUR)  # where this append ended
            self._write(ranges_fd, f"{end - n} {end}\n".encode())
        return True

    @staticmethod
    def _write(fd: int, data: bytes) -> int:
        """Bytes written; 0 on a full disk: lost, as the process's own write would be."""
        try:
            return os.write(fd, data)
        except OSError:
            return 0

    def _open(self) -> tuple[int, int]:
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
        out_fd = os.open(os.path.join(self.run_dir, OUTPUT), flags, 0o644)
        try:
            ranges_fd = os.open(os.path.join(self.run_dir, STDERR_RANGES), flags, 0o644)
        except OSError:
            os.close(out_fd)
            raise
        self._files = (out_fd, ranges_fd)
        return self._files

    def close(self) -> None:
        for fd in (self.read_end, self.write_end, *(self._files or ())):
            if fd is not None:
                os.close(fd)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


if __name__ == "__main__":
    main(sys.argv)
