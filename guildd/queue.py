"""The staged-run queue, as the daemon holds it: which runs wait, what running runs hold, the
queue's settings, and the loop that asks guildd.scheduler what to start and starts it.

Queued runs survive a restart: each queued run's dir has `.guild/queue` (JSON: who queued it,
its request, priority, named queue, --after runs, when it was queued, and once started the
GPUs it was granted). On start-up the daemon reads it back from its staged, pending and
running runs. Settings (queue processing, limits) live in GUILD_HOME/guildd-queue.json.

Fair share (guildd.fairshare): running runs' GPU time is charged to their users when a run ends
and at most every USAGE_SAVE_EVERY seconds, and saved then in GUILD_HOME/guildd-usage.json: a
restarted daemon goes on from there (a run that ended while none ran loses at most that much).

Staged runs start only while queue processing is on, as Guild's staged runs wait for a queue:
`guildctl queue start` switches it on until `queue stop` (or, run-once, until the staged runs
it took have ended); a fresh home starts with it off, unless the daemon runs with
--queue-always-on (a shared box's service).

Starting a run is the scheduler's only job here: the index and scalars are not on that path
beyond the run's own status change.
"""

import asyncio
import collections
import dataclasses
import functools
import json
import logging
import os
import time
from typing import Any, Awaitable, Callable, Hashable, Iterable, Mapping, Optional, Sequence

from guild_common import errors, rundir
from guild_common.paths import StrPath
from guildd import daemonlog, diskspace, fairshare, fsrights, outputs, preemption, queuesettings, requeue, resources as resourceslib, runstate, scheduler
from guildd.etahistory import Estimates
from guildd.runtime import Runtime
from guildd.store import RunRecord, Store

log = logging.getLogger("guildd.queue")

QUEUE_FILE = "queue"  # in a run's .guild dir
POLL_WAITING = 1.0  # seconds between GPU polls while runs wait for GPUs or hold them
POLL_IDLE = 10.0
DISK_RETRY = 2.0  # seconds between looks at a full disk while runs wait for room to start
USAGE_SAVE_EVERY = 60.0  # seconds: at most this often, running runs' GPU time is charged and saved

# A run the queue placed, for Launcher.start_queued: (run id, the environment it was queued
# with or None, its GPUs' environment and a requeued run's resume variables, what records its grant in its dir and returns its stop-after).
Placed = tuple[str, Optional[dict[str, str]], dict[str, str], Callable[[StrPath], float]]


@dataclasses.dataclass(frozen=True)
class Resources:
    """The GPUs a run asks for, as its request and its queue file hold them."""

    gpus: int = 0  # how many GPUs (--gpus N)
    devices: tuple[int, ...] = ()  # exactly these GPU indices (--gpus 0,3)
    gpu_memory: int = 0  # bytes free needed on each GPU (--gpu-memory)
    no_gpus: bool = False  # --no-gpus: the run sees no GPU


@dataclasses.dataclass(frozen=True)
class Wants:
    """What a queued run asks of the queue besides its resources."""

    priority: int = 0  # higher goes first
    queue: str = ""  # a named queue ('' = the default queue)
    after: tuple[str, ...] = ()  # runs that must complete first (full ids once resolved)
    preemptible: bool = False  # a waiting run of higher priority may stop and requeue it (guildd.preemption)


def request_for(resources: Resources) -> scheduler.Request:
    """A scheduler.Request from what a run asks for."""
    devices = resources.devices
    return scheduler.Request(gpus=len(devices) or resources.gpus, devices=devices, gpu_memory=resources.gpu_memory)


def request_from_json(data: Optional[dict[str, Any]]) -> Resources:
    """What a run asks for, from a queue file's `request`."""
    data = data or {}
    return Resources(
        gpus=int(data.get("gpus") or 0),
        devices=tuple(int(d) for d in data.get("devices") or ()),
        gpu_memory=int(data.get("gpu_memory") or 0),
        no_gpus=bool(data.get("no_gpus")),
    )


