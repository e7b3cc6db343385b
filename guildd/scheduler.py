"""The staged-run queue's order and placement rules, as a pure function of a snapshot.

The daemon calls `plan(entries, box)` whenever something changes (a run queued, a run ended, GPUs
polled) and starts the runs it returns; `guildctl queue` calls `explain(entries, box)` to say why
each run waits. Both are one implementation (`_decide`): `explain` considers every entry, `plan`
stops doing per-entry work once nothing more can start.

Order: entries started explicitly (`front`) first, by seq; then higher priority; then, at equal
priority, fair share: the entry of the user with the least recent GPU usage (`Box.usage`, decayed
GPU-seconds, guildd.fairshare), so a user who just finished a long job waits behind one who hasn't
run today; at equal usage (users new to the box), the user who holds fewer GPUs at that moment
(counting GPUs granted earlier in the same plan); then seq. Placement: whole GPUs for exclusive
requests, per-GPU memory for memory requests; the best-linked set of GPUs; and reservations, so
that a large run waiting for GPUs isn't starved by small runs that keep taking the GPUs it waits
for (backfill only on other GPUs).

Staged entries start only while queue processing is on (`paused` false), with Guild's queue flags
(run-once, wait-for-running, gpus=). Front entries (started explicitly, or run without --stage and
waiting for GPUs) are exempt from that, from named-queue limits and from CPU slots; they still need
free GPUs, respect the per-user GPU cap, and wait for their `after` runs.
"""

import collections
import dataclasses
import heapq
import itertools
import math
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence

from guildd import preemption

GIB = 2**30

# How GPUs connect, from nvidia-smi topo -m, as a rank: higher is closer. NV<n> ranks above PIX,
# more links higher; a pair the box can't tell ranks like SYS.
_LINK_RANKS = {"PIX": 5, "PXB": 4, "PHB": 3, "NODE": 2, "SYS": 1}
_UNKNOWN_LINK = _LINK_RANKS["SYS"]
_NO_PAIRS = math.inf  # the worst link of a single GPU: it has none, so it can't be worse

# Above this many candidate sets, placement grows sets greedily instead of trying them all.
_EXHAUSTIVE_LIMIT = 2000

_FAILED = ("error", "terminated")  # an `after` run that ended like this cancels its dependents


@dataclasses.dataclass(frozen=True)
class Request:
    """What a run asks for."""

    gpus: int = 0  # how many GPUs; 0 and no devices: a CPU-only run
    devices: tuple = ()  # explicit GPU indices (--gpus 0,3); then gpus == len(devices)
    gpu_memory: int = 0  # bytes needed free on EACH GPU; 0: whole GPUs (exclusive use)

    @property
    def wants_gpus(self) -> bool:
        return self.gpus > 0 or bool(self.devices)


@dataclasses.dataclass(frozen=True)
class Entry:
    """A queued run."""

    run_id: str
    user: str
    request: Request
    seq: int  # submission order, lower first
    priority: int = 0  # higher first
    queue: str = ""  # named queue ('' = the default queue)
    after: tuple = ()  # run ids that must have completed first
    front: bool = False  # started explicitly: ahead of every other entry, not held by `paused`
    no_gpus: bool = False  # asked for no GPUs (--no-gpus, --gpus 0): the queue's `gpus=` leaves it so
    preemptible: bool = False  # once running, a waiting run of higher priority may stop and requeue it
    requeued: bool = False  # preempted and waiting again: it preempts nothing (guildd.preemption)


@dataclasses.dataclass(frozen=True)
class GpuState:
    index: int
    memory_total: int  # bytes
    memory_free: int  # bytes, as the driver reports now
    foreign_memory: int = 0  # bytes used by processes we did not start
    foreign: tuple = ()  # descriptions of foreign processes on it, e.g. ("pid 4242 (bob)",)


