"""The run-directory format Guild AI uses (ARCHITECTURE.md, contract 1).

A run is `GUILD_HOME/runs/<32-hex id>/`; metadata lives under `.guild/`: `attrs/<name>` holds
one YAML value per file, `opref` one line, `output` the combined stdout/stderr (written by the
process itself, in order; Guild's optional per-line `output.index` is not written),
`manifest` the source files copied into the run dir, `LOCK` the pid of the running process.
"""

import datetime
import errno
import hashlib
import os
import pathlib
import re
import stat
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import yaml

from guild_common import errors, paths
from guild_common.paths import StrPath

# A snapshot file as write_sourcecode takes it and read_sourcecode gives it: (path, bytes, mode).
SourceFile = tuple[str, bytes, int]


def new_run_id() -> str:
    return uuid.uuid4().hex


def now_us() -> int:
    return int(time.time() * 1_000_000)


def format_us(us: int | None) -> str | None:
    """A run time (µs since the epoch) as Guild shows it, local time; None for no time."""
    if not us:
        return None
    return datetime.datetime.fromtimestamp(us / 1_000_000).strftime("%Y-%m-%d %H:%M:%S")


def guild_dir(run_dir: StrPath) -> pathlib.Path:
    return pathlib.Path(run_dir) / ".guild"


def attrs_dir(run_dir: StrPath) -> pathlib.Path:
    return guild_dir(run_dir) / "attrs"


def output_path(run_dir: StrPath) -> pathlib.Path:
    return guild_dir(run_dir) / "output"


def output_size(run_dir: StrPath) -> int:
    """Bytes in a run's output so far (0 before it has any)."""
    try:
        return os.stat(output_path(run_dir)).st_size
    except FileNotFoundError:
        return 0


def lock_file(run_dir: StrPath) -> pathlib.Path:
    return guild_dir(run_dir) / "LOCK"


_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def _dump(value: Any) -> str:
    """Guild's attr text for a value (yaml.safe_dump, block style, keys sorted). With libyaml's
    emitter, which is several times faster (a start writes the whole environment), plus the
    document end marker pyyaml's own emitter puts after a plain scalar; the two differ only in
    how they wrap or escape strings with control characters (the same value either way)."""
    text = yaml.dump(value, Dumper=_DUMPER, default_flow_style=False, sort_keys=True, allow_unicode=True)
    if not isinstance(value, (dict, list)) and text[:1] not in ("'", '"', "|", ">") and not text.endswith("...\n"):
        text += "...\n"
    return text


def write_atomic(path: StrPath, data: bytes, mode: int = 0o666) -> None:
    """Writes a file atomically: a reader sees the old content or the new, never half, and
    a write that fails (a full disk) leaves the old content and no temporary file. `mode`
    (less the umask) is the new file's: 0o600 for one only its owner may read."""
    path = pathlib.Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode), "wb") as f:
            if mode != 0o666:
                os.fchmod(f.fileno(), mode)  # also when a leftover temporary file had a wider one
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_attr(run_dir: StrPath, name: str, value: Any, private: bool = False) -> None:
    """Writes one attribute atomically (see write_atomic); `private`: readable by the run's
    owner only (its recorded environment may hold tokens)."""
    write_atomic(attrs_dir(run_dir) / name, _dump(value).encode(), 0o600 if private else 0o666)


