"""Following a running run's output: waking watchers when it grows, and indexing its output
scalars (TF event files in the run's .guild dir, summaries in the index).

Scalars are parsed here, in the daemon, from `.guild/output` as the shim writes it: parsing and
event writing stay off the run's own path. Each line's time comes from `output.index`.
"""

import asyncio
import os
import time

from guild_common import rundir
from guild_common.scalars import ScalarParser
from guildd import store as storelib
from guildd.tfevents import EventWriter, summarize

WATCHED_POLL = 0.02  # seconds between size checks while someone watches the run
SCALAR_POLL = 0.25  # seconds between scalar passes otherwise
READ_CHUNK = 1 << 20


class ScalarReader:
    """Reads a run's output from an offset, turns complete lines into scalars, writes them as
    TF events, and returns summaries to fold into the index. Used on a worker thread only."""

    def __init__(self, run_dir, offset):
        self.run_dir = run_dir
        self.offset = offset
        self.line_no = _count_lines(rundir.output_path(run_dir), offset)
        self.parser = ScalarParser.for_config(None)
        self.writer = None

    def read(self):
        """New scalar summaries since the last call, or None when nothing was added."""
        try:
            with open(rundir.output_path(self.run_dir), "rb") as f:
                f.seek(self.offset)
                data = f.read(READ_CHUNK * 16)
        except FileNotFoundError:
            return None
        end = data.rfind(b"\n")
        if end < 0:
            return None
        data = data[: end + 1]
        lines = data.decode("utf-8", "replace").split("\n")[:-1]
        times = _line_times(rundir.output_index_path(self.run_dir), self.line_no, len(lines))
        events = []
        for line, wall_time in zip(lines, times):
            for s in self.parser.feed(line):
                events.append((s.key, s.value, s.step, wall_time))
        self.offset += len(data)
        self.line_no += len(lines)
        if events:
            if self.writer is None:
                self.writer = EventWriter(str(rundir.guild_dir(self.run_dir)))
            self.writer.add_scalars(events)
            self.writer.flush()
        return [_summary(tag, s) for tag, s in summarize((e[0], e[1], e[2]) for e in events).items()]

    def close(self):
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _summary(tag, s):
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


def _count_lines(path, offset):
    count, pos = 0, 0
    try:
        with open(path, "rb") as f:
            while pos < offset:
                chunk = f.read(min(READ_CHUNK, offset - pos))
                if not chunk:
                    break
                count += chunk.count(b"\n")
                pos += len(chunk)
    except FileNotFoundError:
        pass
    return count


def _line_times(index_path, first_line, n):
    """Seconds since the epoch for lines first_line.., from output.index; lines the index
    doesn't cover yet take the time of the last one known (or now)."""
    size = rundir.INDEX_RECORD.size
    try:
        with open(index_path, "rb") as f:
            f.seek(first_line * size)
            raw = f.read(n * size)
    except FileNotFoundError:
        raw = b""
    times = [ms / 1000.0 for ms, _stream in rundir.INDEX_RECORD.iter_unpack(raw[: len(raw) - len(raw) % size])]
    fill = times[-1] if times else time.time()
    return times + [fill] * (n - len(times))


class Follower:
    """One running run's output: notices growth, wakes watchers, and drives scalar indexing."""

    def __init__(self, daemon, run_id, run_dir, offset):
        self.daemon = daemon
        self.run_id = run_id
        self.run_dir = run_dir
        self.reader = ScalarReader(run_dir, offset)
        self.watchers = 0
        self._stop = asyncio.Event()
        self._size = -1
        self.task = None

    def start(self):
        self.task = asyncio.create_task(self._loop(), name=f"follow-{self.run_id[:8]}")

    async def _loop(self):
        path = rundir.output_path(self.run_dir)
        since_scalars = 0.0
        while not self._stop.is_set():
            interval = WATCHED_POLL if self.watchers else SCALAR_POLL
            try:
                size = os.stat(path).st_size
            except FileNotFoundError:
                size = 0
            if size != self._size:
                self._size = size
                self.daemon.wake(self.run_id)
            since_scalars += interval
            if since_scalars >= SCALAR_POLL and self.reader.offset < size:
                since_scalars = 0.0
                await self.index_scalars()
            try:
                await asyncio.wait_for(self._stop.wait(), interval)
            except asyncio.TimeoutError:
                pass

    async def index_scalars(self):
        summaries = await self.daemon.work(self.reader.read)
        if summaries is not None:
            await self.daemon.io(self.daemon.store.merge_scalars, self.run_id, summaries, self.reader.offset)

    def stop(self):
        self._stop.set()

    async def finish(self):
        """The run ended: read the rest of its output, then stop following."""
        self._stop.set()
        if self.task:
            await self.task
        while True:
            before = self.reader.offset
            await self.index_scalars()
            if self.reader.offset == before:
                break
        await self.daemon.work(self.reader.close)
