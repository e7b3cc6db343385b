"""Who may own the daemon's socket, the directory it is in, and the daemon's files in GUILD_HOME.

Another local user who can plant or replace any of them can pose as the daemon (and receive a
run's whole source snapshot and environment) or make the daemon write where they choose. The
`check_*` functions are pure: a stat result in, why it is unsafe out (a phrase that follows the
path's name), or None. The others apply them to paths, never following a link they check, and
raise PermissionDenied.
"""

import os
import pathlib
import pwd
import stat

from guild_common import errors, home as homelib

_KINDS = [
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISLNK, "a symbolic link"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISREG, "a regular file"),
]


def user_name(uid: int) -> str:
    """`name (uid N)`, or `uid N` for a uid with no account."""
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def _kind(mode: int) -> str:
    return next((name for is_kind, name in _KINDS if is_kind(mode)), "a special file")


def _owner(st: os.stat_result, uid: int) -> str | None:
    # Root's own files are trusted: root can do anything a planted file could.
    if st.st_uid not in (uid, 0):
        return f"is owned by {user_name(st.st_uid)}, not by {user_name(uid)}"
    return None


def check_dir(st: os.stat_result, uid: int, group_write_ok: bool = False) -> str | None:
    """Why a directory can't hold the daemon's socket or files: it isn't one (a symbolic link
    counts as not one), someone else owns it, or others may write in it (and so replace what
    is there). `group_write_ok` for GUILD_HOME: made under umask 002 with a user-private group
    it is group-writable, and refusing that would refuse many users' default home."""
    if not stat.S_ISDIR(st.st_mode):
        return f"is {_kind(st.st_mode)}, not a directory"
    owner = _owner(st, uid)
    if owner:
        return owner  # who owns it tells the user the most
    writers = stat.S_IWOTH if group_write_ok else stat.S_IWOTH | stat.S_IWGRP
    if st.st_mode & writers:
        return f"is writable by other users (mode {stat.S_IMODE(st.st_mode):04o})"
    return None


def check_socket(st: os.stat_result, uid: int) -> str | None:
    """Why a path can't be the daemon's socket: not a socket, or someone else's."""
    if not stat.S_ISSOCK(st.st_mode):
        return f"is {_kind(st.st_mode)}, not a socket"
    return _owner(st, uid)


def check_link(st: os.stat_result, uid: int) -> str | None:
    """Why GUILD_HOME/guildd.sock (the socket, or a link the daemon left to it) isn't ours."""
    if not (stat.S_ISSOCK(st.st_mode) or stat.S_ISLNK(st.st_mode)):
        return f"is {_kind(st.st_mode)}, not a socket or a symbolic link"
    return _owner(st, uid)


def check_file(st: os.stat_result, uid: int) -> str | None:
    """Why a daemon file (lock, log) isn't ours to write."""
    if not stat.S_ISREG(st.st_mode):
        return f"is {_kind(st.st_mode)}, not a regular file"
    return _owner(st, uid)


def lstat(path: os.PathLike) -> os.stat_result | None:
    """The path's own stat (a link's, not its target's); None when nothing is there."""
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def private_dir(path: pathlib.Path, uid: int, mode: int = 0o700) -> None:
    """Makes the directory for a socket outside GUILD_HOME (mode 0700; a shared daemon's
    0755) unless it exists, and refuses one that isn't the user's alone: whoever can write
    in it can replace the socket."""
    try:
        path.mkdir(mode=mode, parents=True)
    except FileExistsError:
        pass  # checked below, whatever it is (a dangling link included)
    except OSError as e:
        raise errors.PermissionDenied(f"cannot make socket directory {path}: {e.strerror}") from e
    reason = check_dir(os.lstat(path), uid)
    if reason:
        hint = "remove it, or set XDG_RUNTIME_DIR to a directory only you can write"
        raise errors.PermissionDenied(f"refusing socket directory {path}: it {reason}; {hint}")


def open_private(path: pathlib.Path, flags: int, uid: int) -> int:
    """Opens (creating, mode 0600) a daemon file in GUILD_HOME without following a link
    someone planted there, and refuses one that isn't the user's own regular file."""
    try:
        fd = os.open(path, flags | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as e:
        st = lstat(path)
        reason = check_file(st, uid) if st else None
        if reason:  # O_NOFOLLOW's ELOOP: a link is there
            raise errors.PermissionDenied(f"refusing {path}: it {reason}") from e
        raise errors.PermissionDenied(f"cannot open {path}: {e.strerror}") from e
    reason = check_file(os.fstat(fd), uid)
    if reason:
        os.close(fd)
        raise errors.PermissionDenied(f"refusing {path}: it {reason}")
    return fd


def connect_path(home: pathlib.Path, uid: int | None = None) -> pathlib.Path:
    """The socket a client may connect to for `home` (it may not exist yet), after checking
    that it, the link to it and their directories are the user's alone: nothing is sent to a
    socket another user could have put there. Raises PermissionDenied naming who owns what."""
    uid = os.getuid() if uid is None else uid
    try:
        home_st = os.stat(home)  # GUILD_HOME itself may be a link the user made
    except OSError:
        return homelib.socket_link(home)  # nothing to connect to; starting a daemon says why
    _require(check_dir(home_st, uid, group_write_ok=True), f"GUILD_HOME {home}")
    link = homelib.socket_link(home)
    st = lstat(link)
    if st is None:
        return link
    _require(check_link(st, uid), str(link))
    if stat.S_ISSOCK(st.st_mode):
        return link
    target = home / os.readlink(link)
    dir_st = lstat(target.parent)
    if dir_st is None:
        return target
    _require(check_dir(dir_st, uid), f"its socket directory {target.parent}")
    st = lstat(target)
    if st is not None:
        _require(check_socket(st, uid), f"its socket {target}")
    return target


def _require(reason: str | None, what: str) -> None:
    if reason:
        raise errors.PermissionDenied(f"refusing to connect to guildd: {what} {reason}")
