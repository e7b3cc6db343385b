"""The daemon's index over run directories: SQLite (WAL), a cache that can always be rebuilt
from the run dirs (ARCHITECTURE.md, contract 1).

Every method is synchronous and runs on the daemon's one I/O thread (see guildd.io), so a
single connection serves all of them.
"""

import builtins
import contextlib
import dataclasses
import json
import logging
import math
import os
import sqlite3
import struct
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from guild_common import errors, rundir
from guildd import selection

log = logging.getLogger("guildd")

SCHEMA_VERSION = 5  # 4: event_files (runs indexed before lack their own event files' scalars); 5: comments_json

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    op_name TEXT NOT NULL,
    opref TEXT NOT NULL,
    status TEXT NOT NULL,
    label TEXT NOT NULL DEFAULT '',
    created_us INTEGER NOT NULL,
    started_us INTEGER NOT NULL DEFAULT 0,
    stopped_us INTEGER NOT NULL DEFAULT 0,
    exit_status INTEGER,
    pid INTEGER NOT NULL DEFAULT 0,
    shim_pid INTEGER NOT NULL DEFAULT 0,
    shim_started REAL NOT NULL DEFAULT 0,
    flags_json TEXT NOT NULL DEFAULT '{}',
    tags_json TEXT NOT NULL DEFAULT '[]',
    user TEXT NOT NULL DEFAULT '',
    scalar_offset INTEGER NOT NULL DEFAULT 0,
    marked INTEGER NOT NULL DEFAULT 0,
    deleted INTEGER NOT NULL DEFAULT 0,
    digest TEXT NOT NULL DEFAULT '',
    comments_json TEXT NOT NULL DEFAULT '[]',
    -- Latest first, as Guild lists runs: by start time, a run not started yet by its creation.
    sort_us INTEGER GENERATED ALWAYS AS (CASE WHEN started_us > 0 THEN started_us ELSE created_us END) VIRTUAL,
    -- a batch run (Guild names its op `train+`, `train+skopt:gp`): compare leaves these out
    batch INTEGER GENERATED ALWAYS AS (instr(op_name, '+') > 0) VIRTUAL
);
CREATE INDEX IF NOT EXISTS runs_by_time ON runs (deleted, sort_us DESC, id);
CREATE INDEX IF NOT EXISTS runs_by_time_no_batch ON runs (deleted, batch, sort_us DESC, id);
CREATE INDEX IF NOT EXISTS runs_by_status ON runs (status);
CREATE TABLE IF NOT EXISTS scalars (
    run_id TEXT NOT NULL,
    tag TEXT NOT NULL,
    first_val REAL, first_step INTEGER,
    last_val REAL, last_step INTEGER,
    min_val REAL, min_step INTEGER,
    max_val REAL, max_step INTEGER,
    total REAL, count INTEGER,
    PRIMARY KEY (run_id, tag)
);
-- ordering runs by a scalar's last value reads only this index
CREATE INDEX IF NOT EXISTS scalars_by_last ON scalars (tag, last_val, run_id);
-- how far the index has read each event file a run's process wrote (guildd.runevents)
CREATE TABLE IF NOT EXISTS event_files (
    run_id TEXT NOT NULL,
    path TEXT NOT NULL,  -- relative to the run dir
    read_to INTEGER NOT NULL,  -- bytes of whole records indexed
    PRIMARY KEY (run_id, path)
);
-- `clean`: 1 when the daemon that last used the index closed it (see Store.clean_start)
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclasses.dataclass(frozen=True)
class RunRecord:
    """A run's index row. The defaults are a run with nothing recorded yet."""

    id: str
    op_name: str = ""
    opref: str = ""
    status: str = ""
    label: str = ""
    created_us: int = 0
    started_us: int = 0
    stopped_us: int = 0
    exit_status: int | None = None
    pid: int = 0
    shim_pid: int = 0
    shim_started: float = 0.0
    flags_json: str = "{}"
    tags_json: str = "[]"
    user: str = ""
    scalar_offset: int = 0
    marked: bool = False
    deleted: bool = False
    digest: str = ""
    comments_json: str = "[]"

    @property
    def flags(self) -> dict[str, Any]:
        return json.loads(self.flags_json)

    @property
    def tags(self) -> list[Any]:
        return json.loads(self.tags_json)


FIELDS = [f.name for f in dataclasses.fields(RunRecord)]


@dataclasses.dataclass(frozen=True)
class Summary:
    tag: str
    first_val: float
    first_step: int
    last_val: float
    last_step: int
    min_val: float
    min_step: int
    max_val: float
    max_step: int
    total: float
    count: int


