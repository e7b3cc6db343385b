"""Managing runs that exist: labels, marks, the trash, files, export and import, disk usage.

Plain functions of the run dirs and the index, called on the daemon's I/O thread. Run dirs
stay the truth: each change is made in the run dir as Guild AI 0.9 makes it (attrs/label,
attrs/marked, GUILD_HOME/trash/runs/<id>), then in the index.
"""

import contextlib
import dataclasses
import fnmatch
import logging
import os
import pathlib
import re
import shutil
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Optional

from guild_common import errors, home as homelib, limits, paths, rundir
from guild_common.paths import StrPath
from guildd import daemonlog, fsrights, runevents, runstate
from guildd import store as storelib
from guildd.tfevents import ScalarSummary, read_scalars, summarize

log = logging.getLogger("guildd")

RUN_ID = re.compile(r"^[0-9a-f]{32}$")


def trash_runs_dir(home: StrPath) -> pathlib.Path:
    return pathlib.Path(home) / "trash" / "runs"


def location(home: StrPath, rec: storelib.RunRecord) -> pathlib.Path:
    """The directory a run lives in now (the runs dir or the trash)."""
    base = trash_runs_dir(home) if rec.deleted else homelib.runs_dir(home)
    return base / rec.id


def new_label(old: str, action: str, value: str) -> str:
    """A label after `--set`, `--tag`/`--prepend`, `--append`, `--remove` or `--clear`."""
    if action == "set":
        return value
    if action == "prepend":
        return f"{value} {old}".strip()
    if action == "append":
        return f"{old} {value}".strip()
    if action == "remove":
        # Whole words only: removing `a` from `ab a` leaves `ab`.
        words, drop = old.split(), value.split()
        out: list[str] = []
        i = 0
        while i < len(words):
            if drop and words[i : i + len(drop)] == drop:
                i += len(drop)
            else:
                out.append(words[i])
                i += 1
        return " ".join(out)
    if action == "clear":
        return ""
    raise errors.InvalidArgument(f"unknown label action '{action}'")


def label_runs(store: storelib.Store, home: StrPath, recs: Iterable[storelib.RunRecord], action: str,
               value: str) -> list[storelib.RunRecord]:
    changed: list[storelib.RunRecord | None] = []
    for rec in recs:
        label = limits.capped(new_label(rec.label, action, value), limits.MAX_LABEL)  # appended to a long one
        run_dir = location(home, rec)
        with in_run_dir(run_dir, rec):
            if label:
                rundir.write_attr(run_dir, "label", label)
            else:
                rundir.delete_attr(run_dir, "label")
        store.update(rec.id, label=label)
        changed.append(store.get(rec.id))
    return changed  # type: ignore[return-value]  # each run was just updated: none is None


def mark_runs(store: storelib.Store, home: StrPath, recs: Sequence[storelib.RunRecord],
              clear: bool) -> list[storelib.RunRecord]:
    for rec in recs:
        run_dir = location(home, rec)
        with in_run_dir(run_dir, rec):
            if clear:
                rundir.delete_attr(run_dir, "marked")
            else:
                rundir.write_attr(run_dir, "marked", True)
        store.update(rec.id, marked=not clear)
    return store.get_many([r.id for r in recs])


@contextlib.contextmanager
def in_run_dir(run_dir: StrPath, rec: storelib.RunRecord) -> Iterator[None]:
    """A write into a run dir, made with its owner's rights (see guildd.fsrights): one its
    owner's own changes to the dir refuse (an attrs dir replaced by a link) is answered
    PermissionDenied, naming the run, and changes nothing."""
    try:
        with fsrights.as_owner_of(run_dir):
            yield
    except PermissionError as e:
        raise errors.PermissionDenied(f"cannot write to run {rec.id[:8]}: {e.strerror or e} ({e.filename or run_dir})") from None


def _refuse_active(recs: Iterable[storelib.RunRecord], verb: str) -> None:
    for rec in recs:
        if rec.status in runstate.ACTIVE:
            raise errors.FailedPrecondition(f"cannot {verb} run {rec.id[:8]}: it is {rec.status} (stop it first)")


def delete_runs(store: storelib.Store, home: StrPath, recs: Sequence[storelib.RunRecord],
                permanent: bool) -> Sequence[storelib.RunRecord]:
    _refuse_active(recs, "delete")
    trash = trash_runs_dir(home)
    for rec in recs:
        src = location(home, rec)
        if permanent:
            shutil.rmtree(src, ignore_errors=True)
            store.delete(rec.id)
        else:
            trash.mkdir(parents=True, exist_ok=True)
            dest = trash / rec.id
            if dest.exists():
                shutil.rmtree(dest)
            os.replace(src, dest)
            store.update(rec.id, deleted=1)
    return recs


