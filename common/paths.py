"""Keeping the paths a request names where they belong.

A path the daemon writes or reads on a request's behalf is either relative to a base it owns
(a run's source files, dependency targets and `ls`/`cat` paths, under the run's own dir),
which `contained` resolves and keeps inside that base, symbolic links included; or a
directory the client named (export and import), which `absolute_dir` requires to be
absolute: a relative one would mean the daemon's own working directory.
"""

import os
import pathlib

from guild_common import errors

RUN_DIR = "the run directory"

StrPath = str | os.PathLike[str]


def relative(rel: str, what: str = "path", within: str = RUN_DIR) -> str:
    """`rel` normalised ('a/./b/../c' is 'a/c', '' is '.'), refusing one that is absolute,
    climbs above its base, or holds a NUL byte. Touches no file."""
    if not isinstance(rel, str):
        raise errors.InvalidArgument(f"{what} {rel!r} is not a path")
    if "\0" in rel:
        raise errors.InvalidArgument(f"{what} {_shown(rel)} holds a NUL byte")
    if _too_long(rel):
        raise errors.InvalidArgument(f"{what} {_shown(rel[:60])}... is too long (a name of more than {NAME_MAX} "
                                     f"bytes, or more than {PATH_MAX} in all)")
    if os.path.isabs(rel):
        raise errors.InvalidArgument(f"{what} {_shown(rel)} is outside {within} (an absolute path)")
    norm = os.path.normpath(rel) if rel else "."
    if norm == os.pardir or norm.startswith(os.pardir + os.sep):
        raise errors.InvalidArgument(f"{what} {_shown(rel)} is outside {within}")
    return norm


# Linux's limits: a longer name or path fails every system call (ENAMETOOLONG), so it is
# the client's mistake, said as one, not a failure inside the daemon.
NAME_MAX = 255
PATH_MAX = 4096


def _too_long(rel: str) -> bool:
    data = os.fsencode(rel)
    return len(data) >= PATH_MAX or any(len(part) > NAME_MAX for part in data.split(b"/"))


def contained(base: StrPath, rel: str, what: str = "path", within: str = RUN_DIR, follow: bool = True) -> pathlib.Path:
    """The resolved path of `rel` under `base`, refusing (InvalidArgument) a path that is
    absolute, climbs out of `base`, or leads out of it through a symbolic link that exists.

    With `follow=False` the last component is not resolved: the path of a link itself, to
    unlink or list it, wherever it points."""
    norm = relative(rel, what, within)
    root = _resolve(pathlib.Path(base), what, rel)
    if norm == ".":
        return root
    if follow:
        full = _resolve(root / norm, what, rel)
    else:
        parent, name = os.path.split(norm)
        full = _resolve(root / parent, what, rel) / name
    if full != root and root not in full.parents:
        raise errors.InvalidArgument(f"{what} {_shown(rel)} leads outside {within} through a symbolic link")
    return full


def absolute_dir(path: str, what: str) -> pathlib.Path:
    """`path` as a directory a client named: it must be absolute (the client resolves a
    relative one against its own working directory before sending it)."""
    if not path:
        raise errors.InvalidArgument(f"{what} missing")
    if "\0" in path:
        raise errors.InvalidArgument(f"{what} {_shown(path)} holds a NUL byte")
    if not os.path.isabs(path):
        raise errors.InvalidArgument(f"{what} {_shown(path)} is not an absolute path")
    return pathlib.Path(os.path.normpath(path))


def inside(path: StrPath, base: StrPath) -> bool:
    """Whether `path` is `base` or under it, both resolved (links followed)."""
    real = _resolve(pathlib.Path(path), "path", str(path))
    root = _resolve(pathlib.Path(base), "path", str(base))
    return real == root or root in real.parents


def _resolve(path: pathlib.Path, what: str, rel: str) -> pathlib.Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError) as e:  # RuntimeError: a symbolic link loop (Python < 3.13)
        raise errors.InvalidArgument(f"cannot resolve {what} {_shown(rel)}: {e}") from None


def _shown(path: str) -> str:
    # Quoted as typed; repr when a control character would break the one-line error.
    return repr(path) if any(ord(c) < 32 for c in path) else f"'{path}'"
