"""Following a running run's output: waking watchers when it grows, and indexing its output
scalars (TF event files in the run's .guild dir, summaries in the index) and the scalars its
process writes itself as event files in its run dir (guildd.runevents).

The run's process writes `.guild/output` directly; scalars are parsed here, in the daemon,
from that file as it grows, so parsing and event writing stay off the run's own path.
"""

import asyncio
import collections
import logging
import os
import threading
from typing import Any, Callable

from guild_common import errors, rundir
from guild_common.paths import StrPath
from guild_common.scalars import ScalarParser
from guildd import diskspace, fsrights, manage, rayjobs, runevents, shim
from guildd import store as storelib
from guildd.runtime import Runtime
from guildd.store import Summary
from guildd.tfevents import EventWriter, summarize

log = logging.getLogger("guildd")

WATCHED_POLL = 0.02  # seconds between size checks while someone watches the run
SCALAR_POLL = 0.25  # seconds between scalar passes otherwise
LISTENED_POLL = 0.05  # ... while a listener waits for them (a pruning batch: a late decision costs trial time)
PROMPT_POLL = 0.005  # seconds between size checks, each growth read, while a prompt listener waits (speculation)
EVENTS_POLL = 1.0  # seconds between looks for the run's own event files (a walk of its run dir)
WALK_SHARE = 50  # ... or more: at least this many times the last walk's time (a big run dir's walk takes ms)
READ_CHUNK = 1 << 20


class ScalarReader:
    """Reads a run's output from an offset, turns complete lines into scalars, writes them as
    TF events, and returns summaries to fold into the index. Used on a worker thread only:
    its opens take the run dir owner's rights there (guildd.fsrights), so a link she puts in
    her run dir gets no read or write of root's."""

    def __init__(self, run_dir: StrPath, offset: int, scalar_config: Any = None) -> None:
        self.run_dir = run_dir
        self.offset = offset
        self.scalar_config = scalar_config
        # made at the first read, on the worker thread: it reads the run's flags
        self.parser: ScalarParser | None = None
        self.writer: EventWriter | None = None
        self.more = False  # the last read stopped at READ_CHUNK with output left
        self.in_long_line = False  # inside a line longer than READ_CHUNK: skipped to its end
        # events a full disk held back: written first at the next pass
        self.unwritten: list[tuple[str, float, int, float]] = []
        self.refused = False  # the run dir refused the event file (logged once)
        self.last_scalars: list[tuple[str, float, int]] = []  # (key, value, step) of the last read, for listeners

    def read(self) -> list[Summary] | None:
        """New scalar summaries since the last call, or None when nothing was added."""
        if self.unwritten:
            self._write_events([])
        path = rundir.output_path(self.run_dir)
        try:
            with fsrights.open_as_owner(self.run_dir, path) as f:
                f.seek(self.offset)
                data = f.read(READ_CHUNK)
                # Lines' time: when the output was last written (exact enough while the run
                # is followed; a catch-up after a daemon restart gets the file's last write).
                wall_time = os.fstat(f.fileno()).st_mtime
        except OSError:
            return None  # none yet, or one its owner may not read: no scalars from it
        self.more = len(data) == READ_CHUNK
        end = data.rfind(b"\n")
        if end < 0:
            if self.more:  # a line longer than a chunk holds no scalar: go past it, not round again
                self.offset += len(data)
                self.in_long_line = True
            return None
        data = data[: end + 1]
        self.offset += len(data)
        if self.in_long_line:  # the end of that long line
            data = data[data.find(b"\n") + 1:]
            self.in_long_line = False
        if self.parser is None:
            with fsrights.as_owner_of(self.run_dir):  # its flags: read as the owner reads them
                self.parser = _parser(self.run_dir, self.scalar_config)
        scalars = self.parser.feed_text(data.decode("utf-8", "replace"))
        self.last_scalars = [(s.key, s.value, s.step) for s in scalars]
        if not scalars:
            return []
        self._write_events([(s.key, s.value, s.step, wall_time) for s in scalars])
        return [manage.summary_record(tag, s) for tag, s in summarize((s.key, s.value, s.step) for s in scalars).items()]

    def _write_events(self, events: list[tuple[str, float, int, float]]) -> None:
        """Appends events to the run's event file, made and cut with the owner's rights (the
        file is hers). When the disk is full they wait for the next pass, the file cut back to
        its last whole record: none lost, none twice. A run dir its owner made unwritable
        (or a link she put there) refuses them: they are dropped, with a warning in the log."""
        self.unwritten += events
        try:
            with fsrights.as_owner_of(self.run_dir):
                if self.writer is None:
                    self.writer = EventWriter(str(rundir.guild_dir(self.run_dir)))
                whole = os.path.getsize(self.writer.path)
                try:
                    self.writer.add_scalars(self.unwritten)
                    self.writer.flush()
                except OSError:
                    writer, self.writer = self.writer, None
                    _close_quietly(writer)
                    os.truncate(writer.path, whole)  # cutting a file needs no space
                    raise
        except OSError as e:
            if diskspace.is_full(e):
                log.warning("run %s: %s: its scalar events wait for room", os.path.basename(self.run_dir)[:8], e)
                return
            if not self.refused:
                log.warning("run %s: %s: its run dir refuses its scalar events", os.path.basename(self.run_dir)[:8], e)
            self.refused = True
        self.unwritten = []

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def catch_up(store: storelib.Store, run_dir: StrPath, run_id: str, offset: int) -> None:
    """An ended run whose output the index read only to `offset` (its daemon was killed
    between recording its end and indexing the rest, which its follower does last): the rest
    of its output and of its own event files read now, from where the index holds them, as
    that follower would have, and merged (the I/O thread, at an unclean start)."""
    op = fsrights.call_as_owner_of(run_dir, rundir.read_attr, run_dir, "op")
    reader = ScalarReader(run_dir, offset, op.get("output-scalars") if isinstance(op, dict) else None)
    try:
        while (summaries := reader.read()) is not None:
            store.merge_scalars(run_id, summaries, reader.offset)
            if not reader.more:
                break
    finally:
        reader.close()
    events = runevents.RunEvents(run_dir, store.event_offsets(run_id), [s.tag for s in store.scalars(run_id)])
    while True:
        scalars, offsets = fsrights.call_as_owner_of(run_dir, events.read)
        if offsets:
            store.merge_scalars(run_id, [manage.summary_record(tag, s) for tag, s in summarize(scalars).items()], None, offsets)
        if not events.more:
            return


