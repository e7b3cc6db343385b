"""One daemon per GUILD_HOME. Light on imports: a daemon that loses the race to another
(two clients autostarting at once) finds out and exits before loading gRPC."""

import errno
import fcntl
import os

from guild_common import errors, home as homelib


def check_home(home):
    try:
        home.mkdir(parents=True, exist_ok=True)
        probe = home / ".guildd-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise errors.PermissionDenied(f"cannot use GUILD_HOME {home}: {e.strerror}") from e
    (home / ".guild-nocopy").touch()


def acquire_home_lock(home):
    """One daemon per GUILD_HOME: an exclusive flock held for the daemon's life."""
    path = homelib.lock_path(home)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
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


def claim(home):
    """Checks `home` is usable and takes its lock; returns the lock's fd (held for life)."""
    check_home(home)
    return acquire_home_lock(home)
