"""Start-up: bringing the index in line with the run dirs, adopting runs that are still
alive, and recording the end of those that ended while no daemon was watching. The index
sync is also what notices run dirs added or removed by hand (cheap when nothing changed)."""

import logging
import os

from guild_common import rundir
from guildd import batches, executor as execlib, manage, pipeline, runstate

log = logging.getLogger("guildd")


async def reconcile(daemon):
    """Brings the index in line with the run dirs, then adopts runs that are still alive
    and records the end of those that ended while the daemon was away."""
    await daemon.io(daemon._sync_index)
    await daemon.queue.load()
    active, _ = await daemon.io(daemon.store.list, tuple(runstate.ACTIVE))
    for rec in active:
        if rec.id in daemon.queue.entries:
            continue  # pending in the queue: it waits for its resources still
        shim = execlib.Shim(rec.shim_pid, rec.shim_started)
        run_dir = daemon.run_dir(rec.id)
        lock_pid = await daemon.io(rundir.read_lock_pid, run_dir)
        op = await daemon.io(rundir.read_attr, run_dir, "op")
        scalar_config = op.get("output-scalars") if isinstance(op, dict) else None
        if rec.status == runstate.RUNNING and execlib.shim_alive(shim):
            log.info("adopting run %s (shim pid %s)", rec.id[:8], shim.pid)
            daemon.follow(rec.id, rec.scalar_offset, scalar_config)
            daemon.executor.watch(rec.id, shim.pid)
        elif rec.status == runstate.RUNNING and lock_pid and execlib.pid_alive(lock_pid):
            log.info("adopting run %s (pid %s)", rec.id[:8], lock_pid)
            daemon.follow(rec.id, rec.scalar_offset, scalar_config)
            daemon.executor.watch(rec.id, lock_pid)
        elif rec.status == runstate.RUNNING and await daemon.io(batches.read_spec, run_dir) is not None:
            await daemon.resume_batch(rec)
        elif rec.status == runstate.RUNNING and (steps := await daemon.io(pipeline.read_steps, run_dir)) is not None:
            log.info("resuming pipeline %s", rec.id[:8])
            await pipeline.resume(daemon, rec, steps)
        elif rec.status == runstate.RUNNING:
            daemon.follow(rec.id, rec.scalar_offset, scalar_config)
            await daemon.finish_run(rec.id)
        else:
            log.info("run %s was pending when the daemon stopped: marking it error", rec.id[:8])
            await daemon.io(rundir.write_attr, run_dir, "exit_status", 1)
            await daemon.transition(rec.id, runstate.RUNNING)
            await daemon.transition(rec.id, runstate.ERROR)

def sync_index(daemon):
    """Adds run dirs the index lacks and drops index rows whose dirs are gone, for the
    runs dir and the trash. Cheap when nothing changed: it compares the dirs' mtimes."""
    seen = []
    for deleted, base in ((False, daemon.runs_dir), (True, manage.trash_runs_dir(daemon.home))):
        try:
            mtime = os.stat(base).st_mtime_ns
        except FileNotFoundError:
            mtime = 0
        seen.append(mtime)
        if daemon.dir_mtimes.get(deleted) == mtime:
            continue
        on_disk = set()
        if mtime:
            on_disk = {e.name for e in os.scandir(base) if manage.RUN_ID.match(e.name) and e.is_dir()}
        indexed = daemon.store.ids(deleted=deleted)
        for run_id in indexed - on_disk:
            daemon.store.delete(run_id)
        added = 0
        new_ids = sorted(on_disk - indexed)
        if len(new_ids) > 1000:
            daemon.state = f"indexing {len(new_ids)} runs found on disk"
        for start in range(0, len(new_ids), 1000):
            with daemon.store.transaction():  # one commit per thousand runs, not per run
                for run_id in new_ids[start : start + 1000]:
                    if rundir.attrs_dir(base / run_id).is_dir():
                        manage.index_run_dir(daemon.store, base / run_id, execlib.pid_alive, deleted=deleted)
                        added += 1
            if len(new_ids) > 1000:
                log.info("indexed %d of %d runs found on disk", min(start + 1000, len(new_ids)), len(new_ids))
        if added or indexed - on_disk:
            log.info("index: %d run(s) found on disk, %d gone", added, len(indexed - on_disk))
        daemon.dir_mtimes[deleted] = mtime