def restore_runs(store: storelib.Store, home: StrPath,
                 recs: Sequence[storelib.RunRecord]) -> list[storelib.RunRecord]:
    runs_dir = homelib.runs_dir(home)
    for rec in recs:
        dest = runs_dir / rec.id
        if dest.exists():
            raise errors.AlreadyExists(f"cannot restore {rec.id[:8]}: a run with that id exists")
        os.replace(location(home, rec), dest)
        store.update(rec.id, deleted=0)
    return store.get_many([r.id for r in recs])


def purge_runs(store: storelib.Store, home: StrPath,
               recs: Sequence[storelib.RunRecord]) -> Sequence[storelib.RunRecord]:
    for rec in recs:
        shutil.rmtree(location(home, rec), ignore_errors=True)
        store.delete(rec.id)
    return recs


def list_files(run_dir: StrPath, path: str = "", all_files: bool = False, sourcecode: bool = False,
               follow_links: bool = False) -> list[tuple[str, bool, bool, int]]:
    """A run's files as (relpath, is_dir, is_link, size), sorted; `.guild` hidden unless
    `all_files`; `path` a prefix or a glob (`*` crosses `/`, as Guild's `ls -p`)."""
    run_dir = pathlib.Path(run_dir)
    if path:
        paths.relative(path)  # a filter, but one naming a place outside the run is a mistake
    if sourcecode:
        wanted = set(rundir.sourcecode_files(run_dir))
    out = []
    seen = {_dir_key(run_dir)}
    for root, dirs, files in os.walk(run_dir, followlinks=follow_links):
        rel_root = os.path.relpath(root, run_dir)
        rel_root = "" if rel_root == "." else rel_root + "/"
        if not all_files and rel_root == "":
            dirs[:] = [d for d in dirs if d != ".guild"]
        dirs.sort()
        names = sorted(dirs + files)
        if follow_links:
            dirs[:] = _linked_dirs_to_descend(run_dir, root, dirs, seen)
        for name in names:
            rel = rel_root + name
            full = os.path.join(root, name)
            is_link = os.path.islink(full)
            is_dir = os.path.isdir(full)
            if sourcecode and rel not in wanted and not any(w.startswith(rel + "/") for w in wanted):
                continue
            if path and not (rel.startswith(path.rstrip("/")) or fnmatch.fnmatch(rel, path)):
                continue
            size = 0 if is_dir else os.lstat(full).st_size
            out.append((rel, is_dir, is_link, size))
    return sorted(out)


def _dir_key(path: StrPath) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def _linked_dirs_to_descend(run_dir: pathlib.Path, root: str, dirs: list[str], seen: set[tuple[int, int]]) -> list[str]:
    """The dirs of `root` that `ls -L` descends into: a linked dir only when it leads inside
    the runs dir that holds the run (an upstream run's files, which a `target-type: link`
    dependency links to), never out of GUILD_HOME; and each dir once, so links that loop
    back (`a -> .`, `b -> .`) end instead of making 2^N paths. `seen` gathers the dirs
    (device, inode) entered so far."""
    keep = []
    for d in dirs:
        full = os.path.join(root, d)
        try:
            key = _dir_key(full)
            if key in seen or (os.path.islink(full) and not paths.inside(full, run_dir.parent)):
                continue
        except (OSError, errors.GuildError):  # gone, or a link that can't be resolved
            continue
        seen.add(key)
        keep.append(d)
    return keep


def file_path(run_dir: StrPath, rel: str) -> pathlib.Path:
    """The absolute path of a run file, refusing paths that leave the run dir, by `..`, as
    an absolute path, or through a symbolic link (one the run made, say) that points out."""
    full = paths.contained(run_dir, rel)
    if not full.exists():
        raise errors.NotFound(f"{full} does not exist")
    if full.is_dir():
        raise errors.InvalidArgument(f"{full} is a directory")
    return full


def export_runs(store: storelib.Store, home: StrPath, recs: Sequence[storelib.RunRecord], dest: str,
                move: bool, caller: Optional[fsrights.Account] = None) -> list[tuple[str, str, str]]:
    """Copies (or moves) runs into `dest`. With a `caller` (a shared daemon's), everything
    read and written there is done with the caller's rights: root never writes where they
    name (/etc, another user's dir), and they export only what they can read."""
    with fsrights.as_account(caller):
        dest_dir, results, moved = _export(home, recs, dest, move)
    for rec, src in moved:  # the run dir itself is in the daemon's runs dir: root removes it
        shutil.rmtree(src)
        store.delete(rec.id)
    return results


