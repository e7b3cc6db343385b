"""Start-up: bringing the index in line with the run dirs, adopting runs that are still
alive, and recording the end of those that ended while no daemon was watching. The index
sync is also what notices run dirs added or removed by hand (cheap when nothing changed)."""

import asyncio
import logging
import os

from guild_common import errors, rundir
from guildd import batches, daemonlog, executor as execlib, manage, outputs, pipeline, runstate

log = logging.getLogger("guildd")


async def reconcile(daemon):
    """Brings the index in line with the run dirs, then adopts runs that are still alive
    and records the end of those that ended while the daemon was away. One run that can't be
    taken back (a bad config, damaged attrs, unreadable files) ends as an error, with the
    reason in the log: it never stops the daemon from starting."""
    await daemon.io(daemon._sync_index)
    await daemon.queue.load()
    active, _ = await daemon.io(daemon.store.list, tuple(runstate.ACTIVE))
    for rec in active:
        if rec.id in daemon.queue.entries:
            continue  # pending in the queue: it waits for its resources still
        try:
            await _reconcile_run(daemon, rec)
        except Exception as e:  # noqa: BLE001 - one damaged run is ended, the rest go on
            await end_damaged(daemon, rec.id, e, "at start-up")


async def _reconcile_run(daemon, rec):
    """One active run after a restart: adopted, resumed, or its end recorded."""
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
        if not isinstance(await daemon.io(rundir.read_attr, run_dir, "exit_status"), int):
            log.warning("run %s: its process ended while no daemon watched, recording no end: marking it error", rec.id[:8])
        daemon.follow(rec.id, rec.scalar_offset, scalar_config)
        await daemon.finish_run(rec.id)
    else:
        log.info("run %s was pending when the daemon stopped: marking it error", rec.id[:8])
        await daemon.io(rundir.write_attr, run_dir, "exit_status", 1)
        await daemon.transition(rec.id, runstate.RUNNING)
        await daemon.transition(rec.id, runstate.ERROR)


async def end_damaged(daemon, run_id: str, e: BaseException, when: str) -> None:
    """Ends a run the daemon could not take back or go on with (`when`: at start-up, when
    the queue started it, when its process ended): status error, and why in the log and at
    the end of the run's output. Each step is tried on its own: the run dir may refuse
    writes. A run whose end is recorded already is left as it is."""
    reason = daemonlog.describe(e)
    daemon.batches.pop(run_id, None)
    daemon.pipelines.pop(run_id, None)
    follower = daemon.followers.pop(run_id, None)
    if follower is not None:
        follower.stop()
        await asyncio.gather(*[t for t in (follower.task,) if t], return_exceptions=True)
        await daemon.work(follower.reader.close)
    current = await daemon.io(daemon.store.get, run_id)
    if current is None or current.status in runstate.ENDED:
        return  # it failed after its end was recorded
    log.error("run %s: cannot go on with it %s (%s): marking it error", run_id[:8], when, reason,
              exc_info=None if isinstance(e, errors.GuildError) else e)
    try:
        await daemon.io(_record_end, daemon.run_dir(run_id), f"guildd: run ended as an error {when}: {reason}")
    except Exception as write_error:  # noqa: BLE001 - the index still records the end
        log.error("run %s: cannot record its end in its run dir: %s", run_id[:8], daemonlog.describe(write_error))
    try:
        # A staged run goes through pending: a run that never started ends as pending -> error.
        via = runstate.PENDING if current.status == runstate.STAGED else None
        await daemon.transition(run_id, runstate.ERROR, via=via)
    except Exception:  # noqa: BLE001 - the daemon serves on; the run stays as it was listed
        log.exception("run %s: cannot mark it error", run_id[:8])


def _record_end(run_dir, line):
    outputs.append(run_dir, (line + "\n").encode(), stderr=True)  # its process is gone: no other writer
    rundir.write_attrs(run_dir, {"exit_status": 1, "stopped": rundir.now_us()})


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
