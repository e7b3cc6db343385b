"""Start-up: bringing the index in line with the run dirs, adopting runs that are still
alive, and recording the end of those that ended while no daemon was watching (the index
sync itself is guildd.catalog's)."""

import logging
from typing import Any, Callable

from guild_common import rundir
from guildd import batches, executor as execlib, fsrights, pipeline, runstate
from guildd.launcher import Launcher
from guildd.queue import Queue
from guildd.store import RunRecord

log = logging.getLogger("guildd")


async def reconcile(launcher: Launcher, queue: Queue, sync_index: Callable[[], None]) -> None:
    """Brings the index in line with the run dirs (`sync_index`, on the I/O thread), then
    adopts runs that are still alive and records the end of those that ended while the daemon
    was away. One run that can't be taken back (a bad config, damaged attrs, unreadable files)
    ends as an error, with the reason in the log: it never stops the daemon from starting."""
    runtime = launcher.runtime
    await runtime.io(sync_index)
    await queue.load()
    active, _ = await runtime.io(launcher.store.list, tuple(runstate.ACTIVE))
    for rec in active:
        if rec.id in queue.entries:
            continue  # pending in the queue: it waits for its resources still
        try:
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
    if rec.status == runstate.RUNNING and execlib.shim_alive(shim):
        log.info("adopting run %s (shim pid %s)", rec.id[:8], shim.pid)
        launcher.adopt(rec.id, shim.pid, rec.scalar_offset, scalar_config)
    elif rec.status == runstate.RUNNING and lock_pid and execlib.pid_alive(lock_pid) and await io(fsrights.adoptable, lock_pid, run_dir):
        log.info("adopting run %s (pid %s)", rec.id[:8], lock_pid)
        launcher.adopt(rec.id, lock_pid, rec.scalar_offset, scalar_config)
    elif rec.status == runstate.RUNNING and (batch := await read(batches.read_spec)) is not None:
        launcher.resume_batch(rec, batch)
    elif rec.status == runstate.RUNNING and (steps := await read(pipeline.read_steps)) is not None:
        launcher.resume_pipeline(rec, steps)
    elif rec.status == runstate.RUNNING:
        if not isinstance(await read(rundir.read_attr, "exit_status"), int):
            log.warning("run %s: its process ended while no daemon watched, recording no end: marking it error", rec.id[:8])
        launcher.followers.follow(rec.id, rec.scalar_offset, scalar_config)
        await launcher.finish_run(rec.id)
    else:
        # Never started: it ends through the table's direct edge, with no start time.
        log.info("run %s was pending when the daemon stopped: marking it error", rec.id[:8])
        await launcher.states.transition(rec.id, runstate.ERROR)