def write_attrs(run_dir: StrPath, attrs: Mapping[str, Any]) -> None:
    attrs_dir(run_dir).mkdir(parents=True, exist_ok=True)
    for name, value in attrs.items():
        write_attr(run_dir, name, value)


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_regular(path: StrPath) -> bytes:
    """A run file's bytes, from a regular file only: the run dir is its owner's, and a FIFO
    she put in place of an attr or LOCK would hold the reading thread (the daemon's I/O
    thread) forever, a device would never end. Opened without blocking, then refused
    (OSError EINVAL) unless it is a regular file."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    with open(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        os.set_blocking(fd, True)
        return f.read()


def read_attr(run_dir: StrPath, name: str, default: Any = None) -> Any:
    """One attribute's value; `default` when it is missing or holds no value (not text, not
    YAML, not a regular file, one the reader may not open): one damaged attr must not stop
    whatever reads the run."""
    try:
        text = read_regular(os.path.join(run_dir, ".guild", "attrs", name)).decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return default
    return parse_attr(text, default)


# ASCII digits only: str.isdigit() is true of '²', which int() refuses.
_PLAIN_INT = re.compile(r"-?[0-9]{1,30}")


def parse_attr(text: str, default: Any = None) -> Any:
    """One attribute's YAML value. Times and exit codes are plain ints: read those without
    the YAML parser (an index rebuild reads a hundred thousand of them)."""
    stripped = text.strip()
    if _PLAIN_INT.fullmatch(stripped):
        return int(stripped)
    try:
        value = yaml.load(text, Loader=_LOADER)
    except (yaml.YAMLError, ValueError):  # ValueError: an int of more digits than Python converts
        return default
    return default if value is None else value


def read_attrs(run_dir: StrPath) -> dict[str, Any]:
    """Every attribute (see read_attr); none when the attrs dir is missing or can't be
    listed by the reader."""
    try:
        names = os.listdir(attrs_dir(run_dir))
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return {}
    return {name: read_attr(run_dir, name) for name in sorted(names) if not name.startswith(".")}


def delete_attr(run_dir: StrPath, name: str) -> None:
    try:
        (attrs_dir(run_dir) / name).unlink()
    except FileNotFoundError:
        pass


def write_opref(run_dir: StrPath, opref: str) -> None:
    (guild_dir(run_dir) / "opref").write_text(opref + "\n")


def read_opref(run_dir: StrPath) -> str:
    """The run's opref line; '' when it is missing, not a regular file (see read_regular) or
    one the reader may not open."""
    try:
        return read_regular(guild_dir(run_dir) / "opref").decode("utf-8", "replace").strip()
    except OSError:
        return ""


def script_opref(project_dir: StrPath, script: str) -> str:
    """Guild's opref for a script run: `script:/abs/dir '' '' train.py`."""
    return f"script:{_quote(str(project_dir))} '' '' {_quote(script)}"


def op_name_for_opref(opref: str) -> str:
    """The operation name an opref line shows (`train.py`, `train`, `model:train`)."""
    parts = _split_opref(opref)
    if len(parts) < 4:
        return ""
    model, op = parts[2], parts[3]
    return f"{model}:{op}" if model else op


def opref_origin(opref: str) -> tuple[str, str]:
    """(kind, path) of where an operation came from: (`script`, project dir), (`guildfile`,
    guild.yml path), (`package`, name); (kind, '') for others."""
    first = _split_opref(opref)[0]
    kind, _, path = first.partition(":")
    return kind, path if kind in ("script", "guildfile", "package") else ""


def _quote(s: str) -> str:
    return f"'{s}'" if (not s or " " in s) else s


def _split_opref(opref: str) -> list[str]:
    parts: list[str] = []
    cur, quoted = "", False
    for ch in opref:
        if ch == "'":
            quoted = not quoted
        elif ch == " " and not quoted:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return parts


def set_marker(run_dir: StrPath, name: str, present: bool) -> None:
    """STAGED / PENDING markers, which Guild reads as a run's status."""
    path = guild_dir(run_dir) / name
    if present:
        path.touch()
    else:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def has_marker(run_dir: StrPath, name: str) -> bool:
    return (guild_dir(run_dir) / name).exists()


def read_lock_pid(run_dir: StrPath) -> int | None:
    """The pid in a run's LOCK; None when there is none: missing, not a number, not a regular
    file (see read_regular) or one the reader may not open."""
    try:
        return int(read_regular(lock_file(run_dir)).strip())
    except (OSError, ValueError):
        return None


def run_file(run_dir: StrPath, path: str, what: str = "source file", follow: bool = True) -> pathlib.Path:
    """Where `path`, a file the source snapshot or a dependency puts in the run dir, is:
    resolved. Refuses (InvalidArgument) a path outside the run dir (see
    guild_common.paths.contained) or among the run's own metadata under `.guild`, save
    Guild's older `.guild/sourcecode` layout: they must not overwrite the attrs, output or
    lock the daemon reads."""
    full = paths.contained(run_dir, path, what, follow=follow)
    parts = full.relative_to(pathlib.Path(run_dir).resolve()).parts
    if not parts:
        raise errors.InvalidArgument(f"{what} '{path}' is the run directory itself, not a file")
    if parts[0] == ".guild" and parts[:2] != (".guild", "sourcecode"):
        raise errors.InvalidArgument(f"{what} '{path}' is among the run's metadata (.guild)")
    return full