@dataclasses.dataclass(frozen=True)
class Holding:
    """A running run of ours and what it was granted."""

    run_id: str
    user: str
    devices: tuple = ()  # GPU indices it holds
    gpu_memory: int = 0  # per-GPU bytes granted; 0 = it holds its GPUs exclusively
    queue: str = ""
    started_us: int = 0
    staged: bool = False  # taken from the staged runs by queue processing (not started explicitly)
    priority: int = 0  # its entry's, for preemption
    preemptible: bool = False


@dataclasses.dataclass(frozen=True)
class Box:
    """Everything plan() needs besides the entries."""

    gpus: tuple = ()  # GpuState by index
    links: dict = dataclasses.field(default_factory=dict)  # (a, b), a < b -> 'NV12', 'PIX', ... 'SYS'
    running: tuple = ()  # Holding
    paused: bool = False  # queue processing is off: every entry but front ones waits
    run_once: bool = False  # run-once processing: one staged run at a time, as Guild's queue runs them
    blocking: tuple = ()  # wait-for-running: ids of other runs running now; staged entries wait for them
    queue_gpus: tuple = ()  # the queue's gpus=: staged entries that asked for no GPUs run on these
    queue_limits: dict = dataclasses.field(default_factory=dict)  # queue name -> max running at once
    user_gpu_cap: int = 0  # max GPUs one user's runs may hold at once; 0 = no cap
    usage: dict = dataclasses.field(default_factory=dict)  # user -> decayed GPU-seconds of recent use
    cpu_slots: int = 0  # max CPU-only non-front runs running at once; 0 = no limit
    statuses: dict = dataclasses.field(default_factory=dict)  # run id -> status, for `after` runs
    preempting: tuple = ()  # ids of running runs being stopped to be requeued
    kept: dict = dataclasses.field(default_factory=dict)  # GPU index -> the waiting run preemption freed it for


@dataclasses.dataclass(frozen=True)
class Start:
    """Start the run on these GPUs, granting `gpu_memory` bytes on each (0: exclusively)."""

    run_id: str
    devices: tuple
    gpu_memory: int


@dataclasses.dataclass(frozen=True)
class Wait:
    run_id: str
    reason: str


@dataclasses.dataclass(frozen=True)
class Cancel:
    """The run will never run: a run it must wait for (`after`) failed or vanished."""

    run_id: str
    reason: str


Decision = Start | Wait | Cancel | preemption.Preempt


def plan(entries: Iterable[Entry], box: Box) -> list[Decision]:
    """The Start and Cancel decisions for this snapshot, in the order to act on them, then the
    Preempt decisions (guildd.preemption) for runs that still wait."""
    entries = list(entries)
    decisions: list[Decision] = [d for _, d in _decide(entries, box, everything=False) if not isinstance(d, Wait)]
    return decisions + preemption.preempt(entries, box, [d for d in decisions if isinstance(d, Start)])


def explain(entries: Iterable[Entry], box: Box) -> list[Decision]:
    """One decision per entry (Start, Wait or Cancel), in the order they are considered."""
    return [d for _, d in _decide(entries, box, everything=True)]


def order(entries: Iterable[Entry], box: Box) -> list[Entry]:
    """The entries in the order they are considered."""
    return [e for e, _ in _decide(entries, box, everything=True)]


def _decide(entries: Iterable[Entry], box: Box, everything: bool) -> list[tuple[Entry, Decision]]:
    """[(entry, decision)] in the order entries are considered. With `everything` false (plan),
    entries that can neither start nor be cancelled any more are left out, once that is known."""
    planner = _Planner(box)
    entries = list(entries)
    front = [e for e in entries if e.front]
    rest = entries
    if front:
        front.sort(key=lambda e: e.seq)
        for e in front:
            planner.consider(e)
        rest = [e for e in entries if not e.front]
    done: Collection[int] = ()
    if not planner.staged_held() and planner.gpus_open(rest):
        done = planner.consider_fair_share(rest)
    # From here on no GPU can be granted: each user's GPU count is fixed, so the fair-share order of
    # what is left is a plain sort (stable: ties keep their given order, as in fair share), and plan
    # need only look at the entries that may still start or be cancelled.
    rest = _without(rest, done)
    if not everything:
        rest = planner.worth_considering(rest)
    rest.sort(key=planner.static_key)
    for e in rest:
        # For plan, what is left without `after` is CPU-only: done once the CPU slots fill up.
        if everything or e.after or not planner.cpu_slots_full():
            planner.consider(e)
    return planner.decided


