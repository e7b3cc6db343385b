"""Where the queue's ETAs (guildd.eta) get their durations: earlier completed runs of each
operation, from the index, and the estimate itself, both cached briefly.

`guildctl queue` and the web view ask for the queue often (the page refetches on every change),
and a queue may hold thousands of runs of a few operations: the index is asked once per
operation (its latest LAST completed runs) at most every TTL seconds, and an estimate is reused
while the queue is unchanged for TTL seconds (the times it gives are absolute: they stay true).
"""

import asyncio
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Hashable

from guild_common import rundir
from guildd import eta, preemption, scheduler
from guildd.runtime import Runtime
from guildd.store import Store

LAST = 20  # completed runs of an operation that say how long the next one takes
TTL = 5.0  # seconds an operation's durations, or an estimate of an unchanged queue, are reused

_DURATIONS = """
SELECT started_us, stopped_us FROM runs
WHERE op_name = ? AND status = 'completed' AND deleted = 0 AND started_us > 0 AND stopped_us >= started_us
ORDER BY stopped_us DESC LIMIT ?
"""


class History:
    """Durations of recent completed runs per operation, and the operation of each run, from
    the index. Used on the I/O thread only (the index's one connection)."""

    def __init__(self, store: Store, last: int = LAST, ttl: float = TTL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.last = last
        self.ttl = ttl
        self.clock = clock
        self._ops: dict[str, str] = {}  # run id -> its operation (never changes)
        self._durations: dict[str, tuple[float, tuple[int, ...]]] = {}  # op -> (when read, durations)

    def expected(self, run_ids: Collection[str], stop_after: Mapping[str, float],
                 running: Collection[str]) -> tuple[dict[str, eta.Expected], dict[str, int]]:
        """({run id: how long it takes}, {run id: its start}) for `run_ids`, the starts of
        those in `running` (runs outside the queue that others wait for); `stop_after`: runs'
        --stop-after in seconds."""
        unknown = [r for r in run_ids if r not in self._ops]
        started: dict[str, int] = {}
        for run_id, op, started_us in self._rows(unknown + [r for r in running if r in self._ops]):
            self._ops[run_id] = op
            started[run_id] = started_us
        self._ops = {r: self._ops[r] for r in run_ids if r in self._ops}  # only the runs asked about now
        now = self.clock()
        durations = {op: self._durations_of(op, now) for op in set(self._ops.values())}
        self._durations = {op: self._durations[op] for op in durations}
        expected = {r: eta.Expected(durations[op], int(stop_after.get(r, 0) * 1e6)) for r, op in self._ops.items()}
        return expected, {r: started[r] for r in running if started.get(r)}

    def _rows(self, run_ids: Sequence[str]) -> Iterable[tuple[str, str, int]]:
        for i in range(0, len(run_ids), 500):
            chunk = run_ids[i : i + 500]
            marks = ", ".join("?" for _ in chunk)
            yield from self.store.db.execute(f"SELECT id, op_name, started_us FROM runs WHERE id IN ({marks})", chunk)

    def _durations_of(self, op: str, now: float) -> tuple[int, ...]:
        cached = self._durations.get(op)
        if cached is None or now - cached[0] > self.ttl:
            rows = self.store.db.execute(_DURATIONS, (op, self.last)).fetchall()
            cached = self._durations[op] = (now, tuple(stopped - started for started, stopped in rows))
        return cached[1]


class Estimates:
    """The queue's ETAs: durations from History on the I/O thread, the estimate off the event
    loop (thousands of waiting runs take a few hundred milliseconds), reused for an unchanged
    queue."""

    def __init__(self, runtime: Runtime, store: Store, ttl: float = TTL) -> None:
        self.runtime = runtime
        self.history = History(store, ttl=ttl)
        self.ttl = ttl
        self._last: tuple[Hashable, float, dict[str, int | None]] | None = None

    async def of(self, entries: Sequence[scheduler.Entry], box: scheduler.Box, stop_after: Mapping[str, float],
                 grace: float = preemption.DEFAULT_GRACE) -> dict[str, int | None]:
        """Each entry's expected start (µs since the epoch) or None (guildd.eta.estimate);
        `stop_after`: runs' --stop-after, `grace`: a preempted run's SIGTERM to SIGKILL, in seconds."""
        key = _key(entries, box)
        now = time.monotonic()
        if self._last is not None and self._last[0] == key and now - self._last[1] <= self.ttl:
            return self._last[2]
        running = {i for i, s in box.statuses.items() if s == "running"} | set(box.blocking)
        expected, started = await self.runtime.io(self.history.expected, eta.entry_ids(entries, box),
                                                  dict(stop_after), running)
        etas = await asyncio.to_thread(eta.estimate, entries, box, expected, rundir.now_us(), started, int(grace * 1e6))
        self._last = (key, now, etas)
        return etas


def _key(entries: Sequence[scheduler.Entry], box: scheduler.Box) -> Hashable:
    """What an estimate depends on besides durations and the GPUs' measured memory."""
    return (tuple(entries), box.running, box.paused, box.run_once, box.blocking, box.queue_gpus,
            tuple(sorted(box.queue_limits.items())), box.user_gpu_cap, box.cpu_slots,
            tuple(sorted(box.statuses.items())), tuple(sorted(box.kept.items())), box.preempting)
