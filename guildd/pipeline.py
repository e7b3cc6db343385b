"""Pipelines: an operation whose `steps` run as child runs, in order, under a parent run.

The parent has no process of its own: the daemon writes its output (one line per step), links
each step's run dir into it by the step's name, and ends it as the steps end: completed when
all complete, error (naming the step) when one fails, terminated when stopped.

The steps' specs are kept in the parent's `.guild/pipeline-steps` (protobuf), so a pipeline that
was running when the daemon stopped goes on after a restart: steps already linked are waited
for (or passed, if they completed), the rest start as usual.
"""

import os

from guild_common import rundir
from guild_common.pb import guild_pb2 as pb
from guildd import outputs, runstate

STEPS_FILE = "pipeline-steps"


async def start(daemon, run_id, steps, user):
    await daemon.io(_write_steps, daemon.run_dir(run_id), steps)
    rec = await daemon.transition(run_id, runstate.RUNNING)
    _go(daemon, rec, steps, user, resuming=False)
    return rec


async def stage(daemon, run_id, steps):
    """A staged pipeline: its steps are kept until it is started (see Daemon.restart_run)."""
    await daemon.io(_write_steps, daemon.run_dir(run_id), steps)


def read_steps(run_dir):
    """A pipeline run's steps, or None when the run isn't a pipeline."""
    try:
        data = (rundir.guild_dir(run_dir) / STEPS_FILE).read_bytes()
    except FileNotFoundError:
        return None
    return list(pb.RunSpec.FromString(data).steps)


def _write_steps(run_dir, steps):
    (rundir.guild_dir(run_dir) / STEPS_FILE).write_bytes(pb.RunSpec(steps=steps).SerializeToString())


async def resume(daemon, rec, steps):
    """After a daemon restart: the pipeline goes on from its last linked step."""
    _go(daemon, rec, steps, rec.user, resuming=True)


def _go(daemon, rec, steps, user, resuming):
    """Follows a running pipeline's output and starts its loop."""
    daemon.follow(rec.id, rec.scalar_offset)
    daemon.pipelines[rec.id] = None
    daemon.spawn(_run(daemon, rec.id, steps, user, resuming), name=f"pipeline-{rec.id[:8]}")


async def _run(daemon, run_id, steps, user, resuming=False):
    run_dir = daemon.run_dir(run_id)
    exit_status = 0
    try:
        for step in steps:
            if daemon.pipelines.get(run_id) == "stopping":
                exit_status = -15
                break
            child_id = await daemon.io(_linked, run_dir, step.name) if resuming else None
            offset = 0
            if child_id is not None:
                # Started before the restart: its output so far is already in ours.
                offset = await daemon.io(rundir.output_size, daemon.run_dir(child_id))
            else:
                try:
                    # Not cut by a shutdown: a step started but not linked would run again.
                    child_id = await daemon.critical(_start_step(daemon, run_dir, step, user))
                except Exception as e:  # the step could not start: the pipeline fails at it
                    await daemon.work(say, run_dir, f"ERROR: [guild] step {step.name} could not start: {e}")
                    exit_status = 1
                    break
            daemon.pipelines[run_id] = child_id
            ended = await wait_end(daemon, child_id, run_dir, offset)
            if ended is None or ended.status != runstate.COMPLETED:
                stopped = daemon.pipelines.get(run_id) == "stopping" or (ended and ended.status == runstate.TERMINATED)
                exit_status = -15 if stopped else 1
                status = ended.status if ended else "deleted"
                await daemon.work(say, run_dir, f"ERROR: [guild] step {step.name} ({child_id[:8]}) ended with status {status}")
                break
    finally:
        daemon.pipelines.pop(run_id, None)
    # Not reached when cancelled (the daemon is shutting down): the pipeline stays running,
    # and the next daemon resumes it as after a crash.
    await daemon.critical(daemon.end_parentless(run_id, exit_status))


async def _start_step(daemon, run_dir, step, user):
    """Starts a step's run and links it into the pipeline; returns the run's id."""
    await daemon.work(say, run_dir, f"INFO: [guild] running {step.name}: {step.spec.op_name}")
    child_id = (await daemon.start_run(step.spec, False, user)).id
    await daemon.io(link, run_dir, step.name, child_id)
    return child_id


async def wait_end(daemon, run_id, parent_dir=None, offset=0):
    """Waits for a step's run to end, copying its output from `offset` into the parent's as
    it grows (a Guild pipeline's output holds its steps' output, so `guildctl run PIPELINE`
    shows it); without a parent dir, only waits. None if the run is gone."""
    child_dir = daemon.run_dir(run_id)
    while True:
        rec = await daemon.io(daemon.store.get, run_id)
        if parent_dir is not None:
            offset = await daemon.work(_copy_new_output, child_dir, parent_dir, offset)
        if rec is None or rec.status not in runstate.ACTIVE:
            return rec
        await daemon.wait_change(run_id)


def _copy_new_output(child_dir, parent_dir, offset):
    try:
        with open(rundir.output_path(child_dir), "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return offset
    # What the step wrote to stderr stays stderr in the pipeline's output.
    for is_stderr, part in outputs.Streams(child_dir).split(offset, data):
        outputs.append(parent_dir, part, stderr=is_stderr)
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
    outputs.append(run_dir, (line + "\n").encode(), stderr=True)


def _linked(run_dir, name):
    try:
        return os.path.basename(os.readlink(os.path.join(run_dir, name)))
    except OSError:
        return None


def link(run_dir, name, child_id):
    link = os.path.join(run_dir, name)
    if not os.path.lexists(link):
        os.symlink(os.path.join("..", child_id), link)