class _Planner:
    """The mutable state of one plan: what each GPU has granted and reserved so far."""

    def __init__(self, box: Box) -> None:
        self.box = box
        self.gpus = {g.index: g for g in box.gpus}
        self.indices = sorted(self.gpus)
        # run ids of our runs on each GPU, running or started now
        self.holders: dict[int, list[str]] = {i: [] for i in self.indices}
        self.exclusive: dict[int, str] = {}  # index -> run id that holds it exclusively
        self.granted = dict.fromkeys(self.indices, 0)  # memory granted to our memory holders
        self.granted_now = dict.fromkeys(self.indices, 0)  # of that, granted in this plan
        # When a GPU is likeliest to come free: the latest start among its holders (it is free for an
        # exclusive run only when all of them end). A GPU granted in this plan comes free last.
        self.release: dict[int, float] = dict.fromkeys(self.indices, math.inf)
        self.reserved: dict[int, str] = dict(box.kept)  # index -> run id of the waiting entry it is kept for
        self.user_gpus: dict[str, int] = {}
        self.queue_running: dict[str, int] = {}
        self.cpu_running = 0
        self.staged_running = 0  # runs of staged entries running or started now (for run-once)
        self.ranks = {(min(a, b), max(a, b)): _link_rank(kind) for (a, b), kind in box.links.items()}
        self.decided: list[tuple[Entry, Decision]] = []
        self._open: bool | None = None  # cached gpus_open(); None when a grant or reservation may have changed it
        self._min_memory: float | None = None
        for h in box.running:
            self._grant(h.run_id, h.user, h.queue, h.devices, h.gpu_memory, h.started_us)
            self.staged_running += h.staged

    def static_key(self, e: Entry) -> tuple[int, float, int, int]:
        return (-e.priority, self.box.usage.get(e.user, 0.0), self.user_gpus.get(e.user, 0), e.seq)

    def consider_fair_share(self, entries: list[Entry]) -> set[int]:
        """Considers `entries` in fair-share order while some GPU can still be granted; returns the
        positions in `entries` of those it considered.

        Each user's entries wait in (priority, seq, position) order: they share the user's usage
        and GPU count, so neither changes their order. The users wait in a heap by their next
        entry's (priority, the user's usage, the user's GPUs, seq, position): the top is the next
        entry of all. Usage is fixed for the plan, and a grant only changes the GPU count of the
        user whose entry was just considered: that user alone goes back in, with its next entry.
        So each entry considered costs O(log users), whatever the number of entries, besides one
        pass to group them."""
        held, usage = self.user_gpus, self.box.usage
        grouped: dict[str, dict[int, list[int]]] = collections.defaultdict(lambda: collections.defaultdict(list))
        for n, e in _by_seq(entries):
            grouped[e.user][e.priority].append(n)  # user -> priority -> positions by (seq, position)
        queues: dict[str, Iterator[int]] = {}  # user -> iterator over the positions of the user's entries, in order
        # heap of (-priority, usage, GPUs held, seq, position, user) of each user's next entry
        users: list[tuple[int, float, int, int, int, str]] = []
        for user, by_priority in grouped.items():
            queues[user] = queue = itertools.chain.from_iterable(
                [by_priority[p] for p in sorted(by_priority, reverse=True)])
            n = next(queue)
            e = entries[n]
            users.append((-e.priority, usage.get(user, 0.0), held.get(user, 0), e.seq, n, user))
        heapq.heapify(users)
        done = set()
        while users and self.gpus_open(entries):
            n, user = users[0][4:]
            self.consider(entries[n])
            done.add(n)
            following = next(queues[user], None)
            if following is None:
                heapq.heappop(users)
            else:
                e = entries[following]
                heapq.heapreplace(users, (-e.priority, usage.get(user, 0.0), held.get(user, 0), e.seq, following, user))
        return done

    def gpus_open(self, entries: Sequence[Entry]) -> bool:
        """Whether some GPU could still be granted to some entry: neither reserved nor held
        exclusively, and either unused (for an exclusive request) or with as much memory available
        as the smallest memory request among `entries`. Grants and reservations only close GPUs."""
        if self._open is None:
            self._open = any(self._open_gpu(i, entries) for i in self.indices)
        return self._open

    def _open_gpu(self, i: int, entries: Sequence[Entry]) -> bool:
        if (i in self.reserved and i not in self.box.kept) or i in self.exclusive:
            return False
        if not self.holders[i] and not self.gpus[i].foreign:
            return True
        if self._min_memory is None:
            self._min_memory = min((e.request.gpu_memory for e in entries if e.request.gpu_memory),
                                   default=math.inf)
        return self._available(i) >= self._min_memory

    def worth_considering(self, entries: Sequence[Entry]) -> list[Entry]:
        """For plan, once no GPU can be granted: the entries whose decision may still be other than
        a Wait that changes nothing. Those are the entries to cancel (a run in their `after` failed
        or vanished) and, unless paused or out of CPU slots, the CPU-only entries whose `after` runs
        (if any) all completed. Every other entry would wait: for its `after` runs, or for GPUs (it
        may reserve some, but only GPU runs look at reservations, and none can start now)."""
        cpu = not self.staged_held() and not self.cpu_slots_full()
        if cpu:  # not e.request.wants_gpus, inline: this looks at every entry
            entries = [e for e in entries if e.after or not (e.request.gpus > 0 or e.request.devices)]
        else:
            entries = [e for e in entries if e.after]
        statuses = self.box.statuses
        kept = []
        for e in entries:
            after = _after_state(e.after, statuses)
            if after is Cancel or (after is None and cpu and not e.request.wants_gpus):
                kept.append(e)
        return kept

    def staged_held(self) -> bool:
        """Whether no staged entry can start now, whatever it asks for. Only becomes true during
        a plan (a run-once start), never false."""
        box = self.box
        return box.paused or bool(box.blocking) or (box.run_once and self.staged_running > 0)

    def cpu_slots_full(self) -> bool:
        return bool(self.box.cpu_slots) and self.cpu_running >= self.box.cpu_slots

    def consider(self, e: Entry) -> None:
        decision = self._decision(e)
        self.decided.append((e, decision))

    def _decision(self, e: Entry) -> Decision:
        box = self.box
        after = self._after(e)
        if after:
            return after
        if not e.front:
            if box.paused:
                return Wait(e.run_id, "queue processing is off ('guildctl queue start')")
            if box.blocking:
                return Wait(e.run_id, f"wait-for-running: {_runs(box.blocking)} running")
            if box.run_once and self.staged_running:
                return Wait(e.run_id, "run-once: one staged run at a time")
            if box.queue_gpus:
                e, mismatch = on_queue_gpus(e, box.queue_gpus)
                if mismatch:
                    return Wait(e.run_id, mismatch)
            limit = box.queue_limits.get(e.queue)
            running = self.queue_running.get(e.queue, 0)
            if limit is not None and running >= limit:
                return Wait(e.run_id, f"queue '{e.queue or 'default'}' is full ({running} of {limit} running)")
        request = e.request
        if not request.wants_gpus:
            if not e.front and self.cpu_slots_full():
                return Wait(e.run_id, f"all {box.cpu_slots} CPU slots are in use")
            return self._start(e, ())
        if not self.gpus:
            return Wait(e.run_id, "this box has no GPUs")
        held = self.user_gpus.get(e.user, 0)
        if box.user_gpu_cap and held + request.gpus > box.user_gpu_cap:
            return Wait(e.run_id, f"user cap reached: {e.user} holds {held} of {box.user_gpu_cap} GPUs")
        if request.devices:
            return self._place_devices(e)
        return self._place_count(e)

    def _after(self, e: Entry) -> "Wait | Cancel | None":
        waiting = []
        for run_id in e.after:
            status = self.box.statuses.get(run_id)
            if status is None:
                return Cancel(e.run_id, f"after {_short(run_id)}: no such run")
            if status in _FAILED:
                return Cancel(e.run_id, f"after {_short(run_id)} ended with status {status}")
            if status != "completed":
                waiting.append(f"after {_short(run_id)} ({status})")
        return Wait(e.run_id, ", ".join(waiting)) if waiting else None

    def _place_devices(self, e: Entry) -> "Start | Wait":
        memory = e.request.gpu_memory
        problems = []
        for i in e.request.devices:
            if i not in self.gpus:
                problems.append(f"there is no GPU {i}")
            elif problem := self._device_problem(i, memory):
                problems.append(problem)
            elif self.reserved.get(i, e.run_id) != e.run_id:
                problems.append(f"GPU {i} is reserved for run {_short(self.reserved[i])}")
        if not problems:
            return self._start(e, e.request.devices)
        devices = e.request.devices
        if all(i in self.gpus and i not in self.reserved and self._could_free(i, memory) for i in devices):
            self._reserve(e, devices)
        return Wait(e.run_id, "; ".join(problems))

    def _device_problem(self, i: int, memory: int) -> str:
        if i in self.exclusive:
            return f"GPU {i} is held by run {_short(self.exclusive[i])}"
        if memory:
            available = self._available(i)
            if available < memory:
                return f"GPU {i} has {fmt_gib(available)} free, needs {fmt_gib(memory)}"
            return ""
        if self.holders[i]:
            return f"GPU {i} is held by {_runs(self.holders[i])}"
        foreign = self.gpus[i].foreign
        if foreign:
            return f"GPU {i} has {'a foreign process' if len(foreign) == 1 else 'foreign processes'}: " + (
                ", ".join(foreign))
        return ""

    def _place_count(self, e: Entry) -> "Start | Wait":
        count, memory = e.request.gpus, e.request.gpu_memory
        usable = [i for i in self.indices if self._usable(i, memory)]
        free = [i for i in usable if self.reserved.get(i, e.run_id) == e.run_id]
        if len(free) >= count:
            return self._start(e, self._choose(free, count, memory))
        if memory:
            need = f"needs {fmt_gib(memory)} free on {fmt_gpus(count)}"
            if usable:
                have = f"{len(free)} {'GPU has' if len(free) == 1 else 'GPUs have'} it"
            else:
                most = max(self._available(i) for i in self.indices)
                have = f"at most {fmt_gib(most)} free"
        else:
            need, have = f"needs {fmt_gpus(count)}", f"{len(free)} free"
        reason = f"{need}, {have}{self._reserved_note(usable, e.run_id)}"
        self._reserve_some(e, count, memory, set(free))
        return Wait(e.run_id, reason)

    def _reserved_note(self, usable: Sequence[int], run_id: str) -> str:
        """' (2 reserved for run ab12cd34)' for usable GPUs kept for other entries, else ''."""
        holders = [self.reserved[i] for i in usable if self.reserved.get(i, run_id) != run_id]
        if not holders:
            return ""
        return f" ({len(holders)} reserved for {_runs(list(dict.fromkeys(holders)))})"

    def _available(self, i: int) -> int:
        """Memory a memory request may have on GPU i now. The driver's free memory doesn't know of
        grants made in this plan yet; the total minus grants doesn't know of runs using more than
        granted: take the smaller."""
        if i in self.exclusive:
            return 0
        g = self.gpus[i]
        return min(g.memory_free - self.granted_now[i], g.memory_total - g.foreign_memory - self.granted[i])

    def _usable(self, i: int, memory: int) -> bool:
        """Whether GPU i can take a request for `memory` bytes (0: exclusively) now, ignoring
        reservations."""
        if memory:
            return i not in self.exclusive and self._available(i) >= memory
        return not self.holders[i] and not self.gpus[i].foreign

    def _could_free(self, i: int, memory: int) -> bool:
        """Whether GPU i could take the request once our runs on it end."""
        g = self.gpus[i]
        if memory:
            return g.memory_total - g.foreign_memory >= memory
        return not g.foreign

    def _reserve_some(self, e: Entry, count: int, memory: int, free: set[int]) -> None:
        """Keeps `count` GPUs for e, which waits for lack of GPUs: those it could use now first,
        then those whose runs are likeliest to end first. None if there aren't enough."""
        candidates = [i for i in self.indices if self.reserved.get(i, e.run_id) == e.run_id and self._could_free(i, memory)]
        if len(candidates) >= count:
            candidates.sort(key=lambda i: (i not in free, self.release[i], i))
            self._reserve(e, candidates[:count])

    def _reserve(self, e: Entry, devices: Iterable[int]) -> None:
        for i in devices:
            self.reserved[i] = e.run_id
        self._open = None

    def _choose(self, free: list[int], count: int, memory: int) -> tuple[int, ...]:
        """The best `count` GPUs of `free`: the best worst link, then (for memory requests) the least
        memory available, so big free GPUs stay free, then the lowest indices."""
        packing = {i: (self._available(i) if memory else 0) for i in free}

        def key(devices: tuple[int, ...]) -> tuple[float, int, tuple[int, ...]]:
            return (-self._worst_link(devices), sum(packing[i] for i in devices), devices)

        if math.comb(len(free), count) <= _EXHAUSTIVE_LIMIT:
            return min(itertools.combinations(free, count), key=key)
        return min((self._grow(start, free, count, packing) for start in free), key=key)

    def _grow(self, start: int, free: Sequence[int], count: int, packing: Mapping[int, int]) -> tuple[int, ...]:
        """A set of `count` GPUs grown greedily from `start`: each step adds the GPU whose worst link
        to the set so far is best (then the most packed, then the lowest index)."""
        chosen = [start]
        worst = {i: self._rank(start, i) for i in free if i != start}
        while len(chosen) < count:
            best = min(worst, key=lambda i: (-worst[i], packing[i], i))
            chosen.append(best)
            del worst[best]
            for i in worst:
                worst[i] = min(worst[i], self._rank(best, i))
        return tuple(sorted(chosen))

    def _worst_link(self, devices: Sequence[int]) -> float:
        return min((self._rank(a, b) for a, b in itertools.combinations(devices, 2)), default=_NO_PAIRS)

    def _rank(self, a: int, b: int) -> int:
        return self.ranks.get((min(a, b), max(a, b)), _UNKNOWN_LINK)

    def _start(self, e: Entry, devices: Sequence[int]) -> Start:
        memory = e.request.gpu_memory if devices else 0
        self._grant(e.run_id, e.user, e.queue, devices, memory, math.inf)
        self.staged_running += not e.front
        for i in devices:
            self.granted_now[i] += memory
        return Start(e.run_id, tuple(devices), memory)

    def _grant(self, run_id: str, user: str, queue: str, devices: Sequence[int], memory: int,
               started_us: float) -> None:
        for i in devices:
            if i not in self.gpus:  # a GPU that is gone since the run started
                continue
            self.holders[i].append(run_id)
            self.release[i] = started_us if len(self.holders[i]) == 1 else max(self.release[i], started_us)
            if memory:
                self.granted[i] += memory
            else:
                self.exclusive[i] = run_id
        self.user_gpus[user] = self.user_gpus.get(user, 0) + len(devices)
        self.queue_running[queue] = self.queue_running.get(queue, 0) + 1
        if not devices:
            self.cpu_running += 1
        self._open = None


