r"""The run state machine, written once.

    staged -> pending -> running -> completed | error | terminated
                                  \-> (restart) pending -> running ...
                          running -> pending (preempted and requeued: guildd.preemption)

A run on Ray is pending with its shim started until its job runs (guildd.rayjobs.job_started);
a job that ends before it was seen running ends its run from pending (see RunStates.end).

`RunStates` is the only writer of a status: it checks the edge, writes the facts Guild reads
in the run dir (markers, `started`; `stopped` and `exit_status` at an end), updates the index,
and tells whoever listens (watchers of the run, the queue).
"""

import asyncio
import dataclasses
import logging
import os
from typing import Any, Callable, Optional

from guild_common import errors, rundir
from guildd import daemonlog, fsrights, shim as shimlib
from guildd.store import RunRecord, Store

log = logging.getLogger("guildd")

CHANGE_WAIT = 0.5  # a watcher re-checks at least this often

STAGED = "staged"
PENDING = "pending"
RUNNING = "running"
COMPLETED = "completed"
ERROR = "error"
TERMINATED = "terminated"
ENDED = frozenset({COMPLETED, ERROR, TERMINATED})
ACTIVE = frozenset({PENDING, RUNNING})

# (from, to): why the edge exists. `None` is a run that doesn't exist yet.
EDGES = {
    (None, STAGED): "run created with --stage: waits to be started",
    (None, PENDING): "run created to start now: waits for its process",
    (STAGED, PENDING): "a staged run is started (--start, or the queue)",
    (PENDING, RUNNING): "its shim started the operation's process (on Ray: its job began to run)",
    (PENDING, ERROR): "its process could not be started",
    (RUNNING, COMPLETED): "the process exited 0",
    (RUNNING, ERROR): "the process exited non-zero, or died unrecorded",
    (RUNNING, TERMINATED): "the process was stopped by a signal",
    (COMPLETED, PENDING): "restarted",
    (ERROR, PENDING): "restarted",
    (TERMINATED, PENDING): "restarted",
    (STAGED, TERMINATED): "a staged run is stopped before it starts",
    (RUNNING, PENDING): "preempted: stopped for a run of higher priority and requeued, to start again in place",
    (PENDING, TERMINATED): "a pending run is stopped before it starts",
}


def check_edge(old: Optional[str], new: str) -> None:
    if (old, new) not in EDGES:
        raise errors.FailedPrecondition(f"a run that is {old or 'new'} cannot become {new}")


def apply_to_rundir(run_dir: "str | os.PathLike", old: Optional[str], new: str, now_us: int, exit_status: bool = True,
                    end_recorded: bool = False) -> None:
    """The run-dir side of a transition: the facts Guild AI reads a status from.
    `exit_status=False`: a run that ends before it started writes none (a dependency not
    met: Guild 0.9 leaves it unset, and reads such a run as error too). `end_recorded`: an end
    whose exit status and stop time are written already (a Ray run's shim recorded them
    while its job was still pending): they are kept."""
    if new == STAGED:
        # Guild stamps a staged run's start time too: it lists and filters by it.
        rundir.write_attr(run_dir, "started", now_us)
        rundir.set_marker(run_dir, "STAGED", True)
    elif new == PENDING:
        rundir.set_marker(run_dir, "STAGED", False)
        rundir.set_marker(run_dir, "PENDING", True)
        if old in ENDED or old == RUNNING:
            # A restart, or a preempted run requeued: the end its shim recorded no longer holds.
            rundir.delete_attr(run_dir, "exit_status")
            rundir.delete_attr(run_dir, "stopped")
    elif new == RUNNING:
        rundir.write_attr(run_dir, "started", now_us)
        rundir.set_marker(run_dir, "PENDING", False)
        if old == STAGED:  # staged -> pending -> running in one step (RunStates.apply's `via`)
            rundir.set_marker(run_dir, "STAGED", False)
    elif new in ENDED and old in (STAGED, PENDING):
        for marker in ("STAGED", "PENDING"):
            rundir.set_marker(run_dir, marker, False)
        if end_recorded:
            return
        if exit_status:
            rundir.write_attr(run_dir, "exit_status", -15 if new == TERMINATED else 1)
        rundir.write_attr(run_dir, "stopped", now_us)
    # RUNNING -> ended: the shim has recorded exit_status and stopped already.