class Store:
    """The index. `clean_start` says whether the daemon that used it last closed it: when
    not (killed, or its WAL lost or cut short), rows may be older than their run dirs, and
    the catalog checks them against the dirs once (Catalog.sync_index)."""

    def __init__(self, path: "str | os.PathLike[str]", runs_dir: "str | os.PathLike[str]") -> None:
        self.path = str(path)
        self.runs_dir = runs_dir
        self.db = self._open()
        self.clean_start = self._begin_use()

    def _open(self) -> sqlite3.Connection:
        db = None
        try:
            db = self._connect()
            problem = db.execute("PRAGMA quick_check").fetchone()[0]
            if problem != "ok":
                raise sqlite3.DatabaseError(problem)
            return db
        except sqlite3.OperationalError:
            raise  # not a damaged file (locked, no room, no rights): the daemon says why
        except sqlite3.DatabaseError as e:
            if db is not None:
                db.close()
            # A damaged index is only a cache: kept aside for a look, a new one rebuilt
            # from the run dirs.
            aside = self._keep_aside()
            log.warning("index %s is damaged (%s): %s; rebuilding it from the run dirs", self.path, e,
                        f"kept aside as {aside}" if aside else "removed")
            return self._connect()

    def _keep_aside(self) -> str:
        """Moves a damaged index (and its WAL) out of the way, as `<index>.damaged-<time>`
        (only the latest is kept); the path, or '' when there was no file to keep."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        aside = f"{self.path}.damaged-{stamp}"
        for old in _damaged_copies(self.path):
            with contextlib.suppress(OSError):
                os.unlink(old)
        kept = ""
        for suffix in ("", "-wal"):
            with contextlib.suppress(FileNotFoundError):
                if os.path.getsize(self.path + suffix):
                    os.replace(self.path + suffix, aside + suffix)
                    kept = kept or aside
                else:
                    os.unlink(self.path + suffix)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path + "-shm")  # only an index of the WAL: SQLite rebuilds it
        return kept

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, SCHEMA_VERSION):
            # An index of another layout: dropped; the daemon rebuilds it from the run dirs.
            log.warning("index %s has layout %d, not %d: rebuilding it from the run dirs", self.path, version,
                        SCHEMA_VERSION)
            db.executescript("DROP TABLE IF EXISTS runs; DROP TABLE IF EXISTS scalars; DROP TABLE IF EXISTS event_files;"
                             " DROP TABLE IF EXISTS meta;")
        db.executescript(SCHEMA)
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        return db

    def _begin_use(self) -> bool:
        """Marks the index in use, in the database file itself (not only in the WAL, which may
        be lost with what it holds); True when the last daemon closed it, or it is new."""
        row = self.db.execute("SELECT value FROM meta WHERE key = 'clean'").fetchone()
        has_runs = self.db.execute("SELECT 1 FROM runs LIMIT 1").fetchone() is not None
        try:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('clean', 0)")
            self.db.execute("PRAGMA wal_checkpoint(FULL)")  # the WAL keeps its size: a full disk can still write
        except sqlite3.OperationalError as e:  # a full disk: the rows are checked this time
            log.warning("index %s: cannot mark it in use (%s)", self.path, e)
            return False
        return (row is not None and row[0] == 1) or not has_runs

    def make_room(self) -> None:
        """For writes on a full disk: the WAL's pages copied into the index file, so that the
        next writes reuse the WAL from its start (its file keeps its size) instead of growing it."""
        with contextlib.suppress(sqlite3.OperationalError):
            self.db.execute("PRAGMA wal_checkpoint(RESTART)")

    def close(self) -> None:
        """Closes the index, marked clean: the next daemon can trust its rows."""
        with contextlib.suppress(sqlite3.Error):  # a full disk: the next start checks the rows
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('clean', 1)")
        self.db.close()

    @property
    def changes(self) -> int:
        """Rows this index has written since it was opened: changes whenever anything does."""
        return self.db.total_changes

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """One transaction around the block; nested blocks join the outer one."""
        if self.db.in_transaction:
            yield
            return
        self.db.execute("BEGIN")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def insert(self, record: RunRecord) -> None:
        cols = ", ".join(FIELDS)
        marks = ", ".join("?" for _ in FIELDS)
        self.db.execute(
            f"INSERT OR REPLACE INTO runs ({cols}) VALUES ({marks})",
            [getattr(record, f) for f in FIELDS],
        )

    def update(self, run_id: str, **fields: Any) -> None:
        sets = ", ".join(f"{name} = ?" for name in fields)
        self.db.execute(f"UPDATE runs SET {sets} WHERE id = ?", [*fields.values(), run_id])

    def get(self, run_id: str) -> RunRecord | None:
        row = self.db.execute(f"SELECT {', '.join(FIELDS)} FROM runs WHERE id = ?", (run_id,)).fetchone()
        return RunRecord(*row) if row else None

    def delete(self, run_id: str) -> None:
        self.db.execute("DELETE FROM runs WHERE id = ?", (run_id,))
        self.db.execute("DELETE FROM scalars WHERE run_id = ?", (run_id,))
        self.db.execute("DELETE FROM event_files WHERE run_id = ?", (run_id,))

    def get_many(self, run_ids: Iterable[str]) -> list[RunRecord]:
        """Records for `run_ids`, in that order (missing ids left out)."""
        found: dict[str, RunRecord] = {}
        ids = list(run_ids)
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ", ".join("?" for _ in chunk)
            for row in self.db.execute(f"SELECT {', '.join(FIELDS)} FROM runs WHERE id IN ({marks})", chunk):
                found[row[0]] = RunRecord(*row)
        return [found[i] for i in ids if i in found]

    def select(self, criteria: selection.Criteria, specs: Sequence[str] = (), limit: int = 0,
               order: tuple[str, bool] | None = None, offset: int = 0) -> tuple[list[RunRecord], int]:
        """The runs `criteria` keeps, narrowed by run specs, latest first (or by `order`),
        the first `offset` skipped (a page), at most `limit`; and how many there were before
        the offset and the limit."""
        ids = selection.ordered_ids(self.db, criteria, order, want=0 if specs or not limit else offset + limit)
        chosen = selection.apply_specs(ids, specs)
        total = len(chosen) if specs or not limit else selection.count(self.db, criteria)
        page = chosen[offset : offset + limit] if limit else chosen[offset:]
        return self.get_many(page), total

    def list(self, statuses: Iterable[str] = (), limit: int = 0) -> tuple[list[RunRecord], int]:
        return self.select(selection.Criteria(statuses=tuple(statuses)), limit=limit)

    def resolve(self, spec: str, statuses: Iterable[str] = (),
                criteria: selection.Criteria | None = None) -> RunRecord:
        """One run from an index (1 = latest), id or unique id prefix; '' is the latest."""
        criteria = criteria or selection.Criteria(statuses=tuple(statuses))
        ids = selection.ordered_ids(self.db, criteria)
        if not spec and not ids:
            what = f" that are {'/'.join(criteria.statuses)}" if criteria.statuses else ""
            raise errors.NotFound(f"there are no runs{what}")
        return self.get_many([selection.one_id(ids, spec or "1")])[0]

    def ids(self, deleted: bool = False) -> set[str]:
        return {row[0] for row in self.db.execute("SELECT id FROM runs WHERE deleted = ?", (int(deleted),))}

    def scalars(self, run_id: str) -> builtins.list[Summary]:  # `list` here is Store.list
        rows = self.db.execute(
            "SELECT tag, first_val, first_step, last_val, last_step, min_val, min_step,"
            " max_val, max_step, total, count FROM scalars WHERE run_id = ? ORDER BY tag",
            (run_id,),
        )
        return [Summary(*row) for row in rows]

    def scalars_of(self, run_ids: Iterable[str]) -> dict[str, builtins.list[Summary]]:
        """Each run's scalar summaries (runs without any left out), in batches of ids."""
        out: dict[str, builtins.list[Summary]] = {}
        ids = builtins.list(run_ids)
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ", ".join("?" for _ in chunk)
            rows = self.db.execute(
                "SELECT run_id, tag, first_val, first_step, last_val, last_step, min_val, min_step,"
                f" max_val, max_step, total, count FROM scalars WHERE run_id IN ({marks}) ORDER BY run_id, tag",
                chunk,
            )
            for row in rows:
                out.setdefault(row[0], []).append(Summary(*row[1:]))
        return out

    def event_offsets(self, run_id: str) -> dict[str, int]:
        """How far the index has read each event file of a run's own (path in the run dir -> bytes)."""
        rows = self.db.execute("SELECT path, read_to FROM event_files WHERE run_id = ?", (run_id,))
        return dict(rows.fetchall())

    def merge_scalars(self, run_id: str, summaries: Iterable[Summary], offset: int | None = None,
                      event_offsets: Mapping[str, int] | None = None) -> None:
        """Folds new per-tag summaries (of values logged after those already indexed) into
        the run's, and records how far the output (`offset`) and the run's event files
        (`event_offsets`) have been read, in one transaction: a daemon killed at any point
        goes on from what the index holds, nothing counted twice."""
        old = {s.tag: s for s in self.scalars(run_id)}
        with self.transaction():
            for path, read_to in (event_offsets or {}).items():
                self.db.execute("INSERT OR REPLACE INTO event_files VALUES (?, ?, ?)", (run_id, path, read_to))
            for new in summaries:
                merged = _merge(old.get(new.tag), as_indexed(new))
                self.db.execute(
                    "INSERT OR REPLACE INTO scalars VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (run_id, *dataclasses.astuple(merged)),
                )
            if offset is not None:
                self.db.execute("UPDATE runs SET scalar_offset = ? WHERE id = ?", (offset, run_id))

    def replace_scalars(self, run_id: str, summaries: Iterable[Summary],
                        event_offsets: Mapping[str, int] | None = None) -> None:
        with self.transaction():
            self.db.execute("DELETE FROM scalars WHERE run_id = ?", (run_id,))
            self.db.execute("DELETE FROM event_files WHERE run_id = ?", (run_id,))
            self.merge_scalars(run_id, summaries, event_offsets=event_offsets)


