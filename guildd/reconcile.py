"""Start-up: bringing the index in line with the run dirs, adopting runs that are still
alive, and recording the end of those that ended while no daemon was watching (the index
sync itself is guildd.catalog's)."""

import logging
from typing import Any, Callable

from guild_common import home as homelib, rundir
from guildd import batchspec, catalog, children, daemonlog, executor as execlib, fsrights, outputs, pipeline, runstate
from guildd.launcher import Launcher
from guildd.queue import Queue
from guildd.store import RunRecord

log = logging.getLogger("guildd")

ENDED_UNWATCHED = ("guildd: run ended as an error: its process ended while no daemon watched, with no end recorded "
                   "(the daemon and the run were killed, or the machine went down)")


async def reconcile(launcher: Launcher, queue: Queue, sync_index: Callable[[], None], started_us: int) -> None:
    """Removes the run dirs a killed daemon left half-made (before `started_us`, this
    daemon's start), brings the index in line with the run dirs (`sync_index`, on the I/O
    thread), then adopts runs that are still alive and records the end of those that ended
    while the daemon was away. One run that can't be taken back (a bad config, damaged attrs, unreadable files)
    ends as an error, with the reason in the log: it never stops the daemon from starting."""
    runtime = launcher.runtime
    # Dirs a killed daemon began to make are no runs: gone before the sync would see them.
    await runtime.io(catalog.remove_half_made, homelib.runs_dir(launcher.home), started_us)
    await runtime.io(sync_index)
    await queue.load()
    active, _ = await runtime.io(launcher.store.list, tuple(runstate.ACTIVE))
    for rec in active:
        if rec.id in queue.entries:
            continue  # pending in the queue: it waits for its resources still
        try:
            if rec.status == runstate.PENDING and await _made_by_a_parent(launcher, rec, active):
                # A trial or step a killed daemon made but did not start: its parent, resumed, starts it.
                log.info("run %s was made by a batch or pipeline but not started: its parent starts it", rec.id[:8])
                continue
            await _reconcile_run(launcher, rec)
        except Exception as e:  # noqa: BLE001 - one damaged run is ended, the rest go on
            await launcher.end_damaged(rec.id, e, "at start-up")


async def _reconcile_run(launcher: Launcher, rec: RunRecord) -> None:
    """One active run after a restart: adopted, resumed, or its end recorded."""
    io = launcher.runtime.io
    shim = execlib.Shim(rec.shim_pid, rec.shim_started)
    run_dir = launcher.run_dir(rec.id)

    async def read(fn: Callable[..., Any], *args: Any) -> Any:
        """fn(run_dir, *args) on the I/O thread, with the rights of the run dir's owner: its
        files are hers (guildd.fsrights)."""
        return await io(fsrights.call_as_owner_of, run_dir, fn, run_dir, *args)

    lock_pid = await read(rundir.read_lock_pid)
    op = await read(rundir.read_attr, "op")
    scalar_config = op.get("output-scalars") if isinstance(op, dict) else None
    # A run on Ray is pending, its shim started, until its job runs: it is taken back as a
    # running run is, and stays pending until its follower sees the job run.
    pending = rec.status == runstate.PENDING
    started = rec.status == runstate.RUNNING or (pending and isinstance(op, dict) and bool(op.get("executor")))
    if started and execlib.shim_alive(shim):
        log.info("adopting run %s (shim pid %s)", rec.id[:8], shim.pid)
        launcher.adopt(rec.id, shim.pid, rec.scalar_offset, scalar_config, pending)
    elif started and lock_pid and await _adoptable(launcher, rec, lock_pid):
        log.info("adopting run %s (pid %s)", rec.id[:8], lock_pid)
        launcher.adopt(rec.id, lock_pid, rec.scalar_offset, scalar_config, pending)
    elif rec.status == runstate.RUNNING and (batch := await read(batchspec.read_spec)) is not None:
        launcher.resume_batch(rec, batch)
    elif rec.status == runstate.RUNNING and (steps := await read(pipeline.read_steps)) is not None:
        launcher.resume_pipeline(rec, steps)
    elif started and await launcher.reattach(rec, scalar_config):
        log.info("run %s: its Ray job followed again", rec.id[:8])  # shim and follower were gone (guildd.rayjobs)
    elif started:
        if not isinstance(await read(rundir.read_attr, "exit_status"), int):
            log.warning("run %s: its process ended while no daemon watched, recording no end: marking it error", rec.id[:8])
            try:  # said where the user looks, not only in the daemon's log
                await read(outputs.append_line, ENDED_UNWATCHED)
            except OSError as e:
                log.warning("run %s: cannot add why it ended to its output: %s", rec.id[:8], daemonlog.describe(e))
        launcher.followers.follow(rec.id, rec.scalar_offset, scalar_config)
        await launcher.finish_run(rec.id)
    else:
        # Never started: it ends through the table's direct edge, with no start time.
        log.info("run %s was pending when the daemon stopped: marking it error", rec.id[:8])
        await launcher.states.transition(rec.id, runstate.ERROR)


async def _adoptable(launcher: Launcher, rec: RunRecord, pid: int) -> bool:
    """Whether the live process `pid` (from the run's LOCK) is the run's to adopt, and so to
    signal at a stop: its owner's (fsrights.adoptable) and not a later process that got its
    pid after a reboot (executor.born_with_run); a reused pid is logged."""
    run_dir = launcher.run_dir(rec.id)
    if not execlib.pid_alive(pid) or not await launcher.runtime.io(fsrights.adoptable, pid, run_dir):
        return False
    if execlib.born_with_run(pid, rec.started_us, run_dir):
        return True
    log.warning("run %s: pid %s in its LOCK is another process now (its pid reused): not adopting it", rec.id[:8], pid)
    return False


async def _made_by_a_parent(launcher: Launcher, rec: RunRecord, active: list[RunRecord]) -> bool:
    """Whether a pending run is a child a running batch or pipeline made and has not started:
    linked into it, or the one it was making (children.STARTING_FILE) when the daemon died."""
    io = launcher.runtime.io
    for parent in active:
        if parent.status != runstate.RUNNING or parent.id == rec.id:
            continue
        parent_dir = launcher.run_dir(parent.id)
        linked = await io(children.linked_ids, parent_dir)
        if rec.id in linked:
            return True
        starting = await io(children.read_starting, parent_dir)
        if (starting is not None and await io(children.linked, parent_dir, starting.name) is None
                and children.made_child(active, starting, linked) == rec.id):
            return True  # as children.Parents.relink will find it
    return False