def _export(home: StrPath, recs: Sequence[storelib.RunRecord], dest: str,
            move: bool) -> tuple[pathlib.Path, list[tuple[str, str, str]], list[tuple[storelib.RunRecord, pathlib.Path]]]:
    dest_dir = export_dir(home, dest)
    if move:
        _refuse_active(recs, "move")
    try:
        if dest_dir.exists() and not dest_dir.is_dir():
            raise errors.InvalidArgument(f"'{dest_dir}' is not a directory")
        dest_dir.mkdir(parents=True, exist_ok=True)
        (dest_dir / ".guild-nocopy").touch()
    except OSError as e:
        raise errors.PermissionDenied(f"cannot write to '{dest_dir}': {e.strerror}") from e
    results = []
    moved = []
    for rec in recs:
        target = dest_dir / rec.id
        if target.exists():
            results.append((rec.id, "skipped", f"{rec.id} exists, skipping"))
            continue
        src = location(home, rec)
        tmp = dest_dir / f".{rec.id}.partial"
        # Copy under a temporary name, then rename: a failed export leaves no half run.
        shutil.rmtree(tmp, ignore_errors=True)
        left_out: list[str] = []
        try:
            shutil.copytree(src, tmp, symlinks=True, copy_function=_readable_copier(src, left_out))
        except (PermissionError, shutil.Error) as e:
            shutil.rmtree(tmp, ignore_errors=True)
            raise errors.PermissionDenied(f"cannot export run {rec.id[:8]} to '{dest_dir}': {e}") from None
        if move and left_out:  # a move that left files behind would lose them with the run dir
            shutil.rmtree(tmp, ignore_errors=True)
            raise errors.PermissionDenied(f"cannot move run {rec.id[:8]}: you cannot read {', '.join(left_out)}")
        os.replace(tmp, target)
        if move:
            moved.append((rec, src))
        why = f"left out what you cannot read: {', '.join(left_out)}" if left_out else ""
        results.append((rec.id, "moved" if move else "copied", why))
    return dest_dir, results, moved


def _readable_copier(top: pathlib.Path, left_out: list[str]) -> Callable[[str, str], Any]:
    """copytree's copy function for an export: a file the caller may not read (another
    user's run's recorded environment, readable by its owner only) is left out, its path
    under `top` added to `left_out`, instead of failing the export of what they may read."""

    def copy(src: str, dst: str) -> Any:
        try:  # links are copied as links: this is a file (O_NONBLOCK: a fifo mustn't hang the open)
            os.close(os.open(src, os.O_RDONLY | os.O_NONBLOCK))
        except PermissionError:
            left_out.append(os.path.relpath(src, top))
            return dst
        return shutil.copy2(src, dst)

    return copy


def export_dir(home: StrPath, dest: str) -> pathlib.Path:
    """`dest` as an export directory: absolute, and not where the daemon keeps runs (an
    export into a run would copy that run into itself, again and again)."""
    dest_dir = paths.absolute_dir(dest, "export directory")
    for keep in (homelib.runs_dir(home), trash_runs_dir(home)):
        if paths.inside(dest_dir, keep):
            raise errors.InvalidArgument(f"cannot export to '{dest_dir}': it is inside {keep}, where guildd keeps runs")
    return dest_dir


def archive_run_dirs(archive: str) -> list[pathlib.Path]:
    """The run dirs in an export directory."""
    archive_dir = paths.absolute_dir(archive, "archive directory")
    try:
        if not archive_dir.exists():
            raise errors.NotFound(f"archive '{archive_dir}' does not exist")
        if not archive_dir.is_dir():
            raise errors.InvalidArgument(f"invalid archive '{archive_dir}' - expected a directory")
        return sorted(p for p in archive_dir.iterdir() if RUN_ID.match(p.name) and rundir.attrs_dir(p).is_dir())
    except PermissionError as e:  # read with the caller's rights (a shared daemon's)
        raise errors.PermissionDenied(f"cannot read archive '{archive_dir}': {e.strerror}") from None


def import_runs(store: storelib.Store, home: StrPath, run_dirs: Iterable[pathlib.Path], move: bool,
                pid_alive: Callable[[int], bool], caller: Optional[fsrights.Account] = None) -> list[tuple[str, str, str]]:
    """Copies (or moves) run dirs from an export directory into the runs dir, and indexes
    them. With a `caller` (a shared daemon's), the archive is read (and, moving, emptied)
    with the caller's rights, into a dir the daemon made and gave to them: the imported
    runs are theirs, and nothing they can't read gets in."""
    as_caller = caller if caller is not None and fsrights.confines() and caller.uid != 0 else None
    runs_dir = homelib.runs_dir(home)
    existing = store.ids() | store.ids(deleted=True)
    results = []
    for src in run_dirs:
        run_id = src.name
        if run_id in existing or (runs_dir / run_id).exists():
            results.append((run_id, "skipped", f"{run_id} exists, skipping"))
            continue
        tmp = runs_dir / f".{run_id}.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        if as_caller is not None:
            _place_as(src, tmp, runs_dir / run_id, move, as_caller)
        elif move:
            shutil.move(str(src), str(runs_dir / run_id))
        else:
            shutil.copytree(src, tmp, symlinks=True)
            os.replace(tmp, runs_dir / run_id)
        index_run_dir(store, runs_dir / run_id, pid_alive)
        results.append((run_id, "moved" if move else "copied", ""))
    return results


