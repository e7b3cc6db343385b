"""When each waiting run is expected to start (`guildctl queue`'s ETA), as a pure function.

A user looking at a long queue wants to know whether to wait for a run or come back tomorrow.
The estimate replays the scheduler's own rules on a simulated timeline rather than guessing
from queue positions: a run's start depends on priorities, fair share, reservations, memory
sharing, queue limits and `--after` runs, which only guildd.scheduler knows how to weigh.

The timeline: every run holding resources now ends at its expected end; at each moment
something ends, `scheduler.plan` decides what starts on a Box as it would be then (what ended
frees its GPUs and its memory), and each run it starts holds what it was granted for its own
expected duration. A run's ETA is the moment the replayed plan starts it. A waiting run that
never starts in the replay has no ETA: something ahead of it, or holding what it needs, has
no expected end (no completed run of its operation and no --stop-after), queue processing is
off (for a staged run), or it will be cancelled.

Preemption (guildd.preemption) is replayed too: the runs a plan would preempt end a grace period
later, and their GPUs are kept for the run they were stopped for; their restart, once requeued,
is not foreseen (they are entries like any other then).

How long a run takes comes from earlier completed runs of the same operation (see `remaining`):
the median; for a run that has already run a while, the median of the earlier runs that lasted
longer; never past the run's --stop-after. Fair-share usage is taken as it is now.
"""

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence

from guildd import preemption, scheduler

_COMPLETED = "completed"  # a run that ends in the replay ends as expected: its `after` dependents go on


@dataclasses.dataclass(frozen=True)
class Expected:
    """What is known of how long a run takes."""

    history: tuple[int, ...] = ()  # durations (µs) of recent completed runs of its operation
    stop_after_us: int = 0  # its --stop-after (µs); 0: none


def remaining(expected: Expected, elapsed_us: int = 0) -> int | None:
    """How much longer (µs) a run that has run `elapsed_us` is expected to take; None: unknown.

    The median of the earlier runs that lasted longer than it has run so far (for a run not
    started, the median of them all): a run past the typical duration is likely one of the
    long ones. 0 when it has outlasted every earlier run (it may end any moment). Its
    --stop-after bounds it (and, with no history, is the estimate: it ends by then at the latest)."""
    left = None
    if expected.history:
        longer = sorted(d for d in expected.history if d > elapsed_us)
        left = _median(longer) - elapsed_us if longer else 0
    if expected.stop_after_us:
        bound = max(expected.stop_after_us - elapsed_us, 0)
        left = bound if left is None else min(left, bound)
    return left


def estimate(entries: Sequence[scheduler.Entry], box: scheduler.Box, expected: Mapping[str, Expected], now_us: int,
             started: Mapping[str, int] | None = None,
             grace_us: int = int(preemption.DEFAULT_GRACE * 1e6)) -> dict[str, int | None]:
    """Each entry's expected start (µs since the epoch, `now_us` for one that starts now) or None.

    `expected` says how long each run takes: the entries, the runs in `box.running`, and the
    runs outside the queue that entries wait for (`box.blocking`, running `after` runs), whose
    start times are in `started`. A run missing from it has no expected end. `grace_us`: how
    long a preempted run takes to stop, at most."""
    timeline = _Timeline(box, expected, now_us, started or {}, grace_us)
    waiting = list(entries)
    by_id = {e.run_id: e for e in waiting}
    etas: dict[str, int | None] = {}
    t: float = now_us
    while waiting:
        timeline.end_until(t)
        decided = set()
        for decision in scheduler.plan(waiting, timeline.box(by_id)):
            if isinstance(decision, scheduler.Start):
                etas[decision.run_id] = int(t)
                timeline.start(decision, by_id.pop(decision.run_id), int(t))
            elif isinstance(decision, scheduler.Cancel):
                etas[decision.run_id] = None
                del by_id[decision.run_id]
            else:
                if isinstance(decision, preemption.Preempt):  # it waits for the runs preempted for it to stop
                    timeline.preempt(decision, t + grace_us)
                continue
            decided.add(decision.run_id)
        if decided:
            waiting = [e for e in waiting if e.run_id not in decided]
        t = timeline.next_end()
        if t == math.inf:
            break
    etas.update((e.run_id, None) for e in waiting)
    return etas