_append_lock = threading.Lock()


def append(run_dir: "str | os.PathLike", data: bytes, stderr: bool = False) -> None:
    """Appends bytes of guildd's own to a run's output that no process of the run writes (a
    batch's or a pipeline's, a run's before its process starts): `INFO: [guild] ...` lines
    are stderr, as Guild logs them. A stderr range is noted before its bytes, at the size
    the output has under the lock every such append takes, so no reader sees the bytes
    without it (the shim, which shares the file with its process, notes them after). Both
    files are opened with the owner's rights, on the calling thread (guildd.fsrights)."""
    with _append_lock:
        with fsrights.open_as_owner(run_dir, rundir.output_path(run_dir), "ab") as f:
            if stderr:
                start = f.seek(0, os.SEEK_END)
                with fsrights.open_as_owner(run_dir, os.path.join(run_dir, shim.STDERR_RANGES), "ab") as ranges:
                    ranges.write(f"{start} {start + len(data)}\n".encode())
            f.write(data)


class Streams:
    """Splits a run's output into what its process wrote to stdout and to stderr, from the
    byte ranges its shim notes (guildd.shim). Read forward only, as watchers read output;
    used on a worker thread, which opens the ranges with the run dir owner's rights."""

    def __init__(self, run_dir: StrPath) -> None:
        self.run_dir = run_dir
        self.path = os.path.join(run_dir, shim.STDERR_RANGES)
        self.read_to = 0  # bytes of the ranges file read
        self.ranges: collections.deque[tuple[int, int]] = collections.deque()  # (start, end) of stderr bytes, ascending

    def split(self, offset: int, data: bytes) -> list[tuple[bool, bytes]]:
        """(is stderr, bytes) parts of `data`, which starts at `offset` of the output."""
        self._read_ranges()
        end = offset + len(data)
        while self.ranges and self.ranges[0][1] <= offset:
            self.ranges.popleft()
        parts: list[tuple[bool, bytes]] = []
        pos = offset
        for start, stop in self.ranges:
            if start >= end:
                break
            if start > pos:
                parts.append((False, data[pos - offset : start - offset]))
            pos = max(pos, start)
            parts.append((True, data[pos - offset : min(stop, end) - offset]))
            pos = min(stop, end)
        if pos < end:
            parts.append((False, data[pos - offset :]))
        return parts

    def _read_ranges(self) -> None:
        try:
            with fsrights.open_as_owner(self.run_dir, self.path) as f:
                f.seek(self.read_to)
                text = f.read()
        except OSError:
            return  # no stderr yet, a run made before (or without) the shim's ranges, or its owner's link
        text = text[: text.rfind(b"\n") + 1]  # whole lines only: the shim may be mid-line
        self.read_to += len(text)
        for line in text.splitlines():
            start, _, stop = line.partition(b" ")
            try:
                self.ranges.append((int(start), int(stop)))
            except ValueError:
                continue  # a damaged line: its bytes go out as stdout


