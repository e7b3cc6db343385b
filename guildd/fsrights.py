"""A thread's filesystem identity: the daemon's writes into a user's run dir made with that
user's rights.

A shared daemon runs as root, and each run dir belongs to its owner, who may replace anything
in it (`.guild/attrs` with a link to /etc, say). A write the daemon makes there as root would
follow that link; made with the owner's filesystem uid and gid, it is refused as the owner's
own write would be (with an fsuid other than 0 the kernel also drops CAP_DAC_OVERRIDE and the
other filesystem capabilities for that thread). Reads of a user's files (a run's `file:`
dependencies in their project) are made the same way: root must not copy /etc/shadow into
alice's run because she linked to it.

Linux keeps fsuid, fsgid and the supplementary groups per thread; glibc's setfsuid/setfsgid
change only the calling thread, but its setgroups changes every thread, so the groups are set
with the raw system call. Only the thread inside `as_user` is affected: the daemon's other
threads keep root's rights. Outside a root daemon (a per-user daemon) this is a no-op.

A pid she writes in her run's LOCK is hers to choose too: it is adopted, signalled or counted
as her run's only when that process is hers (`adoptable`).
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import errno
import os
import platform
import pwd
import stat
from typing import Any, BinaryIO, Callable, Iterator, Optional, Sequence, TypeVar, cast

import psutil

from guild_common import errors
from guild_common.paths import StrPath

T = TypeVar("T")

# SYS_setgroups (32-bit gids), by machine: glibc's setgroups() would change every thread's
# groups. asm-generic (aarch64, riscv64) 159; i386 and arm setgroups32 206.
SETGROUPS_SYSCALL = {"x86_64": 116, "aarch64": 159, "riscv64": 159, "ppc64le": 81, "s390x": 206, "i686": 206, "armv7l": 206}

_libc = ctypes.CDLL(None, use_errno=True)


def _setfsuid(uid: int) -> int:
    """Sets the thread's fsuid; returns the one it had (the call never reports failure)."""
    return int(_libc.setfsuid(ctypes.c_uint(uid & 0xFFFFFFFF)))


def _setfsgid(gid: int) -> int:
    return int(_libc.setfsgid(ctypes.c_uint(gid & 0xFFFFFFFF)))


def current_fsuid() -> int:
    """The calling thread's fsuid (setfsuid(-1) changes nothing and answers the current one)."""
    return _setfsuid(-1)


def current_fsgid() -> int:
    return _setfsgid(-1)


def _setgroups_thread(groups: Sequence[int]) -> None:
    """The calling thread's supplementary groups, only its own (the raw system call).
    OSError on a machine whose call isn't known: never a user's rights with root's groups."""
    number = SETGROUPS_SYSCALL.get(platform.machine())
    if number is None:
        raise OSError(f"cannot set a thread's groups on {platform.machine()}: guildd --shared does not support this machine")
    array = (ctypes.c_uint * max(len(groups), 1))(*groups)
    if _libc.syscall(ctypes.c_long(number), ctypes.c_size_t(len(groups)), array) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"cannot set the thread's groups: {os.strerror(err)}")


@contextlib.contextmanager
def as_user(uid: int, gid: int, groups: Sequence[int] = ()) -> Iterator[None]:
    """Inside, the calling thread reads and writes files as `uid`:`gid` with `groups`; its
    identity before is restored after (also when the body raises). OSError when the switch
    doesn't take (checked by reading the fsuid back): nothing is then done as root."""
    old_groups = os.getgroups()  # the thread's own (getgroups is a plain system call)
    _setgroups_thread(groups)
    old_gid = _setfsgid(gid)
    old_uid = _setfsuid(uid)
    try:
        if current_fsuid() != uid or current_fsgid() != gid:
            raise OSError(f"cannot take the filesystem identity of uid {uid} gid {gid}")
        yield
    finally:
        _setfsuid(old_uid)  # first: with fsuid 0 again, the thread may set the rest
        _setfsgid(old_gid)
        _setgroups_thread(old_groups)


@dataclasses.dataclass(frozen=True)
class Account:
    """Whose rights a thread takes: a caller's (export, import) or a run's owner's."""

    uid: int
    gid: int
    groups: tuple[int, ...] = ()


@contextlib.contextmanager
def as_account(account: Optional[Account]) -> Iterator[None]:
    """as_user for `account`, where the daemon switches at all (see confines): a no-op for
    None, for root, and in a daemon that isn't root (a per-user daemon: its one user)."""
    if account is None or account.uid == 0 or not confines():
        yield
        return
    with as_user(account.uid, account.gid, account.groups):
        yield


