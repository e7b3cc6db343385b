"""The runs as the index knows them: reads and queries (select, compare, files), the
management writes (labels, marks, the trash, export and import), and keeping the index in
line with the run dirs, including dirs added or removed by hand.

Blocking work runs on the runtime's I/O thread (the index's one SQLite connection) or its
worker thread; the functions behind it are in guildd.manage, guildd.compare and guildd.store.
"""

import asyncio
import dataclasses
import json
import logging
import os
import pathlib
import pwd
import shutil
import socket
import time
from typing import Any, AsyncIterator, Callable, Iterable, Sequence

from guild_common import errors, home as homelib, rundir
from guildd import annotations, authz, batchspec, compare as comparelib, diskspace, executor as execlib, manage, outputs, runstate, selection
from guildd import fsrights, history, store as storelib
from guildd.runtime import Runtime

log = logging.getLogger("guildd")

BIG_SYNC = 1000  # runs found on disk indexed per commit; more than this is shown as the daemon's state
# What a user set on a run (kept in its attrs): checked against the run dir after an unclean start.
ANNOTATIONS = ("label", "tags_json", "comments_json", "marked")
FACTS = ("op_name", "opref", "created_us", "started_us", "stopped_us", "exit_status", "flags_json", "user", "digest")
# In a run's .guild dir while guildd makes the run (Launcher._create), removed as the last step:
# a dir that still has it when no daemon makes it is half-made (the daemon was killed meanwhile).
MAKING = ".guildd-making"


@dataclasses.dataclass(frozen=True)
class Listing:
    """Runs as ListRuns shows them, read in one trip to the I/O thread."""

    recs: list[storelib.RunRecord]
    total: int
    pids: dict[str, int]  # running runs' process ids, from their LOCK files
    commands: dict[str, Any]  # each run's `cmd` attr, when asked for
    scalars: dict[str, list[storelib.Summary]]  # each run's scalar summaries, when asked for


@dataclasses.dataclass(frozen=True)
class BatchView:
    """A batch run's objective and its trials (GetBatch)."""

    column: str  # the objective in compare's column syntax
    maximize: bool
    trials: list[tuple[int, storelib.RunRecord, "float | None"]]  # (number from 1, trial, objective value)
    scalars: dict[str, list[storelib.Summary]]  # each trial's scalar summaries


class SyncStopped(Exception):
    """The daemon stopped while its sync indexed the runs found on disk (see Catalog.stopping)."""


