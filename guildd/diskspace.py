"""A full disk under GUILD_HOME: telling its errors apart, saying so clearly, and the space
the daemon holds back so that it can still record what happened (a run's end) when it fills.

A run that writes until the disk is full leaves no room for the few pages that recording its
end needs (attrs, and the index: SQLite answers `database or disk is full`). The daemon keeps
a small reserve file in GUILD_HOME, frees it when such a record fails for lack of space, and
takes it again when a new run is made (if there is room for it by then).
"""

import errno
import logging
import os
import pathlib
import sqlite3
from typing import Any, Callable, TypeVar

from guild_common import errors

log = logging.getLogger("guildd")
RESERVE_NAME = "guildd-reserve"
RESERVE_BYTES = 1 << 20  # room for the ends of a few dozen runs (a few index pages each)
SHORT_BYTES = 2 * RESERVE_BYTES  # free space under which a run's failure is put down to a full disk
_FULL_ERRNOS = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded"}
_SQLITE_FULL = 13  # SQLITE_FULL (sqlite3 names it only from Python 3.11)
T = TypeVar("T")


def is_full(exc: BaseException) -> bool:
    """True when `exc` says the disk (or the user's quota) is full."""
    if isinstance(exc, OSError):
        return exc.errno in _FULL_ERRNOS
    if isinstance(exc, sqlite3.OperationalError):
        code = getattr(exc, "sqlite_errorcode", None)
        return code == _SQLITE_FULL if code is not None else "disk is full" in str(exc)
    return False


def full_error(home: os.PathLike | str, exc: BaseException, doing: str = "") -> errors.GuildError:
    """The error a user sees for a full disk: one line naming GUILD_HOME (or the file, when
    it lies elsewhere, such as an export's destination)."""
    what = _FULL_ERRNOS.get(getattr(exc, "errno", 0), _FULL_ERRNOS[errno.ENOSPC])
    filename = getattr(exc, "filename", None)
    home = pathlib.Path(home)
    if filename and not pathlib.Path(os.path.abspath(filename)).is_relative_to(home):
        where = f"writing {filename}"
    else:
        where = f"for GUILD_HOME {home}: free some space and try again"
    return errors.ResourcesUnavailable(f"{doing}{': ' if doing else ''}{what} {where}")


def short(home: os.PathLike | str) -> bool:
    """True when the disk under GUILD_HOME has (next to) no space left for runs: less than
    SHORT_BYTES free beside the reserve."""
    try:
        st = os.statvfs(home)
    except OSError:
        return False
    return is_short(st.f_bavail * st.f_frsize)


def is_short(free_bytes: int) -> bool:
    """Whether `free_bytes` free under GUILD_HOME is too little for runs to go on writing."""
    return free_bytes < SHORT_BYTES


def ended_note(home: os.PathLike | str) -> str:
    """What a run that failed on a full disk is told (in its output, and the log)."""
    return (f"the disk under GUILD_HOME {home} was full when this run ended ({_FULL_ERRNOS[errno.ENOSPC]}): "
            "what it wrote last may be lost; free some space before running again")


def waiting_note(home: os.PathLike | str) -> str:
    """Why a run the queue would start waits (the queue starts none on a full disk)."""
    return f"the disk under GUILD_HOME {home} is full: free some space"


class Reserve:
    """The daemon's reserve: RESERVE_BYTES held in a file of GUILD_HOME. Used from the I/O
    thread only."""

    def __init__(self, home: os.PathLike | str, size: int = RESERVE_BYTES) -> None:
        self.path = pathlib.Path(home) / RESERVE_NAME
        self.size = size

    def take(self) -> bool:
        """Holds the reserve (again); False when there is no room for it now."""
        if self.path.exists():
            return True
        tmp = self.path.with_name(f".{RESERVE_NAME}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.posix_fallocate(fd, 0, self.size)  # allocated now, not when first written
            finally:
                os.close(fd)
            os.replace(tmp, self.path)  # never a reserve of half its size
        except OSError:
            tmp.unlink(missing_ok=True)
            return False
        return True

    def use(self, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
        """`fn(*args, **kw)`, a record of the daemon's own that a full disk must not stop (a
        run's end, taking back a run it could not make): when the disk is full, the reserve
        is freed and `fn` called once more."""
        try:
            return fn(*args, **kw)
        except Exception as e:
            if not is_full(e) or not self.release():
                raise
            log.warning("disk full under %s (%s): freed the daemon's reserve to record what happened",
                        self.path.parent, e)
            return fn(*args, **kw)

    def release(self) -> bool:
        """Frees the reserve for the daemon's own records; False when it was free already."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        return True
