"""One daemon per GUILD_HOME. Light on imports: a daemon that loses the race to another
(two clients autostarting at once) finds out and exits before loading gRPC."""

import errno
import fcntl
import os
import pathlib

from guild_common import errors, home as homelib, ownership


def check_home(home: pathlib.Path, shared: bool = False) -> None:
    """Makes `home` if needed and refuses one the user can't write, or one another user owns
    or may write in (they could replace the socket, its link or the lock). A shared home is
    made reachable by every user (mode 0755) and may not be group-writable."""
    try:
        home.mkdir(parents=True, exist_ok=True)
        reason = ownership.check_dir(os.stat(home), os.getuid(), group_write_ok=not shared)
        if reason:
            raise errors.PermissionDenied(f"cannot use GUILD_HOME {home}: it {reason}")
        if shared:
            for path in (home, homelib.runs_dir(home)):
                path.mkdir(exist_ok=True)
                if os.stat(path).st_mode & 0o005 != 0o005:
                    os.chmod(path, os.stat(path).st_mode | 0o755)
        # O_NOFOLLOW: a link planted under the probe's name must not be written through.
        # Named for this process: daemons racing to start for one home (clients autostarting at
        # once) must not unlink each other's probe.
        probe = home / f".guildd-write-test-{os.getpid()}"
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600))
        probe.unlink()
        _create(home / ".guild-nocopy")
    except OSError as e:
        raise errors.PermissionDenied(f"cannot use GUILD_HOME {home}: {e.strerror}") from e


def _create(path: pathlib.Path) -> None:
    """Creates an empty file unless something (a link included, never followed) is there."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    except FileExistsError:
        pass


def acquire_home_lock(home: pathlib.Path) -> int:
    """One daemon per GUILD_HOME: an exclusive flock held for the daemon's life."""
    path = homelib.lock_path(home)
    fd = ownership.open_private(path, os.O_RDWR, os.getuid())
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno not in (errno.EAGAIN, errno.EACCES):
            raise
        pid = os.pread(fd, 32, 0).decode().strip() or "?"
        os.close(fd)
        raise errors.AlreadyExists(f"guildd is already running for {home} (pid {pid})") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def claim(home: pathlib.Path, shared: bool = False) -> int:
    """Checks `home` is usable and takes its lock; returns the lock's fd (held for life)."""
    check_home(home, shared)
    return acquire_home_lock(home)