def _record_end(run_dir: "str | os.PathLike", stopping: bool, exit_status: Optional[int]) -> tuple[int, dict[str, Any]]:
    """RunStates.end's side in the run dir: the end the shim recorded, else this one (see
    end); returns the exit status and the op attr."""
    recorded = rundir.read_attr(run_dir, "exit_status") if exit_status is None else None
    if isinstance(recorded, int):
        exit_status = recorded
    else:
        if exit_status is None:
            # The shim died without recording an end: stopped while it was still starting
            # (it starts the process only after it can handle a stop), killed outright, or
            # out of disk space (written in place of its reserved files, if it made them).
            exit_status = -15 if stopping else 1
        shimlib.write_end(run_dir, exit_status, rundir.now_us())
    op = rundir.read_attr(run_dir, "op")
    op = op if isinstance(op, dict) else {}
    if stopping and exit_status < 0 and op.get("stoppable"):
        exit_status = 0  # stopping is how a stoppable operation ends
        rundir.write_attr(run_dir, "exit_status", 0)
    return exit_status, op


def existing(store: Store, run_id: str) -> RunRecord:
    """A run's index record, which the caller knows is there (written just before on the I/O
    thread); NotFound if it is gone after all."""
    rec = store.get(run_id)
    if rec is None:
        raise errors.NotFound(f"run {run_id[:8]} does not exist")
    return rec