def _close_quietly(writer: EventWriter) -> None:
    try:
        writer.close()  # flushes what it buffered again: on a full disk that fails too
    except OSError:
        pass


def _parser(run_dir: StrPath, scalar_config: Any) -> ScalarParser:
    """The run's scalar parser. A config that doesn't compile (refused when runs are made,
    so one edited by hand or made by an older guildd) captures nothing: the run is still
    followed and its end recorded."""
    flags = rundir.read_attr(run_dir, "flags")
    try:
        return ScalarParser.for_config(scalar_config, flags if isinstance(flags, dict) else ())
    except errors.InvalidArgument as e:
        log.warning("run %s: %s: its output scalars are not captured", os.path.basename(run_dir)[:8], e)
        return ScalarParser.for_config(False)  # capture off


class Follower:
    """One running run's output: notices growth, wakes watchers, and drives scalar indexing.
    For a Ray run still pending, it also notices when its job starts (see _look_at_job)."""

    def __init__(self, runtime: Runtime, run_id: str, run_dir: "str | os.PathLike", offset: int,
                 wake: Callable[[str], None], store: storelib.Store, scalar_config: Any = None,
                 on_scalars: Callable[[list[tuple[str, float, int]]], None] | None = None) -> None:
        self.runtime = runtime
        # a pending Ray run's: called once, on the loop, when its job is seen running
        self.on_job_started: Callable[[], None] | None = None
        self._job_attr = rundir.attrs_dir(run_dir) / "ray_status"
        self._job_seen: tuple[int, int, int] | None = None  # the attr's (inode, mtime, size) when last read
        self.on_scalars = on_scalars  # hears each pass's new (key, value, step) scalars, on the loop
        self.run_id = run_id
        self.wake = wake
        self.store = store  # used on the I/O thread only
        self.run_dir = run_dir
        self.reader = ScalarReader(run_dir, offset, scalar_config)
        # the run's own event files: made at the first pass, from how far the index has them
        self.events: runevents.RunEvents | None = None
        self.watchers = 0
        self.listened = False  # someone hears its scalars as they come (guildd.watching.Followers.listen)
        self.prompt = False  # ... and must hear each line at once
        self._stop = asyncio.Event()
        self._nudge = asyncio.Event()
        self._size = -1
        # (summaries, output offset, event file offsets) a full disk kept out of the index
        self._unmerged: list[tuple[list[Summary], int | None, dict[str, int] | None]] = []
        self.task: "asyncio.Task | None" = None
        self._failures: set[str] = set()  # why passes failed, each logged once

    def start(self) -> None:
        self.task = asyncio.create_task(self._loop(), name=f"follow-{self.run_id[:8]}")

    def add_watcher(self) -> None:
        self.watchers += 1
        self._nudge.set()  # switch to the watched poll interval now, not after a slow tick

    def remove_watcher(self) -> None:
        self.watchers -= 1

    async def _loop(self) -> None:
        path = rundir.output_path(self.run_dir)
        since_scalars = 0.0
        since_events = EVENTS_POLL  # a first look at once: a run adopted after a restart may have written some
        while not self._stop.is_set():
            interval = PROMPT_POLL if self.prompt else WATCHED_POLL if self.watchers or self.listened else SCALAR_POLL
            try:
                size = os.stat(path).st_size
            except FileNotFoundError:
                size = 0
            if size != self._size:
                self._size = size
                self.wake(self.run_id)
            if self.on_job_started is not None:
                await self._look_at_job()
            since_scalars += interval
            since_events += interval
            behind = False
            try:
                if since_events >= self._events_every() or (self.events is not None and self.events.more):
                    since_events = 0.0
                    await self.index_events()
                    behind = self.events is not None and self.events.more
                read_every = 0.0 if self.prompt else LISTENED_POLL if self.listened else SCALAR_POLL
                if (since_scalars >= read_every or self.reader.more) and self.reader.offset < size:
                    since_scalars = 0.0
                    await self.index_scalars()
                    behind = behind or self.reader.more
            except Exception as e:  # noqa: BLE001 - the run goes on, followed: tried again at the next pass
                self._failed(e)
                behind = False
            if behind:
                continue  # keep reading without waiting
            self._nudge.clear()
            try:
                await asyncio.wait_for(_first(self._stop, self._nudge), interval)
            except asyncio.TimeoutError:
                pass

    def _failed(self, e: Exception) -> None:
        """A pass that failed is logged (each reason once) and tried again at the next one."""
        reason = f"{type(e).__name__}: {e}"
        if reason not in self._failures:
            self._failures.add(reason)
            log.error("run %s: its output could not be indexed (%s): tried again", self.run_id[:8], reason, exc_info=e)

    async def _look_at_job(self) -> None:
        """A pending Ray run: reads its job's state (the `ray_status` attr its follower keeps,
        with its owner's rights) when the attr changed, and once the job runs, says so."""
        try:
            st = os.stat(self._job_attr)
        except OSError:
            return
        if (st.st_ino, st.st_mtime_ns, st.st_size) == self._job_seen:
            return
        self._job_seen = (st.st_ino, st.st_mtime_ns, st.st_size)
        status = await self.runtime.work(fsrights.call_as_owner_of, self.run_dir, rundir.read_attr, self.run_dir, "ray_status")
        if rayjobs.job_started(status) and self.on_job_started is not None:
            started, self.on_job_started = self.on_job_started, None
            started()

    async def index_scalars(self) -> None:
        """Indexes the scalars of the output written since the last pass. A full disk holds
        them back, in order, until a later pass finds room; it never stops the follower."""
        summaries = await self.runtime.work(self.reader.read)
        if summaries is not None:
            self._unmerged.append((summaries, self.reader.offset, None))
            if summaries and self.on_scalars is not None:
                self.on_scalars(self.reader.last_scalars)
        await self._merge()

    async def index_events(self) -> None:
        """Indexes the scalars the run's process wrote to its own event files since the last
        pass, read with the run dir owner's rights. A full disk holds them back as
        index_scalars does."""
        if self.events is None:
            offsets, keys = await self.runtime.io(self._indexed_events)
            self.events = runevents.RunEvents(self.run_dir, offsets, keys)
        scalars, offsets = await self.runtime.work(fsrights.call_as_owner_of, self.run_dir, self.events.read)
        if offsets:
            summaries = [manage.summary_record(tag, s) for tag, s in summarize(scalars).items()]
            self._unmerged.append((summaries, None, offsets))
            if scalars and self.on_scalars is not None:
                self.on_scalars(scalars)
        await self._merge()

    def _events_every(self) -> float:
        """Seconds between looks at the run's own event files."""
        return EVENTS_POLL if self.events is None else max(EVENTS_POLL, WALK_SHARE * self.events.walk_seconds)

    def _indexed_events(self) -> tuple[dict[str, int], list[str]]:
        """How far the index has read the run's event files, and the keys it holds (I/O thread)."""
        return self.store.event_offsets(self.run_id), [s.tag for s in self.store.scalars(self.run_id)]

    async def _merge(self) -> None:
        """Folds what was read into the index, in order; on a full disk the rest waits."""
        while self._unmerged:
            summaries, offset, event_offsets = self._unmerged[0]
            try:
                await self.runtime.io(self.store.merge_scalars, self.run_id, summaries, offset, event_offsets)
            except Exception as e:
                if not diskspace.is_full(e):
                    raise
                log.warning("run %s: %s: its scalars wait for room in the index", self.run_id[:8], e)
                return
            self._unmerged.pop(0)

    def stop(self) -> None:
        self._stop.set()

    @property
    def finishing(self) -> bool:
        """The run has ended and the rest of its output is being indexed."""
        return self._stop.is_set()

    async def finish(self) -> None:
        """The run ended: stop following, index the rest of its output, close its events."""
        self._stop.set()
        if self.task:
            await self.task
        while self._unread() or self._unmerged or self.reader.unwritten:  # one more try for those
            before = self.reader.offset
            await self.index_scalars()
            if self.reader.offset == before:
                break
        await self.index_events()  # what the run wrote since the last look
        while self.events is not None and self.events.more:
            await self.index_events()
        if self._unmerged or self.reader.unwritten:
            log.warning("run %s: the disk is full: scalars of its last output are not indexed", self.run_id[:8])
        if self.reader.writer is not None:
            await self.runtime.work(self.reader.close)

    def _unread(self) -> bool:
        try:
            return os.stat(rundir.output_path(self.run_dir)).st_size > self.reader.offset
        except FileNotFoundError:
            return False


async def _first(*events: asyncio.Event) -> None:
    """Waits until any of `events` is set."""
    waits = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


def append_line(run_dir: "str | os.PathLike", line: str, stderr: bool = True) -> None:
    """Appends one line of guildd's own to a run's output (see append): stderr by default, as
    Guild logs its `INFO: [guild] ...` and `Resolving ...` lines."""
    append(run_dir, (line + "\n").encode(), stderr=stderr)