def write_sourcecode(run_dir: StrPath, files: Sequence[SourceFile]) -> list[str]:
    """Copies source files ((path, bytes, mode)) into the run dir's root (Guild 0.9's layout)
    and writes the manifest Guild reads for `ls --sourcecode`: `s <path> <sha1> <path>` per
    file. Every path is checked before anything is written. Returns the paths written,
    normalised, in order."""
    run_dir = pathlib.Path(run_dir)
    targets = _sourcecode_targets(run_dir, [path for path, _, _ in files])
    lines, written = [], []
    for (rel, dest), (_path, data, mode) in zip(targets, files):
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.is_symlink():
            dest.unlink()  # replaced, never written through
        dest.write_bytes(data)
        if mode:
            os.chmod(dest, mode & 0o777)
        lines.append(f"s {_quote(rel)} {hashlib.sha1(data).hexdigest()} {_quote(rel)}")
        written.append(rel)
    (guild_dir(run_dir) / "manifest").write_text("".join(line + "\n" for line in lines))
    return written


def check_sourcecode(run_dir: StrPath, file_paths: Sequence[str], dest: str = "") -> None:
    """Refuses (InvalidArgument) a snapshot dest, or snapshot paths, that `write_sourcecode`
    would refuse ('' and '.' are the run dir itself); writes nothing, so the run dir need not
    exist yet."""
    if dest not in ("", "."):
        run_file(run_dir, dest, "sourcecode dest")
    _sourcecode_targets(pathlib.Path(run_dir), file_paths)


def replace_sourcecode(run_dir: StrPath, files: Sequence[SourceFile], dest: str = "") -> list[str]:
    """A restart's new snapshot: removes the files the manifest lists, then writes `files`
    (under `dest`). The manifest's paths (the run's process can rewrite it), `dest` and the
    new paths are all checked before anything is removed. Returns the paths written."""
    old = [run_file(run_dir, p, "manifest path", follow=False) for p in sourcecode_files(run_dir)]
    check_sourcecode(run_dir, [path for path, _, _ in files], dest)
    for path in old:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
    return write_sourcecode(run_dir, files)


def read_sourcecode(run_dir: StrPath) -> list[SourceFile]:
    """The snapshot files the manifest lists, as (path, bytes, mode); paths that are not
    regular files any more are left out. A manifest path outside the run dir is refused."""
    out = []
    for path in sourcecode_files(run_dir):
        full = run_file(run_dir, path, "manifest path")
        if full.is_file():
            out.append((path, full.read_bytes(), full.stat().st_mode & 0o777))
    return out


def _sourcecode_targets(run_dir: pathlib.Path, file_paths: Sequence[str]) -> list[tuple[str, pathlib.Path]]:
    """(normalised relative path, resolved target) per snapshot path, all checked."""
    root = run_dir.resolve()
    targets = [run_file(run_dir, path, follow=False) for path in file_paths]
    rels = {t.relative_to(root).as_posix() for t in targets}
    for path, target in zip(file_paths, targets):
        # 'a' and 'a/b' can't both be files.
        if any(parent.as_posix() in rels for parent in target.relative_to(root).parents if parent.parts):
            raise errors.InvalidArgument(f"source file '{path}' is under another source file")
    return [(t.relative_to(root).as_posix(), t) for t in targets]


def sourcecode_files(run_dir: StrPath) -> list[str]:
    """The source files a run's manifest lists."""
    try:
        text = (guild_dir(run_dir) / "manifest").read_text()
    except FileNotFoundError:
        return []
    return [_split_opref(line)[1] for line in text.splitlines() if line.startswith("s ")]


def status_for_exit_status(exit_status: int) -> str:
    """Guild's reading of exit_status: 0 completed, negative (a signal) terminated, else error."""
    if exit_status == 0:
        return "completed"
    if exit_status < 0:
        return "terminated"
    return "error"


def read_status(run_dir: StrPath, pid_alive: Callable[[int], bool]) -> str:
    """A run's status from its directory, as Guild reads it. Only the daemon's start-up
    reconciler and index rebuild use this; at run time the daemon's state machine knows."""
    if has_marker(run_dir, "PENDING"):
        return "pending"
    if has_marker(run_dir, "STAGED"):
        return "staged"
    exit_status = read_attr(run_dir, "exit_status")
    if exit_status is not None:
        return status_for_exit_status(exit_status)
    pid = read_lock_pid(run_dir)
    if pid is not None and pid_alive(pid):
        return "running"
    return "error"


def tail_lines(data: bytes, n: int) -> bytes:
    """The last `n` lines of `data` (bytes)."""
    if n <= 0:
        return data
    end = len(data) - 1 if data.endswith(b"\n") else len(data)
    pos = end
    for _ in range(n):
        pos = data.rfind(b"\n", 0, pos)
        if pos < 0:
            return data
    return data[pos + 1 :]
