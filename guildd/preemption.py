"""Which running runs to stop so that a waiting run of higher priority can start, as a pure
function of the scheduler's snapshot (guildd.scheduler.plan adds these decisions to its own).

A run is preemptible when it was started with --preemptible (or is a trial of a batch run with
--preemptible-trials). When a waiting run needs GPUs that only preemptible runs of strictly
lower priority hold (with what is free), the fewest such runs are chosen: of equal count, those
of the lowest priorities, then the most recently started (the least work lost). The queue stops
them (SIGTERM, a grace period, SIGKILL), requeues them, and keeps the GPUs they free for the run
they were stopped for (`Box.kept`), so no other run takes those GPUs first.

Never chosen: a non-preemptible run, a run of equal or higher priority, a run already being
stopped (`Box.preempting`). A waiting run preempts nothing when it could not start anyway
(queue processing off for a staged run, wait-for-running, its user at the GPU cap, its named
queue full, `after` runs not completed), when GPUs are kept for it already, or when it was
itself preempted and requeued (`Entry.requeued`): it waits for GPUs to free, so two runs never
take GPUs from each other in turn.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from guildd.scheduler import Box, Entry, Holding, Request, Start

DEFAULT_GRACE = 30.0  # seconds between a victim's SIGTERM and its SIGKILL (guildd --preempt-grace)

# Above this many sets of victims of one size, victims are taken greedily (lowest first).
_EXHAUSTIVE_LIMIT = 2000


@dataclasses.dataclass(frozen=True)
class Preempt:
    """Stop and requeue `victims` so that `run_id` can start on `devices` once they are gone."""

    run_id: str  # the waiting run the GPUs are freed for
    victims: tuple[str, ...]  # running runs to stop and requeue
    devices: tuple[int, ...]  # the GPUs kept for run_id (some may be free already)


@dataclasses.dataclass
class _Gpu:
    """One GPU as preemption sees it: who holds it, and what is left once some holders go."""

    index: int
    memory: int  # total less foreign use: what our runs may be granted on it
    foreign: bool  # a process we did not start uses it: never free for an exclusive request
    holders: dict[str, int]  # run id -> memory granted (0: held exclusively)
    kept_for: str = ""  # a waiting run the GPU is kept for

    def free_with(self, victims: frozenset[str], memory: int, run_id: str) -> bool:
        """Whether the request (`memory` per GPU, 0: exclusive) of run `run_id` fits once
        `victims` are gone."""
        if self.kept_for and self.kept_for != run_id:
            return False
        rest = {r: m for r, m in self.holders.items() if r not in victims}
        if not memory:
            return not rest and not self.foreign
        return all(rest.values()) and self.memory - sum(rest.values()) >= memory


def preempt(entries: Iterable[Entry], box: Box, starts: Sequence[Start]) -> list[Preempt]:
    """The preemptions to make, given the runs the same plan starts (`starts`): for the waiting
    entries, most urgent first (priority, then seq), each taking victims the earlier ones left."""
    candidates = [h for h in box.running if h.preemptible and h.devices and h.run_id not in box.preempting]
    if not candidates:
        return []
    lowest = min(h.priority for h in candidates)
    started = {s.run_id for s in starts}
    kept_for = set(box.kept.values())
    waiting = sorted((e for e in entries if e.priority > lowest and e.run_id not in started and e.run_id not in kept_for
                      and _may_start(e, box, starts)), key=lambda e: (-e.priority, e.seq))
    if not waiting:
        return []
    gpus = _gpus(box, starts)
    decisions = []
    # (request, priority) of entries that found no victims since the last preemption: an entry
    # asking the same finds none either (thousands of like entries cost one search).
    futile: set[tuple[Request, int]] = set()
    for e in waiting:
        if (e.request, e.priority) in futile:
            continue
        found = _victims(e, [h for h in candidates if h.priority < e.priority], gpus)
        if found is None:
            futile.add((e.request, e.priority))
            continue
        futile.clear()
        victims, devices = found
        decisions.append(Preempt(e.run_id, tuple(h.run_id for h in victims), devices))
        taken = {h.run_id for h in victims}
        candidates = [h for h in candidates if h.run_id not in taken]
        for i in devices:
            gpus[i].kept_for = e.run_id
    return decisions


def _may_start(e: Entry, box: Box, starts: Sequence[Start]) -> bool:
    """Whether `e` waits only for GPUs: it asks for some, and nothing else holds it back."""
    if e.requeued or not e.request.wants_gpus:
        return False
    if any(box.statuses.get(run_id) != "completed" for run_id in e.after):
        return False
    if not e.front:
        if box.paused or box.blocking:
            return False
        limit = box.queue_limits.get(e.queue)
        if limit is not None and sum(h.queue == e.queue for h in box.running) >= limit:
            return False
    if box.user_gpu_cap:
        held = sum(len(h.devices) for h in box.running if h.user == e.user)
        if held + e.request.gpus > box.user_gpu_cap:
            return False
    return True


def _gpus(box: Box, starts: Sequence[Start]) -> dict[int, _Gpu]:
    gpus = {g.index: _Gpu(g.index, g.memory_total - g.foreign_memory, bool(g.foreign), {}) for g in box.gpus}
    holdings: list[tuple[str, Sequence[int], int]] = [(h.run_id, h.devices, h.gpu_memory) for h in box.running]
    holdings += [(s.run_id, s.devices, s.gpu_memory) for s in starts]
    for run_id, devices, memory in holdings:
        for i in devices:
            if i in gpus:
                gpus[i].holders[run_id] = memory
    for i, run_id in box.kept.items():
        if i in gpus:
            gpus[i].kept_for = run_id
    return gpus


def _victims(e: Entry, candidates: list[Holding], gpus: dict[int, _Gpu]) -> tuple[list[Holding], tuple[int, ...]] | None:
    """The fewest of `candidates` whose end lets `e` start (of equal count: the lowest
    priorities, then the latest starts) and the GPUs `e` would start on; None when `e` needs
    none stopped (it waits for something else) or no set of them is enough."""
    if _devices(e, frozenset(), gpus) is not None:
        return None
    # Only runs on GPUs e could use matter.
    wanted = set(e.request.devices) if e.request.devices else set(gpus)
    candidates = sorted((h for h in candidates if wanted & set(h.devices)), key=_cost)
    for count in range(1, len(candidates) + 1):
        if math.comb(len(candidates), count) > _EXHAUSTIVE_LIMIT:
            return _greedy(e, candidates, gpus)
        best: tuple[list[Holding], tuple[int, ...]] | None = None
        for chosen in itertools.combinations(candidates, count):
            devices = _devices(e, frozenset(h.run_id for h in chosen), gpus)
            if devices is not None and (best is None or _set_cost(chosen) < _set_cost(best[0])):
                best = (list(chosen), devices)
        if best is not None:
            return best
    return None


def _greedy(e: Entry, candidates: list[Holding], gpus: dict[int, _Gpu]) -> tuple[list[Holding], tuple[int, ...]] | None:
    """Victims taken cheapest first until `e` fits, then those it turns out not to need dropped."""
    chosen: list[Holding] = []
    for h in candidates:
        chosen.append(h)
        if _devices(e, frozenset(c.run_id for c in chosen), gpus) is not None:
            break
    else:
        return None
    for h in sorted(chosen, key=_cost, reverse=True):  # the costliest first: keep it running if we can
        rest = [c for c in chosen if c is not h]
        if _devices(e, frozenset(c.run_id for c in rest), gpus) is not None:
            chosen = rest
    devices = _devices(e, frozenset(c.run_id for c in chosen), gpus)
    return (chosen, devices) if devices is not None else None


def _devices(e: Entry, victims: frozenset[str], gpus: dict[int, _Gpu]) -> tuple[int, ...] | None:
    """The GPUs `e` would start on once `victims` are gone (those free already first, then the
    lowest indices), or None if it would not fit."""
    request = e.request
    if request.devices:
        fits = all(i in gpus and gpus[i].free_with(victims, request.gpu_memory, e.run_id) for i in request.devices)
        return tuple(request.devices) if fits else None
    usable = [g for g in gpus.values() if g.free_with(victims, request.gpu_memory, e.run_id)]
    if len(usable) < request.gpus:
        return None
    usable.sort(key=lambda g: (bool(victims & set(g.holders)), g.index))
    return tuple(sorted(g.index for g in usable[: request.gpus]))


def _cost(h: Holding) -> tuple[int, int]:
    """What stopping one run costs, lowest first: its priority, then how long it has run."""
    return (h.priority, -h.started_us)


def _set_cost(victims: Sequence[Holding]) -> tuple[tuple[int, int], ...]:
    """A set of victims' cost, compared costliest victim first."""
    return tuple(sorted((_cost(h) for h in victims), reverse=True))