def owner_ids(uid: int, fallback_gid: int) -> tuple[int, tuple[int, ...]]:
    """A user's primary gid and supplementary groups from the account database; a uid with
    no account gets `fallback_gid` and no other groups."""
    try:
        pw = pwd.getpwuid(uid)
    except KeyError:
        return fallback_gid, (fallback_gid,)
    return pw.pw_gid, tuple(sorted(set(os.getgrouplist(pw.pw_name, pw.pw_gid))))


def owner_of(path: StrPath) -> Optional[int]:
    """The uid owning `path` itself (lstat: never a link's target); None when it is gone."""
    try:
        return os.lstat(path).st_uid
    except FileNotFoundError:
        return None


def confines() -> bool:
    """Whether this process switches identities: only a daemon running as root does."""
    return os.geteuid() == 0


@contextlib.contextmanager
def as_owner_of(path: StrPath) -> Iterator[None]:
    """Inside, the calling thread has the filesystem rights of whoever owns `path` (a run
    dir): the daemon's writes there are the owner's. A no-op when the daemon isn't root, when
    the owner is root, and when `path` doesn't exist (a run dir is made by the daemon in its
    own runs dir: nothing of the user's is there yet)."""
    if not confines():
        yield
        return
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        yield
        return
    if st.st_uid == 0:
        yield
        return
    gid, groups = owner_ids(st.st_uid, st.st_gid)
    with as_user(st.st_uid, gid, groups):
        yield


def call_as_owner_of(path: StrPath, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """fn(*args, **kwargs) with the rights of `path`'s owner (see as_owner_of): for a write into
    a run dir handed to a worker thread."""
    with as_owner_of(path):
        return fn(*args, **kwargs)


def call_as_account(account: Optional[Account], fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """fn(*args, **kwargs) with `account`'s rights (see as_account), for a worker thread."""
    with as_account(account):
        return fn(*args, **kwargs)


def may_adopt(confines: bool, process_uid: Optional[int], owner_uid: Optional[int]) -> bool:
    """Whether a pid read from a run's LOCK file may be adopted, and so signalled by a later
    stop. The LOCK is its owner's to write: in a root daemon (`confines`) she could name
    another user's process, or init, for root to SIGTERM. So only a process whose real uid
    is the run dir's owner is hers (None: the process or the dir is gone)."""
    if not confines:
        return True  # a per-user daemon signals only what its user could signal
    return process_uid is not None and process_uid == owner_uid


def adoptable(pid: int, run_dir: StrPath) -> bool:
    """may_adopt for the live process `pid` and the run dir's owner (lstat: never a link's)."""
    try:
        process_uid: Optional[int] = psutil.Process(pid).uids().real
    except psutil.Error:
        process_uid = None
    try:
        owner_uid: Optional[int] = os.lstat(run_dir).st_uid
    except OSError:
        owner_uid = None
    return may_adopt(confines(), process_uid, owner_uid)


# How open_as_owner opens, by mode: reading, or appending (made when missing)
_OPEN_FLAGS = {"rb": os.O_RDONLY, "ab": os.O_WRONLY | os.O_APPEND | os.O_CREAT}


def open_as_owner(owner_path: StrPath, path: StrPath, mode: str = "rb") -> BinaryIO:
    """`path` (a file in the run dir `owner_path`) opened with the rights of that dir's owner
    (see as_owner_of), on the calling thread: a link the owner put there to a file she may
    not read or write (/etc/shadow) is refused as her own open would be, and once open the
    file needs no rights. `mode` is "rb" or "ab". Anything but a regular file is refused too
    (OSError): a FIFO she made would hold the daemon's thread, a device would never end."""
    with as_owner_of(owner_path):
        fd = os.open(path, _OPEN_FLAGS[mode] | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY, 0o666)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        os.set_blocking(fd, True)
        return cast(BinaryIO, os.fdopen(fd, mode))
    except BaseException:
        os.close(fd)
        raise


def refusal(e: OSError, what: str) -> errors.GuildError:
    """A user's error for a file of a run that its owner's rights can't open (`what`, as
    "the output of run 1a2b3c4d"): hers to fix, never the daemon's INTERNAL."""
    reason = e.strerror or str(e)
    if isinstance(e, FileNotFoundError):
        return errors.NotFound(f"{e.filename} does not exist")
    if isinstance(e, PermissionError):
        return errors.PermissionDenied(f"cannot read {what}: {reason} (its owner may not read {e.filename})")
    return errors.FailedPrecondition(f"cannot read {what}: {e.filename}: {reason}")


def chown_tree(path: StrPath, uid: int, gid: int) -> None:
    """Gives a tree the daemon just made to its owner. lchown never follows a link, and the
    walk doesn't either (the tree is fresh: nothing of the user's is in it yet)."""
    os.lchown(path, uid, gid)
    for parent, dirs, files in os.walk(path):
        for name in dirs + files:
            os.lchown(os.path.join(parent, name), uid, gid)
