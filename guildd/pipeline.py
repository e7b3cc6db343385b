"""Pipelines: an operation whose `steps` run as child runs, in order, under a parent run.

The parent has no process of its own: the daemon writes its output (one line per step), links
each step's run dir into it by the step's name, and ends it as the steps end: completed when
all complete, error (naming the step) when one fails, terminated when stopped.
"""

import os

from guild_common import rundir
from guildd import runstate


async def start(daemon, run_id, steps, user):
    rec = await daemon.transition(run_id, runstate.RUNNING)
    daemon.follow(run_id, rec.scalar_offset)
    daemon.pipelines[run_id] = None
    daemon.spawn(_run(daemon, run_id, steps, user), name=f"pipeline-{run_id[:8]}")
    return rec


async def _run(daemon, run_id, steps, user):
    run_dir = daemon.run_dir(run_id)
    exit_status = 0
    try:
        for step in steps:
            if daemon.pipelines.get(run_id) == "stopping":
                exit_status = -15
                break
            await daemon.work(say, run_dir, f"INFO: [guild] running {step.name}: {step.spec.op_name}")
            try:
                child = await daemon.start_run(step.spec, False, user)
            except Exception as e:  # the step could not start: the pipeline fails at it
                await daemon.work(say, run_dir, f"ERROR: [guild] step {step.name} could not start: {e}")
                exit_status = 1
                break
            daemon.pipelines[run_id] = child.id
            await daemon.io(link, run_dir, step.name, child.id)
            ended = await wait_end(daemon, child.id, run_dir)
            if ended.status != runstate.COMPLETED:
                stopped = daemon.pipelines.get(run_id) == "stopping" or ended.status == runstate.TERMINATED
                exit_status = -15 if stopped else 1
                await daemon.work(say, run_dir, f"ERROR: [guild] step {step.name} ({child.id[:8]}) ended with status {ended.status}")
                break
    finally:
        daemon.pipelines.pop(run_id, None)
        await daemon.end_parentless(run_id, exit_status)


async def wait_end(daemon, run_id, parent_dir=None):
    """Waits for a step's run to end, copying its output into the parent's as it grows (a
    Guild pipeline's output holds its steps' output, so `guildctl run PIPELINE` shows it);
    without a parent dir, only waits."""
    child_output = rundir.output_path(daemon.run_dir(run_id))
    offset = 0
    while True:
        rec = await daemon.io(daemon.store.get, run_id)
        if parent_dir is not None:
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


def say(run_dir, line):
    with open(rundir.output_path(run_dir), "a") as f:
        f.write(line + "\n")


def link(run_dir, name, child_id):
    link = os.path.join(run_dir, name)
    if not os.path.lexists(link):
        os.symlink(os.path.join("..", child_id), link)