class Catalog:
    def __init__(self, runtime: Runtime, store: storelib.Store, home: "str | os.PathLike", discard: Callable[[str], Any]):
        self.runtime = runtime
        self.store = store
        self.home = home
        self.runs_dir = homelib.runs_dir(home)
        self.discard = discard  # takes a run out of the queue (deleting it)
        self.dir_mtimes: dict[bool, int] = {}  # runs dir / trash mtimes the index was last synced at
        self.rows_checked = store.clean_start  # see _check_rows
        self.state = "starting"  # what GetDaemonInfo shows until the daemon is ready
        self.stopping = False  # set (from the event loop) when the daemon stops during its start-up's sync

    def location(self, rec: storelib.RunRecord) -> pathlib.Path:
        """The directory a run lives in now (the runs dir or the trash)."""
        return manage.location(self.home, rec)

    def running_pid(self, rec: storelib.RunRecord) -> int:
        """A running run's process id from its LOCK file (0 when none), read with the rights
        of the run dir's owner: the file is hers (a link to a root-only file shows nothing)."""
        if rec.status != runstate.RUNNING:
            return 0
        run_dir = self.location(rec)
        return fsrights.call_as_owner_of(run_dir, rundir.read_lock_pid, run_dir) or 0

    async def get_run(self, spec: str, statuses: Sequence[str] = (), criteria: "selection.Criteria | None" = None) -> storelib.RunRecord:
        def get() -> storelib.RunRecord:
            self.sync_index()
            return self.store.resolve(spec, statuses, criteria)

        return await self.runtime.io(get)

    async def get_by_id(self, run_id: str) -> "storelib.RunRecord | None":
        """A run by its full id, trash included (no sync: a run known already)."""
        return await self.runtime.io(self.store.get, run_id)

    async def get_many(self, run_ids: Sequence[str]) -> list[storelib.RunRecord]:
        return await self.runtime.io(self.store.get_many, run_ids)

    async def owners(self, recs: Sequence[storelib.RunRecord]) -> dict[str, authz.Owner]:
        """Whose each run is (run id -> owner, in order): the uid that owns its run dir, which
        the run's `user` attr (an editable file) cannot forge. NotFound for a run whose dir
        is gone."""

        def read() -> dict[str, authz.Owner]:
            out = {}
            for rec in recs:
                path = self.location(rec)
                try:
                    uid = os.lstat(path).st_uid
                except FileNotFoundError:
                    raise errors.NotFound(f"run {rec.id[:8]} is gone: {path} no longer exists") from None
                out[rec.id] = authz.Owner(uid, _user_name(uid, rec.user))
            return out

        return await self.runtime.io(read)

    async def list_runs(self, statuses: Sequence[str], limit: int) -> tuple[list[storelib.RunRecord], int]:
        return await self.select(selection.Criteria(statuses=tuple(statuses)), limit=limit)

    async def select(self, criteria: selection.Criteria, specs: Sequence[str] = (), limit: int = 0,
                     order: "tuple[str, bool] | None" = None, archive: str = "",
                     caller: "fsrights.Account | None" = None) -> tuple[list[storelib.RunRecord], int]:
        """Runs by filter and run specs, latest first (or by `order`), and their total; an
        `archive`'s runs are read with `caller`'s rights (see archive_store)."""
        return await self.runtime.io(self._select, criteria, specs, limit, order, archive, caller)

    def _select(self, criteria: selection.Criteria, specs: Sequence[str], limit: int, order: "tuple[str, bool] | None",
                archive: str, caller: "fsrights.Account | None" = None, offset: int = 0) -> tuple[list[storelib.RunRecord], int]:
        if archive:
            return self.archive_store(archive, caller).select(criteria, specs, limit, order, offset)
        self.sync_index()
        return self.store.select(criteria, specs, limit, order, offset)

    async def listing(self, criteria: selection.Criteria, specs: Sequence[str], limit: int,
                      order: "tuple[str, bool] | None", archive: str, with_command: bool,
                      caller: "fsrights.Account | None" = None, with_scalars: bool = False, offset: int = 0) -> Listing:
        """`select`, with the running runs' pids (and, `with_command`, each run's command).
        A run's files are read with its owner's rights, an archive's with `caller`'s: a link
        in a run dir to a root-only file shows nothing of it."""

        def command(rec: storelib.RunRecord) -> Any:
            if archive:
                return fsrights.call_as_account(caller, rundir.read_attr, pathlib.Path(archive) / rec.id, "cmd")
            run_dir = self.location(rec)
            return fsrights.call_as_owner_of(run_dir, rundir.read_attr, run_dir, "cmd")

        def read() -> Listing:
            recs, total = self._select(criteria, specs, limit, order, archive, caller, offset)
            pids = {r.id: self.running_pid(r) for r in recs if r.status == runstate.RUNNING}
            commands = {r.id: command(r) for r in recs} if with_command else {}
            scalars = self.store.scalars_of([r.id for r in recs]) if with_scalars and not archive else {}
            return Listing(recs, total, pids, commands, scalars)

        return await self.runtime.io(read)

    async def details(self, rec: storelib.RunRecord) -> dict[str, Any]:
        """A run's attributes, for what only `runs info` shows: read with the rights of its
        dir's owner, so an attr she linked to a root-only file shows no value."""
        run_dir = self.location(rec)
        return await self.runtime.io(fsrights.call_as_owner_of, run_dir, rundir.read_attrs, run_dir)

    async def scalar_history(self, rec: storelib.RunRecord, max_points: int) -> list[history.Series]:
        """Every scalar's values by step (guildd.history), read from the run's event files
        with the rights of its dir's owner, on the work thread."""
        run_dir = self.location(rec)

        def read() -> list[history.Series]:
            scalars, _ = fsrights.call_as_owner_of(run_dir, manage.run_scalars, run_dir)
            # As the index shows them: event files hold 32-bit values (0.2, not 0.200000003).
            return history.series(((tag, storelib.float32(v), step) for tag, v, step in scalars), max_points)

        return await self.runtime.work(read)

    async def batch_view(self, rec: storelib.RunRecord) -> BatchView:
        """A batch run's objective and trials, in the order they were made, with each one's
        objective value. InvalidArgument for a run that isn't a batch."""
        run_dir = self.location(rec)

        def read() -> BatchView:
            found = fsrights.call_as_owner_of(run_dir, batchspec.read_spec, run_dir)
            if found is None:
                raise errors.InvalidArgument(f"run {rec.id[:8]} ({rec.op_name}) is not a batch run")
            objective = batchspec.objective(found[0])
            ids = fsrights.call_as_owner_of(run_dir, batchspec.trial_ids, run_dir)
            trials = self.store.get_many(ids)
            scalars = self.store.scalars_of(ids)
            numbered = [(n, t, batchspec.objective_value(scalars.get(t.id, []), objective)) for n, t in enumerate(trials, 1)]
            return BatchView(batchspec.objective_column(objective), objective.maximize, numbered, scalars)

        return await self.runtime.io(read)

    def archive_store(self, archive: str, caller: "fsrights.Account | None" = None) -> storelib.Store:
        """An in-memory index of an export directory, so its runs list and filter like ours.
        The client names the directory: with a `caller` (a shared daemon's) it is read with
        their rights, so root never lists or reads for them what they couldn't themselves."""
        archived = storelib.Store(":memory:", archive)
        with fsrights.as_account(caller):
            run_dirs = manage.archive_run_dirs(archive)
        for run_dir in run_dirs:
            manage.index_run_dir(archived, run_dir, execlib.pid_alive, reader=caller)
        return archived

    def changing_dirs(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Runs `fn` (which adds or removes run dirs) and keeps the index's view of the dirs
        current, so our own changes don't look like changes made by hand. I/O thread."""
        before = self._mtimes()
        result = fn(*args)
        after = self._mtimes()
        for key, mtime in before.items():
            if self.dir_mtimes.get(key) == mtime:
                self.dir_mtimes[key] = after[key]
        return result

    def _mtimes(self) -> dict[bool, int]:
        out = {}
        for deleted, base in ((False, self.runs_dir), (True, manage.trash_runs_dir(self.home))):
            try:
                out[deleted] = os.stat(base).st_mtime_ns
            except FileNotFoundError:
                out[deleted] = 0
        return out

    def sync_index(self) -> None:
        """Adds run dirs the index lacks and drops index rows whose dirs are gone (I/O thread).
        Reading must work on a full disk (it is how a user finds what to delete): there the
        index is used as it is, and synced again at the next read."""
        try:
            if not self.rows_checked:
                self._check_rows()
                self.rows_checked = True
            self._sync_dirs()
        except Exception as e:
            if not diskspace.is_full(e):
                raise
            log.warning("index not synced with the run dirs: %s", e)

    def _sync_dirs(self) -> None:
        """The sync, for the runs dir and the trash. Cheap when nothing changed: it compares
        the dirs' mtimes."""
        for deleted, base in ((False, self.runs_dir), (True, manage.trash_runs_dir(self.home))):
            try:
                mtime = os.stat(base).st_mtime_ns
            except FileNotFoundError:
                mtime = 0
            if self.dir_mtimes.get(deleted) == mtime:
                continue
            on_disk = set()
            if mtime:
                on_disk = {e.name for e in os.scandir(base) if manage.RUN_ID.match(e.name) and e.is_dir()}
            indexed = self.store.ids(deleted=deleted)
            for run_id in indexed - on_disk:
                self.store.delete(run_id)
            added = 0
            # Only a dir not indexed yet can be one the launcher is still making (it indexes
            # the run before taking the marker away): one look each, not one per run dir.
            new_ids = sorted(run_id for run_id in on_disk - indexed if not being_made(base / run_id))
            if len(new_ids) > BIG_SYNC:
                self.state = f"indexing {len(new_ids)} runs found on disk"
            for start in range(0, len(new_ids), BIG_SYNC):
                if self.stopping:  # between transactions: what is indexed is whole, the rest is the next start's
                    raise SyncStopped(f"index sync stopped with {start} of {len(new_ids)} runs found on disk indexed")
                with self.store.transaction():  # one commit per thousand runs, not per run
                    for run_id in new_ids[start : start + BIG_SYNC]:
                        if rundir.attrs_dir(base / run_id).is_dir():
                            manage.index_run_dir(self.store, base / run_id, execlib.pid_alive, deleted=deleted)
                            added += 1
                if len(new_ids) > BIG_SYNC:
                    log.info("indexed %d of %d runs found on disk", min(start + BIG_SYNC, len(new_ids)), len(new_ids))
            if added or indexed - on_disk:
                log.info("index: %d run(s) found on disk, %d gone", added, len(indexed - on_disk))
            self.dir_mtimes[deleted] = mtime

    def _check_rows(self) -> None:
        """Once, when the index was not closed cleanly (the daemon killed, its WAL lost or
        cut short): each row is checked against its run dir, and where it is older than the
        dir (a label, tag, comment, mark or end the index lost) it takes the dir's values; an
        ended run's output and event files read short of their end are read on from there. A
        run still going keeps what its follower indexed (scalars, read position)."""
        fixed = 0
        for deleted, base in ((False, self.runs_dir), (True, manage.trash_runs_dir(self.home))):
            for rec in self.store.get_many(sorted(self.store.ids(deleted=deleted))):
                run_dir = base / rec.id
                if not rundir.attrs_dir(run_dir).is_dir():
                    continue  # gone: the sync drops it
                try:
                    on_disk = fsrights.call_as_owner_of(run_dir, _disk_record, run_dir, deleted)
                except Exception as e:  # noqa: BLE001 - one unreadable run dir never stops the check
                    log.warning("run %s: cannot check its index row (%s)", rec.id[:8], e)
                    continue
                fields = stale_fields(rec, on_disk)
                if not fields:
                    continue
                fixed += 1
                facts = [f for f in fields if f != "scalar_offset"]
                if facts:
                    self.store.update(rec.id, **{f: getattr(on_disk, f) for f in facts})
                if "scalar_offset" in fields:
                    # From where the index holds it: the event files guildd makes of the output
                    # hold no more (they are written as the index is), so reading the run dir
                    # again would lose the output's last scalars.
                    outputs.catch_up(self.store, run_dir, rec.id, rec.scalar_offset)
        log.info("index not closed cleanly: %d run(s) read again from their run dirs", fixed)

    async def label_runs(self, recs: Sequence[storelib.RunRecord], action: str, value: str) -> list[storelib.RunRecord]:
        return await self.runtime.io(manage.label_runs, self.store, self.home, recs, action, value)

    async def mark_runs(self, recs: Sequence[storelib.RunRecord], clear: bool) -> list[storelib.RunRecord]:
        return await self.runtime.io(manage.mark_runs, self.store, self.home, recs, clear)

    async def tag_runs(self, recs: Sequence[storelib.RunRecord], change: annotations.TagChange) -> list[storelib.RunRecord]:
        """Adds, removes or clears the runs' tags, all or none (guildd.annotations)."""
        return await self.runtime.io(annotations.tag_runs, self.store, self.home, recs, change)

    async def comment_runs(self, recs: Sequence[storelib.RunRecord],
                           change: annotations.CommentChange) -> list[storelib.RunRecord]:
        """Adds, deletes or clears the runs' comments, all or none; a comment added is
        stamped here, with this host and the time now."""
        if change.action == annotations.ADD:
            change = dataclasses.replace(change, host=socket.gethostname(), time_us=time.time_ns() // 1000)
        return await self.runtime.io(annotations.comment_runs, self.store, self.home, recs, change)

    async def delete_runs(self, recs: Sequence[storelib.RunRecord], permanent: bool) -> Sequence[storelib.RunRecord]:
        for rec in recs:
            self.discard(rec.id)
        return await self.runtime.io(self.changing_dirs, self._delete_runs, recs, permanent)

    def _delete_runs(self, recs: Sequence[storelib.RunRecord], permanent: bool) -> Sequence[storelib.RunRecord]:
        """manage.delete_runs, and on a full disk a clear way out: a move to the trash frees
        no space, and the index has no room to record it, so a run dir moved whose row still
        says it is not deleted goes back where its row says it is (a rename needs no space),
        and the error says how to free space. A delete for good frees its space first."""
        if not permanent and diskspace.short(self.home):
            self.store.make_room()  # the move's index writes then fit in the WAL as it is
        try:
            return manage.delete_runs(self.store, self.home, recs, permanent)
        except Exception as e:
            if not diskspace.is_full(e):
                raise
            trash = manage.trash_runs_dir(self.home)
            for rec in recs:
                row = self.store.get(rec.id)
                moved, home_dir = trash / rec.id, self.runs_dir / rec.id
                if row is not None and not row.deleted and moved.is_dir() and not home_dir.exists():
                    os.replace(moved, home_dir)
            if permanent:
                raise diskspace.full_error(self.home, e, "cannot delete runs") from e
            raise diskspace.full_error(
                self.home, e, "cannot move runs to the trash (that frees no space; 'guildctl runs rm -p' deletes them for good)"
            ) from e

    async def restore_runs(self, recs: Sequence[storelib.RunRecord]) -> list[storelib.RunRecord]:
        return await self.runtime.io(self.changing_dirs, manage.restore_runs, self.store, self.home, recs)

    async def purge_runs(self, recs: Sequence[storelib.RunRecord]) -> Sequence[storelib.RunRecord]:
        return await self.runtime.io(self.changing_dirs, manage.purge_runs, self.store, self.home, recs)

    async def export_runs(self, recs: Sequence[storelib.RunRecord], dest: str, move: bool,
                          caller: "fsrights.Account | None" = None) -> list[tuple[str, str, str]]:
        """Copies (or moves) runs into `dest`, written with `caller`'s rights (manage.export_runs).
        A copy changes neither the index nor the runs dir: it is done on the work thread, so a
        big run's copy doesn't hold every read of the index (a `guildctl runs`) behind it."""
        if not move:
            return await self.runtime.work(manage.export_runs, self.store, self.home, recs, dest, move, caller)
        return await self.runtime.io(self.changing_dirs, manage.export_runs, self.store, self.home, recs, dest, move, caller)

    async def import_runs(self, archive: str, specs: Sequence[str], criteria: selection.Criteria, move: bool,
                          caller: "fsrights.Account | None" = None) -> list[tuple[str, str, str]]:
        """Copies (or moves) an archive's selected runs in, read with `caller`'s rights: the
        runs are then theirs (manage.import_runs)."""
        def do() -> list[tuple[str, str, str]]:
            archived = self.archive_store(archive, caller)
            recs, _ = archived.select(criteria, specs)
            dirs = [pathlib.Path(archive) / r.id for r in recs]
            return manage.import_runs(self.store, self.home, dirs, move, execlib.pid_alive, caller)

        return await self.runtime.io(self.changing_dirs, do)

    async def list_files(self, rec: storelib.RunRecord, path: str, all_files: bool, sourcecode: bool,
                         follow_links: bool) -> list[tuple[str, bool, bool, int]]:
        """A run's files, listed with the rights of its dir's owner: a link she put there
        (to /root, say) lists only what she could list herself."""
        run_dir = self.location(rec)
        return await self.runtime.io(fsrights.call_as_owner_of, run_dir, manage.list_files, run_dir, path, all_files,
                                     sourcecode, follow_links)

    async def read_file(self, rec: storelib.RunRecord, path: str, output: bool) -> AsyncIterator[bytes]:
        """Yields a run file's bytes in chunks. The file is found and opened, on worker
        threads, with the rights of the run dir's owner: a link she put there (to
        /etc/shadow) is refused as her own read would be."""
        run_dir = self.location(rec)
        if output:
            full = rundir.output_path(run_dir)
        else:
            full = await self.runtime.io(fsrights.call_as_owner_of, run_dir, manage.file_path, run_dir, path)
        loop = asyncio.get_running_loop()
        try:
            f = await loop.run_in_executor(None, fsrights.open_as_owner, run_dir, full)
        except OSError as e:
            raise fsrights.refusal(e, f"{'the output' if output else path} of run {rec.id[:8]}") from None
        with f:
            while data := await loop.run_in_executor(None, f.read, outputs.READ_CHUNK):
                yield data

    async def compare(self, criteria: selection.Criteria, specs: Sequence[str], extra: str, strict: bool, skip_core: bool,
                      skip_op: bool, order: "tuple[str, bool] | None", top: int) -> tuple[list[comparelib.Column], list[tuple[str, list]]]:
        """The compare table of the runs selected: its columns and a row per run."""

        def do() -> tuple[list[comparelib.Column], list[tuple[str, list]]]:
            self.sync_index()
            recs, _ = self.store.select(criteria, self._batch_trials(specs), top, order)
            scalars = {r.id: self.store.scalars(r.id) for r in recs}
            cols = comparelib.columns_for(recs, scalars, extra, strict, skip_core, skip_op, self._op_columns(recs))
            return cols, comparelib.rows(cols, recs, scalars)

        return await self.runtime.io(do)

    def _batch_trials(self, specs: Sequence[str]) -> list[str]:
        """Run specs with each batch run named replaced by its trials (comparing a batch
        compares its trials)."""
        out = []
        for spec in specs:
            try:
                rec = self.store.resolve(spec)
            except errors.GuildError:
                out.append(spec)  # left for select to report or match as it does
                continue
            trials = batchspec.trial_ids(homelib.run_dir(self.home, rec.id)) if "+" in rec.op_name else []
            out += trials or [spec]
        return out

    def _op_columns(self, recs: Iterable[storelib.RunRecord]) -> list[str]:
        """The `compare` columns of the runs' operations, read once per operation."""
        out, seen = [], set()
        for rec in recs:
            if rec.opref in seen or not rec.opref.startswith("guildfile:"):
                continue
            seen.add(rec.opref)
            run_dir = self.location(rec)
            op = fsrights.call_as_owner_of(run_dir, rundir.read_attr, run_dir, "op")
            for spec in (op.get("compare") or []) if isinstance(op, dict) else []:
                if spec not in out:
                    out.append(spec)
        return out

    async def disk_usage(self) -> list[tuple[str, str, int]]:
        return await self.runtime.work(manage.disk_usage, self.home)


def making_marker(run_dir: "str | os.PathLike") -> pathlib.Path:
    return rundir.guild_dir(run_dir) / MAKING


def begin_making(run_dir: "str | os.PathLike") -> None:
    """Makes a new run's dir holding only the marker that says it is being made: until it is
    removed (made()), the dir is no run (not listed, and removed by the next daemon's start)."""
    rundir.guild_dir(run_dir).mkdir(parents=True)
    making_marker(run_dir).touch(exist_ok=False)


def made(run_dir: "str | os.PathLike") -> None:
    """The run is whole: its marker goes (the last step of making it)."""
    making_marker(run_dir).unlink()


def being_made(run_dir: "str | os.PathLike") -> bool:
    return os.path.lexists(making_marker(run_dir))


def half_made(runs_dir: pathlib.Path, before_us: int) -> list[pathlib.Path]:
    """Run dirs in `runs_dir` that a daemon began to make before `before_us` and never
    finished: with the marker, written then. Guild AI never writes it: its runs are never
    among them."""
    out = []
    try:
        entries = list(os.scandir(runs_dir))
    except FileNotFoundError:
        return []
    for entry in entries:
        if not (manage.RUN_ID.match(entry.name) and entry.is_dir(follow_symlinks=False)):
            continue
        try:
            written_us = os.lstat(making_marker(entry.path)).st_mtime_ns // 1000
        except OSError:  # none (or no .guild dir to hold one)
            continue
        if written_us < before_us:
            out.append(pathlib.Path(entry.path))
    return sorted(out)


def remove_half_made(runs_dir: pathlib.Path, before_us: int) -> int:
    """At start-up, before the index's sync: removes the half-made run dirs (see half_made)
    a killed daemon left, one log line each; returns how many. One that can't be removed is
    logged and left (it is not listed: the sync skips it)."""
    removed = 0
    for run_dir in half_made(runs_dir, before_us):
        try:
            shutil.rmtree(run_dir)  # never follows a link out of the dir
        except OSError as e:
            log.warning("run %s: cannot remove its half-made dir: %s", run_dir.name[:8], e)
            continue
        log.warning("run %s: removed its half-made dir (the daemon making it was stopped before it was whole)",
                    run_dir.name[:8])
        removed += 1
    return removed


def _disk_record(run_dir: pathlib.Path, deleted: bool) -> storelib.RunRecord:
    """A run's record as its dir has it, with how much output it holds as its read position."""
    rec = storelib.record_from_rundir(run_dir, execlib.pid_alive, deleted=deleted)
    return dataclasses.replace(rec, scalar_offset=rundir.output_size(run_dir))


def stale_fields(indexed: storelib.RunRecord, on_disk: storelib.RunRecord) -> list[str]:
    """The fields where an index row is older than its run dir (`on_disk`). What a user set
    counts always; the run's facts and status once the dir says it has ended and the index
    does not hold it as going (a run going is the reconcile's and its follower's), and then
    also scalars read short of the output's end ('scalar_offset')."""
    fields = [f for f in ANNOTATIONS if _value(indexed, f) != _value(on_disk, f)]
    if on_disk.status not in runstate.ENDED or indexed.status in runstate.ACTIVE:
        return fields
    fields += [f for f in (*FACTS, "status") if _value(indexed, f) != _value(on_disk, f)]
    if indexed.scalar_offset < on_disk.scalar_offset:
        fields.append("scalar_offset")
    return fields


def _value(rec: storelib.RunRecord, field: str) -> Any:
    """A record's field, a JSON one as the value it holds (its keys in any order)."""
    value = getattr(rec, field)
    return json.loads(value) if field.endswith("_json") else value


def _user_name(uid: int, recorded: str) -> str:
    """The name of a run dir's owner: the account's (the uid is the fact), else the name the
    run recorded (a uid with no account left), else "uid N"."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return recorded or f"uid {uid}"