def _link_rank(kind: str) -> int:
    if kind.startswith("NV") and kind[2:].isdigit():
        return max(_LINK_RANKS.values()) + int(kind[2:])
    return _LINK_RANKS.get(kind, _UNKNOWN_LINK)


def on_queue_gpus(e: Entry, queue_gpus: Sequence[int]) -> tuple[Entry, str]:
    """(entry as the queue's `gpus=` runs it, '' or why it waits), as Guild's queue: without a GPU
    request it gets the queue's GPUs; naming other GPUs, it waits (a GPU spec mismatch)."""
    request = e.request
    if e.no_gpus or (request.wants_gpus and not request.devices):
        return e, ""
    if not request.devices:
        return dataclasses.replace(e, request=Request(gpus=len(queue_gpus), devices=tuple(queue_gpus))), ""
    if sorted(request.devices) != sorted(queue_gpus):
        asked = ",".join(str(i) for i in request.devices)
        return e, f"GPU spec mismatch: the run asks for GPUs {asked}, the queue has {fmt_indices(queue_gpus)}"
    return e, ""


def _after_state(after: Iterable[str], statuses: Mapping[str, str]) -> "type[Wait] | type[Cancel] | None":
    """What the runs in `after` make of an entry, by the rules of _Planner._after but without the
    reasons: Cancel (one failed or vanished), Wait (one has yet to complete) or None."""
    state: type[Wait] | None = None
    for run_id in after:
        status = statuses.get(run_id)
        if status is None or status in _FAILED:
            return Cancel
        if status != "completed":
            state = Wait
    return state