def _place_as(src: pathlib.Path, tmp: pathlib.Path, dest: pathlib.Path, move: bool, caller: fsrights.Account) -> None:
    """One run dir imported with the caller's rights, into a dir the daemon made and gave to
    them: the run is theirs, and nothing they can't read gets in."""
    tmp.mkdir(mode=0o755)
    os.lchown(tmp, caller.uid, caller.gid)
    try:
        with fsrights.as_account(caller):
            shutil.copytree(src, tmp / src.name, symlinks=True)
            if move:
                shutil.rmtree(src)
    except (PermissionError, shutil.Error) as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise errors.PermissionDenied(f"cannot import run {src.name[:8]} from '{src.parent}': {e}") from None
    os.replace(tmp / src.name, dest)
    os.rmdir(tmp)


def index_run_dir(store: storelib.Store, run_dir: StrPath, pid_alive: Callable[[int], bool],
                  deleted: bool = False, reader: Optional[fsrights.Account] = None) -> None:
    """Adds a run dir made elsewhere (Guild AI, an import, a restore by hand) to the index,
    with its scalars read from its event files. A run dir that can't be read is indexed as
    an error, the reason logged: it is listed (and can be deleted), and never stops a sync.
    The run dir is read with the rights of `reader` (whoever lists an archive), else of its
    owner: an attr she linked to a root-only file indexes no value (the index is written
    with the daemon's own rights)."""
    run_id = os.path.basename(run_dir)
    rights = fsrights.as_account(reader) if reader is not None else fsrights.as_owner_of(run_dir)
    with rights:
        try:
            rec = storelib.record_from_rundir(run_dir, pid_alive, deleted=deleted)
        except Exception as e:  # noqa: BLE001 - whatever is wrong with one run dir
            log.warning("run %s: cannot read its run dir (%s): listed as an error", run_id[:8], daemonlog.describe(e))
            rec = _damaged_record(run_id, deleted)
        offset = rundir.output_size(run_dir)
        try:
            scalars, read_to = run_scalars(run_dir)
        except Exception as e:  # noqa: BLE001 - the run is listed without scalars
            log.warning("run %s: cannot read its scalars: %s", run_id[:8], daemonlog.describe(e))
            scalars, read_to = None, {}
    store.insert(dataclasses.replace(rec, scalar_offset=offset))
    if scalars is None:
        return
    if scalars or read_to:
        summaries = summarize(scalars)
        store.replace_scalars(rec.id, [summary_record(tag, s) for tag, s in summaries.items()], read_to)


def run_scalars(run_dir: StrPath) -> tuple[list[runevents.Scalar], dict[str, int]]:
    """Every scalar value in a run dir, with the calling thread's rights: the events guildd
    made of its output (in `.guild`) and those of the event files its process wrote; and how
    far each of the latter was read (path -> bytes)."""
    events = runevents.RunEvents(run_dir)
    scalars = [(tag, value, step) for tag, value, step, _t in read_scalars(str(rundir.guild_dir(run_dir)))]
    scalars += events.read_all()
    return scalars, events.offsets


def _damaged_record(run_id: str, deleted: bool) -> storelib.RunRecord:
    return storelib.RunRecord(id=run_id, status=runstate.ERROR, deleted=deleted)


def summary_record(tag: str, s: ScalarSummary) -> storelib.Summary:
    return storelib.Summary(
        tag=tag,
        first_val=s.first_val,
        first_step=s.first_step,
        last_val=s.last_val,
        last_step=s.last_step,
        min_val=s.min_val,
        min_step=s.min_step,
        max_val=s.max_val,
        max_step=s.max_step,
        total=s.total,
        count=s.count,
    )


def disk_usage(home: StrPath) -> list[tuple[str, str, int]]:
    home = pathlib.Path(home)
    places = [
        ("guild_home", home),
        ("runs", homelib.runs_dir(home)),
        ("deleted_runs", trash_runs_dir(home)),
        ("cache", home / "cache"),
    ]
    return [(name, str(path), _du(path)) for name, path in places]


def _du(path: StrPath) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total
