"""Preemption's effects, as the queue makes them (guildd.preemption decides): each victim
stopped (SIGTERM to its process group, SIGKILL once the grace period is over), and, once its
process is gone, requeued in place: pending again in its own run dir, its files kept, to start
when GPUs free up with GUILD_RESUMED=1 and GUILD_PREEMPTIONS=N in its environment so that it
can load its checkpoint. Part of the queue (guildd.queue), kept apart for its size.

A kill -9 of the daemon loses no preemption: before a victim is signalled, its queue file
records `preempting` (by whom, when, the GPUs kept, the SIGKILL's deadline). The next daemon
reads it back (Queue.load): the GPUs stay kept, the SIGKILL comes at the deadline, and the
victim's end, seen by whichever daemon, requeues it rather than ending it. Each preemption is
recorded in the queue file's `preemptions` and the run's `preemptions` attr (a list of
{time, by}: `runs info` shows it).
"""

import asyncio
import logging
import os
import signal
from typing import Any, Callable, Container, Optional, Sequence

from guild_common import rundir
from guild_common.paths import StrPath
from guildd import executor as execlib, fsrights, outputs, preemption, runstate, scheduler
from guildd.runtime import Runtime
from guildd.store import Store

log = logging.getLogger("guildd.queue")

RESUMED_ENV = "GUILD_RESUMED"  # "1" when a run starts again after a preemption
PREEMPTIONS_ENV = "GUILD_PREEMPTIONS"  # how many times it was preempted so far
ATTR = "preemptions"  # the run's record: [{time: µs, by: run id}, ...]

QueueFile = Callable[[StrPath], Optional[dict[str, Any]]]


