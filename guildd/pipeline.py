"""Pipelines: an operation whose `steps` run as child runs, in order, under a parent run.

The parent has no process of its own: the daemon writes its output (one line per step), links
each step's run dir into it by the step's name, and ends it as the steps end: completed when
all complete, error (naming the step) when one fails, terminated when stopped.
"""

import os

from guild_common import rundir
from guildd import runstate


async def start(daemon, run_id, steps, user, batch=False):
    rec = await daemon.transition(run_id, runstate.RUNNING)
    daemon.follow(run_id, rec.scalar_offset)
    daemon.pipelines[run_id] = None
    daemon.spawn(_run(daemon, run_id, steps, user, batch), name=f"pipeline-{run_id[:8]}")
    return rec


async def _run(daemon, run_id, steps, user, batch):
    run_dir = daemon.run_dir(run_id)
    exit_status = 0
    try:
        for step in steps:
            if daemon.pipelines.get(run_id) == "stopping":
                exit_status = -15
                break
            if not batch:
                await daemon.work(_say, run_dir, f"INFO: [guild] running {step.name}: {step.spec.op_name}")
            try:
                child = await daemon.start_run(step.spec, False, user)
                if batch:
                    line = f"INFO: [guild] Running trial {child.id}: {child.op_name} ({child.label})"
                    await daemon.work(_say, run_dir, line)
            except Exception as e:  # the step could not start: the pipeline fails at it
                await daemon.work(_say, run_dir, f"ERROR: [guild] step {step.name} could not start: {e}")
                exit_status = 1
                break
            daemon.pipelines[run_id] = child.id
            await daemon.io(_link, run_dir, step.name, child.id)
            ended = await _wait_end(daemon, child.id, run_dir)
            if ended.status != runstate.COMPLETED:
                stopped = daemon.pipelines.get(run_id) == "stopping" or ended.status == runstate.TERMINATED
                if batch and not stopped:
                    # A batch reports a failed trial and goes on; the batch still completes.
                    await daemon.work(_say, run_dir, f"ERROR: [guild] trial {child.id} exited with an error (see log for details)")
                    continue
                exit_status = -15 if stopped else 1
                await daemon.work(_say, run_dir, f"ERROR: [guild] step {step.name} ({child.id[:8]}) ended with status {ended.status}")
                break
    finally:
        daemon.pipelines.pop(run_id, None)
        await daemon.io(rundir.write_attrs, run_dir, {"exit_status": exit_status, "stopped": rundir.now_us()})
        await daemon.transition(run_id, rundir.status_for_exit_status(exit_status))
        follower = daemon.followers.pop(run_id, None)
        if follower is not None:
            await follower.finish()
        daemon.wake(run_id)
        if exit_status == 0:
            op = await daemon.io(rundir.read_attr, run_dir, "op")
            if isinstance(op, dict) and op.get("delete-on-success"):
                rec = await daemon.io(daemon.store.get, run_id)
                await daemon.delete_runs([rec], permanent=False)


async def _wait_end(daemon, run_id, parent_dir):
    """Waits for a step's run to end, copying its output into the parent's as it grows (a
    Guild pipeline's output holds its steps' output, so `guildctl run PIPELINE` shows it)."""
    child_output = rundir.output_path(daemon.run_dir(run_id))
    offset = 0
    while True:
        rec = await daemon.io(daemon.store.get, run_id)
        offset = await daemon.work(_copy_new_output, child_output, parent_dir, offset)
        if rec.status not in runstate.ACTIVE:
            return rec
        await daemon.wait_change(run_id)


def _copy_new_output(child_output, parent_dir, offset):
    try:
        with open(child_output, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return offset
    if data:
        with open(rundir.output_path(parent_dir), "ab") as f:
            f.write(data)
    return offset + len(data)


def stop(daemon, run_id):
    """Stops a pipeline: its current step, and no further ones. True if it was running."""
    if run_id not in daemon.pipelines:
        return False
    child = daemon.pipelines[run_id]
    daemon.pipelines[run_id] = "stopping"
    if child and child != "stopping" and daemon.executor.signal(child):
        daemon.stopping.add(child)
    return True


def _say(run_dir, line):
    with open(rundir.output_path(run_dir), "a") as f:
        f.write(line + "\n")


def _link(run_dir, name, child_id):
    link = os.path.join(run_dir, name)
    if not os.path.lexists(link):
        os.symlink(os.path.join("..", child_id), link)