def as_indexed(summary: Summary) -> Summary:
    """A summary with its values as event files hold them (32-bit floats, written the
    shortest way that reads back the same): the index then holds the same numbers whether
    it followed the output live or was rebuilt from the run dir's event files."""
    return dataclasses.replace(summary, first_val=float32(summary.first_val), last_val=float32(summary.last_val),
                               min_val=float32(summary.min_val), max_val=float32(summary.max_val),
                               total=float32(summary.total))


def float32(value: float) -> float:
    """`value` rounded to a 32-bit float, as the shortest decimal that reads back as it
    (0.2, not 0.20000000298023224); beyond a 32-bit float's range, an infinity."""
    if math.isnan(value) or math.isinf(value):
        return value
    try:
        packed = struct.pack("<f", value)
    except OverflowError:
        return math.copysign(math.inf, value)
    exact = struct.unpack("<f", packed)[0]  # the decimal is found from this, however `value` came
    for digits in range(1, 10):  # 9 significant digits always read back exactly
        short = float(f"{exact:.{digits}g}")
        if struct.pack("<f", short) == packed:
            return short
    return float(exact)


def _damaged_copies(path: str) -> list[str]:
    """The damaged indexes kept aside before (see Store._keep_aside)."""
    folder, name = os.path.split(path)
    try:
        return [os.path.join(folder, n) for n in os.listdir(folder or ".") if n.startswith(f"{name}.damaged-")]
    except OSError:
        return []