class Preemptions:
    """The victims being stopped, the GPUs kept for the runs they are stopped for, and what the
    requeued runs need to start again. Lives on the event loop; files on the I/O thread."""

    def __init__(self, runtime: Runtime, store: Store, states: runstate.RunStates, read_file: QueueFile,
                 write_file: Callable[[StrPath, dict[str, Any]], None], grace: float = preemption.DEFAULT_GRACE) -> None:
        """`states` moves a victim back to pending; `read_file`, `write_file`: guildd.queue's,
        for a run's queue file; `grace`: seconds from a victim's SIGTERM to its SIGKILL."""
        self.runtime = runtime
        self.store = store
        self.states = states
        self.run_dir = states.run_dir
        self.read_file = read_file
        self.write_file = write_file
        self.grace = grace
        self.stopping: dict[str, dict[str, Any]] = {}  # victim -> its `preempting` record
        self.kept: dict[int, str] = {}  # GPU index -> the waiting run it is kept for
        self.waiting: dict[str, list[dict[str, Any]]] = {}  # requeued run waiting -> its preemptions so far

    def box_kept(self, entries: Container[str]) -> dict[int, str]:
        """The GPUs kept for runs that still wait (a run that started or left has no more use for them)."""
        return {i: run_id for i, run_id in self.kept.items() if run_id in entries}

    def note_entry(self, run_id: str, data: dict[str, Any]) -> bool:
        """A queued run's file read (queued, requeued, or after a restart): True when it was
        preempted before."""
        done = list(data.get(ATTR) or ())
        if data.get("preempting"):  # a daemon killed between a requeue's two writes
            done.append(_record(data["preempting"]))
        if done:
            self.waiting[run_id] = done
        return bool(done)

    def discard(self, run_id: str) -> None:
        """A run left the queue (started, stopped, cancelled): GPUs kept for it are free again."""
        self.waiting.pop(run_id, None)
        for i in [i for i, r in self.kept.items() if r == run_id]:
            del self.kept[i]

    def resume_env(self, run_id: str) -> dict[str, str]:
        """What a requeued run's environment gets when it starts again; {} for any other run."""
        done = self.waiting.get(run_id)
        return {RESUMED_ENV: "1", PREEMPTIONS_ENV: str(len(done))} if done else {}

    def explain(self, decisions: Sequence[scheduler.Decision]) -> list[scheduler.Decision]:
        """The queue's decisions, each requeued run's reason for waiting with 'preempted by RUN' first."""
        return [scheduler.Wait(d.run_id, self._preempted_by(d.run_id) + d.reason) if isinstance(d, scheduler.Wait) else d
                for d in decisions]

    def _preempted_by(self, run_id: str) -> str:
        done = self.waiting.get(run_id)
        return f"preempted by run {done[-1]['by'][:8]}; " if done else ""

    async def begin(self, decision: preemption.Preempt) -> None:
        """Keeps the GPUs for the waiting run and stops each victim: its `preempting` record is
        written first (a restarted daemon goes on from it), then SIGTERM, SIGKILL after the grace."""
        now = rundir.now_us()
        record = {"by": decision.run_id, "time_us": now, "devices": list(decision.devices),
                  "deadline_us": now + int(self.grace * 1e6)}
        for i in decision.devices:
            self.kept[i] = decision.run_id
        for victim in decision.victims:
            await self.runtime.io(self._mark, victim, record)
            self._stop(victim, record)
            log.info("run %s: preempted by run %s: stopping it (SIGKILL in %gs)", victim[:8], decision.run_id[:8], self.grace)
            await self._signal(victim, signal.SIGTERM)

    def _mark(self, victim: str, record: dict[str, Any]) -> None:
        run_dir = self.run_dir(victim)
        data = self.read_file(run_dir) or {}
        data["preempting"] = record
        self.write_file(run_dir, data)

    def load(self, run_id: str, data: dict[str, Any]) -> None:
        """After a restart: a running run that was being preempted goes on being stopped."""
        record = data.get("preempting")
        if isinstance(record, dict) and record.get("by"):
            for i in record.get("devices") or ():
                self.kept[int(i)] = str(record["by"])
            self._stop(run_id, record)
            log.info("run %s: still being preempted by run %s", run_id[:8], str(record["by"])[:8])

    def _stop(self, victim: str, record: dict[str, Any]) -> None:
        self.stopping[victim] = record
        self.runtime.spawn(self._kill_at_deadline(victim, record), name=f"preempt-{victim[:8]}")

    async def _kill_at_deadline(self, victim: str, record: dict[str, Any]) -> None:
        await asyncio.sleep(max(0.0, (int(record.get("deadline_us") or 0) - rundir.now_us()) / 1e6))
        if self.stopping.get(victim) is record:  # not requeued (nor preempted again since)
            log.info("run %s: grace period over: SIGKILL", victim[:8])
            await self._signal(victim, signal.SIGKILL)

    async def _signal(self, victim: str, sig: int) -> None:
        rec = await self.runtime.io(self.store.get, victim)
        if rec is not None and not await self.runtime.io(signal_run, self.run_dir(victim), rec.started_us,
                                                          execlib.Shim(rec.shim_pid, rec.shim_started), sig):
            log.info("run %s: no process to signal (%s)", victim[:8], signal.Signals(sig).name)

    def ended(self, run_id: str, stopped_by_user: bool) -> bool:
        """A run's process ended: True when preemption stopped it, and no user's stop came too
        (then it ends as any stopped run does)."""
        if run_id not in self.stopping:
            return False
        if stopped_by_user:
            del self.stopping[run_id]
            return False
        return True

    async def requeue(self, run_id: str) -> dict[str, Any]:
        """Moves a victim whose process ended back to pending, in place, then records its
        preemption in its queue file, attrs and output; returns its queue file as it waits again."""
        record = self.stopping.pop(run_id)
        await self.states.transition(run_id, runstate.PENDING)
        return await self.runtime.io(self._requeued_file, run_id, record)

    def _requeued_file(self, run_id: str, record: dict[str, Any]) -> dict[str, Any]:
        run_dir = self.run_dir(run_id)
        data = self.read_file(run_dir) or {}
        data.pop("granted", None)
        data.pop("preempting", None)
        data[ATTR] = list(data.get(ATTR) or ()) + [_record(record)]
        self.write_file(run_dir, data)
        with fsrights.as_owner_of(run_dir):
            rundir.write_attr(run_dir, ATTR, data[ATTR])
            outputs.append_line(run_dir, f"guildd: preempted by run {record['by'][:8]}: requeued, to start again "
                                         f"with {RESUMED_ENV}=1 {PREEMPTIONS_ENV}={len(data[ATTR])}")
        return data


def _record(preempting: dict[str, Any]) -> dict[str, Any]:
    """One preemption as the run's record keeps it."""
    return {"time": int(preempting.get("time_us") or 0), "by": str(preempting.get("by") or "")}


def signal_run(run_dir: StrPath, started_us: int, shim: execlib.Shim, sig: int) -> bool:
    """On the I/O thread: signals a victim's process group, the pid in its LOCK, if that process
    is the run's (its owner's, born with the run: guildd.reconcile's checks for adopting it);
    else, for SIGTERM, asks its shim (which gives its own grace period). False when there is
    no process to signal."""
    pid = fsrights.call_as_owner_of(run_dir, rundir.read_lock_pid, run_dir)
    if pid and execlib.pid_alive(pid) and fsrights.adoptable(pid, run_dir) and execlib.born_with_run(pid, started_us, run_dir):
        try:
            os.killpg(pid, sig)
            return True
        except (ProcessLookupError, PermissionError):
            pass
    if sig == signal.SIGTERM and shim.pid and execlib.shim_alive(shim):
        try:
            os.kill(shim.pid, sig)
            return True
        except ProcessLookupError:
            pass
    return False