class RunStates:
    """The one writer of run status. `apply` and `end` run on the I/O thread (the index's
    thread) and tell the event loop themselves; the rest runs on the event loop."""

    def __init__(self, store: Store, run_dir: Callable[[str], Any], runtime: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.store = store
        self.run_dir = run_dir
        self.runtime = runtime
        self.loop = loop
        self._changes: dict[str, asyncio.Event] = {}
        self._listeners: list[Callable[[str, str], None]] = []

    async def transition(self, run_id: str, new: str, record: Optional[RunRecord] = None, **fields: Any) -> RunRecord:
        """Moves a run to status `new`, in the run dir and the index, and tells listeners."""
        return await self.runtime.io(self.apply, run_id, new, record, **fields)

    def apply(self, run_id: str, new: str, record: Optional[RunRecord] = None, via: Optional[str] = None,
              exit_status: bool = True, dir_refusable: bool = False, end_recorded: bool = False, **fields: Any) -> RunRecord:
        """A transition's writes, on the I/O thread; `record` is a new run's index record and
        `fields` index fields written with it. With `via`, two edges at once (old -> via ->
        new), each checked, writing only what the second leaves (the queue starting a staged
        run: staged -> pending -> running); via running, both steps' facts (a Ray run whose job
        ended before it was seen running: its start, then its end). `exit_status=False` and
        `end_recorded`: see apply_to_rundir.
        `dir_refusable`: a run dir that refuses the transition's facts (its owner broke it) is
        logged, and the index records the transition all the same."""
        current = self.store.get(run_id)
        old = current.status if current else None
        if via is not None:
            check_edge(old, via)
            check_edge(via, new)
        else:
            check_edge(old, new)
        now = rundir.now_us()
        run_dir = self.run_dir(run_id)
        updates = dict(fields, status=new)
        try:
            with fsrights.as_owner_of(run_dir):  # the owner's dir: written (and read) with their rights
                for step_old, step_new in ((old, RUNNING), (RUNNING, new)) if via == RUNNING else ((old, new),):
                    apply_to_rundir(run_dir, step_old, step_new, now, exit_status, end_recorded)
                if new in ENDED:
                    recorded = rundir.read_attr(run_dir, "exit_status")
                    updates["exit_status"] = recorded if isinstance(recorded, int) else None
                    updates["stopped_us"] = int(rundir.read_attr(run_dir, "stopped") or now)
        except OSError as e:
            if not dir_refusable:
                raise
            log.error("run %s: its run dir refuses its %s facts: %s", run_id[:8], new, daemonlog.describe(e))
        if new in ENDED:
            updates.setdefault("stopped_us", now)
            updates["shim_pid"] = 0
        if new in (RUNNING, STAGED) or via == RUNNING:
            updates["started_us"] = now
        if new == PENDING and (old in ENDED or old == RUNNING):
            updates.update(exit_status=None, stopped_us=0)
        if current is None:
            if record is None:
                raise errors.NotFound(f"run {run_id[:8]} does not exist")
            self.store.insert(dataclasses.replace(record, **updates))
        else:
            self.store.update(run_id, **updates)
        self.loop.call_soon_threadsafe(self._notify, run_id, new)
        return existing(self.store, run_id)

    def end(self, run_id: str, stopping: bool, exit_status: Optional[int] = None) -> tuple[RunRecord, bool]:
        """On the I/O thread: a run's end as recorded in its dir (by its shim; if the shim died
        first, as well as it can be told; `exit_status` for a run with no process of its own,
        or one whose process could not start), moved into the index. Returns the record and
        whether the run is to be deleted (completed, with delete-on-success)."""
        run_dir = self.run_dir(run_id)
        if self._forget_if_gone(run_id):
            raise errors.NotFound(f"run {run_id[:8]} was removed by hand")
        with fsrights.as_owner_of(run_dir):
            exit_status, op = _record_end(run_dir, stopping, exit_status)
        new = rundir.status_for_exit_status(exit_status)
        current = self.store.get(run_id)
        # A Ray run whose job ended before it was seen running (guildd.rayjobs.job_started): it
        # completed through its start; an error or a stop ends it from pending, with no start.
        via = RUNNING if current is not None and current.status == PENDING and new == COMPLETED else None
        rec = self.apply(run_id, new, via=via, end_recorded=True)
        return rec, rec.status == COMPLETED and bool(op.get("delete-on-success"))

    def begin(self, run_id: str) -> Optional[RunRecord]:
        """On the I/O thread: a Ray run's job was seen running: its run, pending until now,
        is running from now. None if it is no longer pending (its end was recorded first).
        The run dir may refuse the start's facts: the index records it all the same."""
        current = self.store.get(run_id)
        if current is None or current.status != PENDING:
            return None
        return self.apply(run_id, RUNNING, dir_refusable=True)

    def fail(self, run_id: str) -> Optional[RunRecord]:
        """On the I/O thread: a run the daemon cannot go on with ends as an error (a staged
        or pending one through the table's edge, so it gets no start time); None if its end
        is recorded already. The run dir may refuse the end's facts: the index records it
        all the same."""
        current = self.store.get(run_id)
        if current is None or current.status in ENDED or self._forget_if_gone(run_id):
            return None
        if current.status == RUNNING:
            try:
                with fsrights.as_owner_of(self.run_dir(run_id)):
                    shimlib.write_end(self.run_dir(run_id), 1, rundir.now_us())
            except Exception as e:  # noqa: BLE001 - the index still records the end
                log.error("run %s: cannot record its end in its run dir: %s", run_id[:8], daemonlog.describe(e))
        return self.apply(run_id, ERROR, via=PENDING if current.status == STAGED else None, dir_refusable=True)

    def _forget_if_gone(self, run_id: str) -> bool:
        """On the I/O thread: True, with the run dropped from the index, when its dir is gone
        (removed by hand while it ran: a user's delete, as the index's sync reads any dir
        gone). Its end is recorded nowhere: writing it would make the dir again."""
        try:
            os.lstat(self.run_dir(run_id))
            return False
        except FileNotFoundError:
            pass
        except OSError:
            return False  # there, but not to be looked at: not removed
        self.store.delete(run_id)
        log.info("run %s: its run dir was removed: the run is forgotten", run_id[:8])
        self.loop.call_soon_threadsafe(self.wake, run_id)
        return True

    def _notify(self, run_id: str, new: str) -> None:
        log.info("run %s: %s", run_id[:8], new)
        self.wake(run_id)
        for listener in self._listeners:
            listener(run_id, new)

    def listen(self, fn: Callable[[str, str], None]) -> None:
        """Calls `fn(run_id, status)` on the event loop after each transition."""
        self._listeners.append(fn)

    def wake(self, run_id: str) -> None:
        """Wakes whoever waits for a change of the run (its status, or its output)."""
        event = self._changes.pop(run_id, None)
        if event is not None:
            event.set()

    async def wait_change(self, run_id: str, timeout: float = CHANGE_WAIT) -> None:
        """Waits until the run changes (see wake), or `timeout` seconds."""
        event = self._changes.setdefault(run_id, asyncio.Event())
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except asyncio.TimeoutError:
            pass