def _merge(old: Summary | None, new: Summary) -> Summary:
    if old is None:
        return new
    lo = old if old.min_val <= new.min_val else new
    hi = old if old.max_val >= new.max_val else new
    return Summary(
        tag=new.tag,
        first_val=old.first_val,
        first_step=old.first_step,
        last_val=new.last_val,
        last_step=new.last_step,
        min_val=lo.min_val,
        min_step=lo.min_step,
        max_val=hi.max_val,
        max_step=hi.max_step,
        total=old.total + new.total,
        count=old.count + new.count,
    )


# The attributes an index record holds (a run dir has more: env, cmd, op, ...).
INDEXED_ATTRS = ("exit_status", "initialized", "started", "stopped", "label", "flags", "tags", "user", "marked",
                 "sourcecode_digest", "comments")


def record_from_rundir(run_dir: "str | os.PathLike[str]", pid_alive: Callable[[int], bool],
                       deleted: bool = False) -> RunRecord:
    """An index record rebuilt from a run directory (Guild AI's or ours)."""
    run_dir = str(run_dir)
    attrs = {name: rundir.read_attr(run_dir, name) for name in INDEXED_ATTRS}
    opref = rundir.read_opref(run_dir)
    status = rundir.read_status(run_dir, pid_alive)
    exit_status = attrs.get("exit_status")
    initialized = attrs.get("initialized") or 0
    tags = attrs.get("tags") or []
    return RunRecord(
        id=os.path.basename(run_dir),
        op_name=rundir.op_name_for_opref(opref),
        opref=opref,
        status=status,
        label=str(attrs.get("label") or ""),
        created_us=int(initialized),
        started_us=int(attrs.get("started") or 0),
        stopped_us=int(attrs.get("stopped") or 0),
        exit_status=exit_status if isinstance(exit_status, int) else None,
        pid=(rundir.read_lock_pid(run_dir) or 0) if status == "running" else 0,
        flags_json=json.dumps(attrs.get("flags") or {}, default=str),
        tags_json=json.dumps(tags if isinstance(tags, list) else [], default=str),
        user=str(attrs.get("user") or ""),
        marked=attrs.get("marked") is True,
        deleted=deleted,
        digest=str(attrs.get("sourcecode_digest") or ""),
        comments_json=json.dumps(_comments(attrs.get("comments")), default=str),
    )


def _comments(value: Any) -> list[dict[str, Any]]:
    """The `comments` attr's comments (Guild's {body, host, time, user}; anything else left out)."""
    return [c for c in value if isinstance(c, dict)] if isinstance(value, list) else []