def request_to_json(resources: Resources) -> dict[str, Any]:
    return {"gpus": resources.gpus, "devices": list(resources.devices), "gpu_memory": resources.gpu_memory,
            "no_gpus": resources.no_gpus}


def gpu_env(no_gpus: bool, devices: Sequence[int]) -> dict[str, str]:
    """What a run's environment gets for its GPUs: the devices it was granted, in PCI bus
    order (as `guildctl gpus` numbers them); none at all for --no-gpus."""
    if devices:
        visible = ",".join(str(d) for d in devices)
        return {"CUDA_VISIBLE_DEVICES": visible, "GUILD_GPUS": visible, "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    if no_gpus:
        return {"CUDA_VISIBLE_DEVICES": "", "GUILD_GPUS": ""}
    return {}


def read_file(run_dir: StrPath) -> Optional[dict[str, Any]]:
    """A run's queue file, read with its run dir owner's rights (guildd.fsrights: never through
    her link to a root-only file, nor from a FIFO); None when none she may read, or not JSON."""
    try:
        with fsrights.open_as_owner(run_dir, rundir.guild_dir(run_dir) / QUEUE_FILE) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def write_file(run_dir: StrPath, data: dict[str, Any]) -> None:
    """Writes a run's queue file with the rights of the run dir's owner (the dir is hers: a
    link she put in place of `.guild` gets no write of root's)."""
    with fsrights.as_owner_of(run_dir):
        rundir.write_atomic(rundir.guild_dir(run_dir) / QUEUE_FILE, json.dumps(data, sort_keys=True).encode())


def _grant(holding: scheduler.Holding, run_dir: StrPath) -> float:
    """Records a run's grant in its queue file (a restart reads what running runs hold from
    it); returns the run's stop-after."""
    data = read_file(run_dir) or {}
    data.pop("preempting", None)  # a requeued run a killed daemon left half recorded: it starts, no longer stopped
    data["granted"] = {"devices": list(holding.devices), "gpu_memory": holding.gpu_memory, "started_us": holding.started_us,
                       "staged": holding.staged}
    write_file(run_dir, data)
    return float(data.get("stop_after") or 0)


class Queue:
    def __init__(
        self,
        runtime: Runtime,
        store: Store,
        states: runstate.RunStates,
        home: StrPath,
        resources: Any,
        start_queued: Callable[[Sequence[Placed]], Awaitable[dict[str, Exception]]],
        busy: Callable[[], bool],
        always_on: bool = False,
        half_life: float = fairshare.DEFAULT_HALF_LIFE,
        preempt_grace: float = preemption.DEFAULT_GRACE,
    ) -> None:
        """`states` tells the queue of ended runs (runs may wait for them); `resources`: the
        GPUs (guildd.resources); `start_queued`: Launcher.start_queued; `busy`: whether runs of
        ours are running (they may take up GPUs too); `half_life`: fair share's, in seconds; `preempt_grace`: guildd.requeue's."""
        self.runtime = runtime
        self.store = store
        self.states = states
        self.resources = resources
        self.start_queued = start_queued
        self.busy = busy
        self.always_on = always_on  # --queue-always-on: processing can't be switched off
        self.entries: dict[str, scheduler.Entry] = {}
        self.queued_us: dict[str, int] = {}  # run id -> when it was queued
        self.holdings: dict[str, scheduler.Holding] = {}  # runs started by the queue
        self.no_gpus: set[str] = set()  # queued runs that asked for --no-gpus
        self.envs: dict[str, dict[str, str]] = {}  # run id -> the environment to start it with (else its recorded env)
        self.stop_after: dict[str, float] = {}  # run id -> its --stop-after (s), waiting or holding: for ETAs
        self.estimates = Estimates(runtime, store)
        self.etas: dict[str, Optional[int]] = {}  # run id -> its expected start (µs) at the latest explain(); None: unknown
        self.snapshot: Optional[resourceslib.Snapshot] = None
        self.preemptions = requeue.Preemptions(runtime, store, states, read_file, write_file, preempt_grace)
        self.plans = 0
        self.plan_times: collections.deque[float] = collections.deque(maxlen=10000)  # seconds per plan()
        self.settings = queuesettings.read(home)
        self.home = home
        self._disk_short = False  # the disk under GUILD_HOME was full at the last plan (see _room_to_start)
        self.ledger = fairshare.Ledger(half_life)  # users' recent GPU usage
        self._usage_saved_us = 0
        self._kick = asyncio.Event()
        self._busy = asyncio.Event()  # set when the GPU poll should go to its faster pace
        states.listen(self._changed)

    def _changed(self, run_id: str, status: str) -> None:
        if status in runstate.ENDED:
            self.kick()  # runs waiting --after this one

    def processing(self) -> dict[str, Any]:
        """The processing settings now: on, run_once, gpus, wait_for_running."""
        processing = dict(queuesettings.PROCESSING_OFF, **(self.settings.get("processing") or {}))
        if self.always_on:
            processing["on"] = True
        return processing

    def configure(self, paused: Optional[bool] = None, queue_limits: Optional[Mapping[str, int]] = None,
                  user_gpu_cap: Optional[int] = None, cpu_slots: Optional[int] = None,
                  processing: Optional[Mapping[str, Any]] = None) -> None:
        """Changes the settings (see queuesettings.changed); written before they are taken."""
        if paused and self.always_on:
            raise errors.FailedPrecondition("queue processing is always on for this daemon (guildd --queue-always-on)")
        settings = queuesettings.changed(self.settings, paused, queue_limits, user_gpu_cap, cpu_slots, processing)
        try:
            queuesettings.write(self.home, settings)
        except OSError as e:
            if diskspace.is_full(e):
                raise diskspace.full_error(self.home, e, "cannot change the queue's settings") from e
            raise
        self.settings = settings
        self.kick()

    def cpu_slots(self) -> int:
        slots = self.settings.get("cpu_slots")
        if slots is None:  # default: one CPU-only staged run per CPU
            return self.snapshot.cpu_count if self.snapshot else os.cpu_count() or 1
        return slots

    async def poll(self) -> resourceslib.Snapshot:
        self.snapshot = await resourceslib.poll(self.runtime, self.store, self.states.run_dir, self.resources)
        return self.snapshot

    def _stale(self) -> bool:
        return self.snapshot is None or rundir.now_us() - self.snapshot.taken_us > POLL_WAITING * 1e6

    async def check_queue_gpus(self, devices: tuple[int, ...]) -> None:
        """Refuses a queue `gpus=` naming GPUs this box doesn't have."""
        snapshot = self.snapshot or await self.poll()
        reason = resourceslib.never_fits(scheduler.Request(gpus=len(devices), devices=devices), resourceslib.gpu_states(snapshot))
        if reason:
            spec = ",".join(str(d) for d in devices)
            raise errors.InvalidArgument(f"queue gpus={spec}: {reason.split(': ', 1)[-1]}")

    async def check_request(self, request: scheduler.Request) -> None:
        """Refuses a request that could never fit this box."""
        if not request.wants_gpus and request.gpus >= 0 and request.gpu_memory >= 0:
            return
        snapshot = self.snapshot or await self.poll()
        reason = resourceslib.never_fits(request, resourceslib.gpu_states(snapshot))
        if not reason and snapshot.reason and not snapshot.gpus:
            reason = f"this box has no GPUs ({snapshot.reason})"
        if reason:
            raise errors.InvalidArgument(reason)

    async def add(self, run_id: str, user: str, resources: Resources, wants: Wants, front: bool,
                  env: Optional[dict[str, str]] = None, stop_after: float = 0.0) -> None:
        """Queues a run (its dir exists, status staged or pending); `wants.after` holds full ids."""
        now = rundir.now_us()
        data = {
            "user": user,
            "request": request_to_json(resources),
            "priority": wants.priority,
            "queue": wants.queue,
            "after": list(wants.after),
            "front": front,
            "queued_us": now,
            "stop_after": stop_after,
            "preemptible": wants.preemptible,
        }
        await self.runtime.io(write_file, self.states.run_dir(run_id), data)
        self._load_entry(run_id, data)
        if self.entries[run_id].request.wants_gpus:
            self._busy.set()
        if env is not None:
            self.envs[run_id] = env
        self.kick()

    def _load_entry(self, run_id: str, data: dict[str, Any]) -> None:
        resources = request_from_json(data.get("request"))
        request = request_for(resources)
        self.entries[run_id] = scheduler.Entry(
            run_id=run_id,
            user=data.get("user") or "",
            request=request,
            seq=int(data.get("queued_us") or 0),
            priority=int(data.get("priority") or 0),
            queue=data.get("queue") or "",
            after=tuple(data.get("after") or ()),
            front=bool(data.get("front")),
            no_gpus=resources.no_gpus,
            preemptible=bool(data.get("preemptible")),
            requeued=self.preemptions.note_entry(run_id, data),
        )
        self.queued_us[run_id] = int(data.get("queued_us") or 0)
        if data.get("stop_after"):
            self.stop_after[run_id] = float(data["stop_after"])
        if resources.no_gpus:
            self.no_gpus.add(run_id)

    def discard(self, run_id: str) -> None:
        """Takes a run out of the queue (stopped, deleted, started by other means)."""
        self.entries.pop(run_id, None)
        self.queued_us.pop(run_id, None)
        self.envs.pop(run_id, None)
        self.no_gpus.discard(run_id)
        self.stop_after.pop(run_id, None)
        self.preemptions.discard(run_id)

    def taken(self, run_id: str) -> bool:
        """Whether queue processing took this staged run and it is starting or running."""
        holding = self.holdings.get(run_id)
        return holding is not None and holding.staged

    def release(self, run_id: str) -> None:
        """A run ended: what it held is free, and its GPU time is charged to its user."""
        holding = self.holdings.pop(run_id, None)
        self.stop_after.pop(run_id, None)
        if holding is None:
            return
        if holding.devices:
            self._save_usage(rundir.now_us(), ended=[_running(holding)])
        self.kick()

    def _save_usage(self, now_us: int, ended: Sequence[fairshare.Running] = ()) -> None:
        """Charges running runs (and `ended` ones) up to now, then writes the usage file on the
        I/O thread, after any earlier write."""
        self.ledger.charge(map(_running, self.holdings.values()), now_us, ended)
        self._usage_saved_us = now_us
        self.runtime.io_submit(fairshare.write_file, self.home, self.ledger.to_json(now_us))

    def usage(self) -> dict[str, float]:
        """Each user's recent GPU usage now, in decayed GPU-seconds, running runs included."""
        return self.ledger.usage(map(_running, self.holdings.values()), rundir.now_us())

    def fingerprint(self) -> Hashable:
        """Changes whenever what `queue` shows does: the waiting runs, their priorities and
        what running runs hold (the web view's live updates)."""
        return (tuple((run_id, e.priority) for run_id, e in self.entries.items()), tuple(self.holdings),
                self.processing()["on"])

    def shares(self) -> list[fairshare.Share]:
        """Each user's fair share, for `guildctl queue`."""
        holding = ((h.user, len(h.devices)) for h in self.holdings.values())
        return fairshare.shares(self.usage(), holding, (e.user for e in self.entries.values()))

    async def set_priority(self, run_ids: Sequence[str], priority: int) -> None:
        for run_id in run_ids:
            if run_id not in self.entries:
                raise errors.FailedPrecondition(f"run {run_id[:8]} is not queued")
        for run_id in run_ids:
            run_dir = self.states.run_dir(run_id)
            data = await self.runtime.io(read_file, run_dir) or {}
            data["priority"] = priority
            await self.runtime.io(write_file, run_dir, data)
            entry = self.entries[run_id]
            self.entries[run_id] = dataclasses.replace(entry, priority=priority)
        self.kick()

    async def load(self) -> None:
        """After a restart: the queued runs and what running runs hold, from their dirs."""

        def read() -> list[tuple[int, RunRecord, dict[str, Any]]]:
            recs, _ = self.store.list((runstate.STAGED, runstate.PENDING, runstate.RUNNING))
            found = []
            for rec in recs:
                try:
                    data = read_file(self.states.run_dir(rec.id))
                    if data:
                        found.append((int(data.get("queued_us") or 0), rec, data))
                except Exception as e:  # noqa: BLE001 - one bad queue file never stops the start
                    _ignoring(rec.id, e)
            return found

        found = await self.runtime.io(read)
        self.ledger = await self.runtime.io(fairshare.read_file, self.home, self.ledger.half_life)
        # In the order they were queued: the scheduler is fastest with its entries in seq order.
        found.sort(key=lambda item: item[0])
        for _seq, rec, data in found:
            try:
                self._load_one(rec, data)
            except Exception as e:  # noqa: BLE001 - one bad queue file never stops the start
                self.discard(rec.id)
                _ignoring(rec.id, e)
        if self.entries:
            log.info("queue: %d run(s) waiting", len(self.entries))

    def _load_one(self, rec: RunRecord, data: dict[str, Any]) -> None:
        granted = data.get("granted")
        if rec.status == runstate.RUNNING:
            if granted is not None:
                self.holdings[rec.id] = scheduler.Holding(
                    run_id=rec.id,
                    user=data.get("user") or "",
                    devices=tuple(granted.get("devices") or ()),
                    gpu_memory=int(granted.get("gpu_memory") or 0),
                    queue=data.get("queue") or "",
                    started_us=int(granted.get("started_us") or 0),
                    staged=bool(granted.get("staged")),
                    priority=int(data.get("priority") or 0),
                    preemptible=bool(data.get("preemptible")),
                )
                self.preemptions.load(rec.id, data)
                if data.get("stop_after"):
                    self.stop_after[rec.id] = float(data["stop_after"])
        elif (granted is None or data.get("preempting")) and not data.get("cancelled"):
            self._load_entry(rec.id, data)

    def kick(self) -> None:
        self._kick.set()

    def box(self, statuses: Optional[dict[str, str]] = None, blocking: Iterable[str] = ()) -> scheduler.Box:
        snapshot = self.snapshot
        processing = self.processing()
        return scheduler.Box(
            gpus=resourceslib.gpu_states(snapshot, self.holdings.values()) if snapshot else (),
            links={(link.a, link.b): link.kind for link in snapshot.links} if snapshot else {},
            running=tuple(self.holdings.values()),
            paused=not processing["on"],
            run_once=processing["run_once"],
            blocking=tuple(blocking),
            queue_gpus=tuple(processing["gpus"]),
            queue_limits=dict(self.settings.get("queue_limits") or {}),
            user_gpu_cap=int(self.settings.get("user_gpu_cap") or 0),
            usage=self.usage(),
            cpu_slots=self.cpu_slots(),
            statuses=statuses or {},
            preempting=tuple(self.preemptions.stopping),
            kept=self.preemptions.box_kept(self.entries),
        )

    async def after_statuses(self) -> dict[str, str]:
        ids = {run_id for entry in self.entries.values() for run_id in entry.after}
        if not ids:
            return {}

        def get() -> dict[str, str]:
            recs = self.store.get_many(sorted(ids))
            return {rec.id: rec.status for rec in recs}

        return await self.runtime.io(get)

    async def blocking(self) -> tuple[str, ...]:
        """With wait-for-running: the runs running now that processing didn't start (Guild's
        queue waits for every other running run)."""
        if not self.processing()["wait_for_running"]:
            return ()
        taken = {h.run_id for h in self.holdings.values() if h.staged}
        recs, _ = await self.runtime.io(self.store.list, (runstate.RUNNING,))
        return tuple(sorted(rec.id for rec in recs if rec.id not in taken))

    async def _snapshot_box(self) -> scheduler.Box:
        if self.snapshot is None or (self._stale() and any(e.request.wants_gpus for e in self.entries.values())):
            await self.poll()  # GPUs are placed on a fresh view: a run of ours may use one since
        return self.box(await self.after_statuses(), await self.blocking())

    def _end_run_once(self) -> None:
        """Run-once processing ends when it has nothing left to take and its runs have ended.
        As in Guild, a staged run whose GPUs don't match the queue's `gpus=` is not for it."""
        processing = self.processing()
        if not processing["on"] or not processing["run_once"]:
            return
        gpus = tuple(processing["gpus"])
        if any(h.staged for h in self.holdings.values()) or any(
                not e.front and not (gpus and scheduler.on_queue_gpus(e, gpus)[1]) for e in self.entries.values()):
            return
        self.settings["processing"] = dict(queuesettings.PROCESSING_OFF)
        queuesettings.write(self.home, self.settings)
        log.info("queue: run-once processing done")

    async def explain(self) -> list[scheduler.Decision]:
        """Every waiting entry in order with its decision (Start / Wait / Cancel); on a full
        disk a run that would start waits for room (see run). Sets `etas` (guildd.eta)."""
        box = await self._snapshot_box()
        entries = list(self.entries.values())
        # Off the event loop: with thousands waiting this takes tens of milliseconds.
        decisions = await asyncio.to_thread(scheduler.explain, entries, box)
        self.etas = await self.estimates.of(entries, box, self.stop_after, self.preemptions.grace)
        decisions = self.preemptions.explain(decisions)
        if not await self.runtime.io(diskspace.short, self.home):
            return decisions
        return [scheduler.Wait(d.run_id, diskspace.waiting_note(self.home)) if isinstance(d, scheduler.Start) else d
                for d in decisions]

    async def _room_to_start(self, count: int) -> bool:
        """Whether the disk has room for runs to start. On a full disk a run could only fail:
        it waits, and the plan is made again every DISK_RETRY seconds until there is room."""
        short = await self.runtime.io(diskspace.short, self.home)
        if short and not self._disk_short:
            log.warning("queue: %d run(s) wait to start: %s", count, diskspace.waiting_note(self.home))
        elif self._disk_short and not short:
            log.info("queue: the disk under %s has room again: starting runs", self.home)
        self._disk_short = short
        if short:
            asyncio.get_running_loop().call_later(DISK_RETRY, self.kick)
        return not short

    async def run(self) -> None:
        """The scheduling loop: on every change, plan and act."""
        while True:
            await self._kick.wait()
            self._kick.clear()
            self._end_run_once()
            if not self.entries:
                continue
            box = await self._snapshot_box()
            started = time.perf_counter()
            decisions = scheduler.plan(list(self.entries.values()), box)
            self.plan_times.append(time.perf_counter() - started)
            self.plans += 1
            starts = [d for d in decisions if isinstance(d, scheduler.Start)]
            if starts and await self._room_to_start(len(starts)):
                await self._start(starts)
            for decision in decisions:
                if isinstance(decision, scheduler.Cancel):
                    # Not cut by a shutdown: a run marked cancelled but still pending would be an error.
                    await self.runtime.critical(self._cancel(decision.run_id, decision.reason))
                elif isinstance(decision, preemption.Preempt):
                    await self.runtime.critical(self.preemptions.begin(decision))

    async def poll_loop(self) -> None:
        """Keeps the GPU snapshot fresh, often while runs wait or hold GPUs; a change in the
        GPUs (a foreign process gone, memory freed) wakes the scheduler."""
        last = None
        while True:
            snapshot = await self.poll()
            seen = (snapshot.gpus, snapshot.links)
            if seen != last:
                last = seen
                self.kick()
            now = rundir.now_us()
            if now - self._usage_saved_us >= USAGE_SAVE_EVERY * 1e6 and any(h.devices for h in self.holdings.values()):
                self._save_usage(now)
            # Runs of ours running without a GPU request may take up GPUs too.
            busy = self.holdings or self.busy() or any(e.request.wants_gpus for e in self.entries.values())
            self._busy.clear()
            try:
                await asyncio.wait_for(self._busy.wait(), POLL_WAITING if busy else POLL_IDLE)
            except asyncio.TimeoutError:
                pass

    async def _start(self, decisions: Sequence[scheduler.Start]) -> None:
        """Starts what a plan decided, all together (see Launcher.start_queued)."""
        starts: list[Placed] = []
        for decision in decisions:
            run_id = decision.run_id
            entry = self.entries[run_id]
            no_gpus = run_id in self.no_gpus
            env = self.envs.get(run_id)
            resume_env = self.preemptions.resume_env(run_id)
            stop_after = self.stop_after.get(run_id)
            self.discard(run_id)
            holding = scheduler.Holding(
                run_id=run_id,
                user=entry.user,
                devices=tuple(decision.devices),
                gpu_memory=decision.gpu_memory,
                queue=entry.queue,
                started_us=rundir.now_us(),
                staged=not entry.front,
                priority=entry.priority,
                preemptible=entry.preemptible,
            )
            if holding.devices or not entry.front:
                self.holdings[run_id] = holding  # front CPU-only runs take no slot
                if stop_after:
                    self.stop_after[run_id] = stop_after
            starts.append((run_id, env, {**gpu_env(no_gpus, holding.devices), **resume_env}, functools.partial(_grant, holding)))
        # Not cut by a shutdown: a run granted its start and left pending would be an error.
        failed = await self.runtime.critical(self.start_queued(starts))
        for run_id, e in failed.items():  # each ended as an error (e.g. a dependency); the queue goes on
            if not isinstance(e, errors.GuildError):
                log.error("starting queued run %s", run_id[:8], exc_info=e)
            self.release(run_id)

    async def requeue(self, run_id: str) -> None:
        """A preempted run's process ended: what it held is free, and it waits again (guildd.requeue)."""
        self.release(run_id)
        self._load_entry(run_id, await self.preemptions.requeue(run_id))
        self.kick()

    async def _cancel(self, run_id: str, reason: str) -> None:
        self.discard(run_id)
        run_dir = self.states.run_dir(run_id)

        def mark() -> None:  # why, written with the owner's rights: a dir refusing it is still cancelled
            try:
                data = read_file(run_dir) or {}
                data["cancelled"] = reason
                write_file(run_dir, data)
                outputs.append(run_dir, f"guildctl: run cancelled: {reason}\n".encode())
            except OSError as e:
                log.warning("run %s: its run dir refuses the reason it was cancelled: %s", run_id[:8], daemonlog.describe(e))

        await self.runtime.io(mark)
        rec = await self.runtime.io(self.store.get, run_id)
        if rec is not None and rec.status in (runstate.STAGED, runstate.PENDING):
            await self.states.transition(run_id, runstate.TERMINATED)
        log.info("run %s cancelled: %s", run_id[:8], reason)

    async def cancel(self, run_ids: Sequence[str]) -> None:
        for run_id in run_ids:
            if run_id not in self.entries:
                raise errors.FailedPrecondition(f"run {run_id[:8]} is not queued")
        for run_id in run_ids:
            await self._cancel(run_id, "cancelled by user")

    def plan_stats(self) -> tuple[float, float]:
        """The recent scheduling passes' median and 99th percentile, in ms."""
        times = sorted(self.plan_times) or [0.0]
        return times[len(times) // 2] * 1000, times[min(len(times) - 1, int(0.99 * len(times)))] * 1000


def _running(h: scheduler.Holding) -> fairshare.Running:
    return (h.run_id, h.user, len(h.devices), h.started_us)


def _ignoring(run_id: str, e: BaseException) -> None:
    # The run is left out of the queue (a pending one then ends as an error at start-up).
    log.warning("run %s: ignoring its queue file: %s", run_id[:8], daemonlog.describe(e))