def _by_seq(entries: list[Entry]) -> Iterable[tuple[int, Entry]]:
    """(position, entry) of `entries` by (seq, position). They mostly come in seq order: a look at
    the first few tells whether it is worth checking (a sort of sorted numbers is one pass)."""
    seqs = [e.seq for e in entries]
    head = seqs[:64]
    if head == sorted(head) and seqs == sorted(seqs):
        return enumerate(entries)
    positions = sorted(range(len(seqs)), key=seqs.__getitem__)
    return zip(positions, map(entries.__getitem__, positions))


def _without(entries: list[Entry], positions: Collection[int]) -> list[Entry]:
    """`entries` but those at `positions` (a few, mostly), in order."""
    if not positions:
        return entries
    kept, start = [], 0
    for n in sorted(positions):
        kept += entries[start:n]
        start = n + 1
    kept += entries[start:]
    return kept


def _short(run_id: str) -> str:
    return run_id[:8]


def _runs(run_ids: Sequence[str]) -> str:
    if len(run_ids) == 1:
        return f"run {_short(run_ids[0])}"
    return "runs " + ", ".join(_short(r) for r in run_ids)


def fmt_gib(n: float) -> str:
    """Bytes as the reasons (here and guildd.resources.never_fits) show them: '20.0 GiB'."""
    return f"{n / GIB:.1f} GiB"


def fmt_gpus(n: int) -> str:
    """'1 GPU', '2 GPUs', for the reasons."""
    return f"{n} GPU" if n == 1 else f"{n} GPUs"


def fmt_indices(indices: Iterable[int]) -> str:
    """'0-3' for 0, 1, 2, 3; '0,2,5-7' for 0, 2, 5, 6, 7."""
    parts = []
    for _, pairs in itertools.groupby(enumerate(sorted(indices)), key=lambda t: t[1] - t[0]):
        run = [i for _, i in pairs]
        parts.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
    return ",".join(parts)