class _Timeline:
    """The simulated box: what holds resources and until when, and the GPUs' memory as it frees."""

    def __init__(self, box: scheduler.Box, expected: Mapping[str, Expected], now_us: int,
                 started: Mapping[str, int], grace_us: int) -> None:
        self.base = box
        self.expected = expected
        self.gpus = {g.index: g for g in box.gpus}
        self.holdings = {h.run_id: h for h in box.running}
        self.real = {h.run_id for h in box.running}  # holdings of runs running now (their memory use is measured)
        self.statuses = dict(box.statuses)
        self.blocking = set(box.blocking)
        self.kept = dict(box.kept)  # GPU index -> the waiting run preemption freed it for
        self.preempting = set(box.preempting)
        self.ends: dict[str, float] = {}  # run id -> when it ends in the replay (inf: unknown)
        for h in box.running:
            self.ends[h.run_id] = _end(expected.get(h.run_id), now_us, now_us - h.started_us)
            if h.run_id in self.preempting:  # being stopped: gone within the grace period
                self.ends[h.run_id] = min(self.ends[h.run_id], now_us + grace_us)
        outside = self.blocking | {i for i, s in box.statuses.items() if s == "running" and i not in self.holdings}
        for run_id in outside:
            self.ends[run_id] = (_end(expected.get(run_id), now_us, now_us - started[run_id])
                                 if run_id in started else math.inf)
        # Memory our runs use now beyond what memory grants account for, per GPU: freed when the
        # last of them there ends (an exclusive run's use isn't granted, only measured).
        self.measured = {i: max(g.memory_total - g.foreign_memory - g.memory_free, 0) for i, g in self.gpus.items()}
        self.freed = dict.fromkeys(self.gpus, 0)  # memory freed on each GPU by real holdings that ended
        self.granted = dict.fromkeys(self.gpus, 0)  # memory granted on each GPU by starts in the replay

    def start(self, decision: scheduler.Start, entry: scheduler.Entry, t: int) -> None:
        """A run the replayed plan started at `t`: it holds what it was granted (as Queue._start
        records it) until its expected end."""
        run_id = decision.run_id
        left = remaining(self.expected.get(run_id, Expected()))
        self.ends[run_id] = math.inf if left is None else t + left
        if decision.devices or not entry.front:  # a front CPU-only run takes no slot
            self.holdings[run_id] = scheduler.Holding(
                run_id=run_id, user=entry.user, devices=decision.devices, gpu_memory=decision.gpu_memory,
                queue=entry.queue, started_us=t, staged=not entry.front, priority=entry.priority,
                preemptible=entry.preemptible)
            for i in decision.devices:
                self.granted[i] += decision.gpu_memory

    def preempt(self, decision: preemption.Preempt, stopped: float) -> None:
        """The replayed plan preempts runs for a waiting one: they end by `stopped`, and their
        GPUs are kept for it."""
        for victim in decision.victims:
            self.ends[victim] = min(self.ends.get(victim, math.inf), stopped)
            self.preempting.add(victim)
        self.kept.update(dict.fromkeys(decision.devices, decision.run_id))

    def end_until(self, t: float) -> None:
        """Ends every run whose expected end is at `t` or before."""
        for run_id in [r for r, end in self.ends.items() if end <= t]:
            del self.ends[run_id]
            self.blocking.discard(run_id)
            self.preempting.discard(run_id)
            if run_id in self.statuses:
                self.statuses[run_id] = _COMPLETED
            holding = self.holdings.pop(run_id, None)
            if holding is None:
                continue
            for i in holding.devices:
                if i not in self.gpus:
                    continue
                if run_id in self.real:
                    self.freed[i] += holding.gpu_memory
                else:
                    self.granted[i] -= holding.gpu_memory
            self.real.discard(run_id)

    def next_end(self) -> float:
        return min(self.ends.values(), default=math.inf)

    def box(self, waiting: Mapping[str, scheduler.Entry]) -> scheduler.Box:
        """The Box as the scheduler would see it now in the replay, `waiting` the entries not
        started yet (GPUs that preemption keeps for a run are kept until it starts)."""
        return dataclasses.replace(self.base, gpus=tuple(self._gpu(i) for i in self.gpus),
                                   running=tuple(self.holdings.values()), blocking=tuple(sorted(self.blocking)),
                                   statuses=self.statuses, kept={i: r for i, r in self.kept.items() if r in waiting},
                                   preempting=tuple(sorted(self.preempting)))

    def _gpu(self, i: int) -> scheduler.GpuState:
        g = self.gpus[i]
        ours_left = any(i in self.holdings[r].devices for r in self.real)
        freed = min(self.freed[i], self.measured[i]) if ours_left else self.measured[i]
        return dataclasses.replace(g, memory_free=g.memory_free + freed - self.granted[i])


def _end(expected: Expected | None, now_us: int, elapsed_us: int) -> float:
    left = remaining(expected, max(elapsed_us, 0)) if expected else None
    return math.inf if left is None else now_us + left


def _median(sorted_values: Sequence[int]) -> int:
    n = len(sorted_values)
    mid = n // 2
    return sorted_values[mid] if n % 2 else (sorted_values[mid - 1] + sorted_values[mid]) // 2


def entry_ids(entries: Iterable[scheduler.Entry], box: scheduler.Box) -> set[str]:
    """The runs whose durations an estimate needs: the entries, the runs holding resources, and
    the runs outside the queue that entries wait for."""
    ids = {e.run_id for e in entries} | {h.run_id for h in box.running} | set(box.blocking)
    return ids | {i for i, s in box.statuses.items() if s == "running"}
