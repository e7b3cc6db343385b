"""Pipelines: an operation whose `steps` run as child runs, in order, under a parent run.

The parent has no process of its own: the daemon writes its output (one line per step), links
each step's run dir into it by the step's name, and ends it as the steps end: completed when
all complete, error (naming the step) when one fails, terminated when stopped.

The steps' specs are kept in the parent's `.guild/pipeline-steps` (protobuf), so a pipeline that
was running when the daemon stopped goes on after a restart: steps already linked are waited
for (or passed, if they completed), a step the daemon made but was killed before linking is
found and linked (children.STARTING_FILE), the rest start as usual.
"""

import os

from guild_common import rundir
from guild_common.pb import guild_pb2 as pb
from guildd import children, fsrights, runstate
from guildd.children import Parents
from guildd.drivers import PipelineDriver
from guildd.store import RunRecord

STEPS_FILE = "pipeline-steps"


async def start(parents: Parents, run_id: str, steps: list, user: str) -> RunRecord:
    """Starts a pending pipeline run: its steps kept in its dir, then its loop."""
    await parents.runtime.io(_write_steps, parents.run_dir(run_id), steps)
    rec = await parents.states.transition(run_id, runstate.RUNNING)
    _go(parents, rec, steps, user, resuming=False)
    return rec


async def stage(parents: Parents, run_id: str, steps: list) -> None:
    """A staged pipeline: its steps are kept until it is started (see restarts.restart_run)."""
    await parents.runtime.io(_write_steps, parents.run_dir(run_id), steps)


def read_steps(run_dir: "str | os.PathLike") -> "list | None":
    """A pipeline run's steps, or None when the run isn't a pipeline."""
    try:
        # read_regular: the run dir is its owner's, and a FIFO there must not hold the I/O thread.
        data = rundir.read_regular(rundir.guild_dir(run_dir) / STEPS_FILE)
    except OSError:
        return None
    return list(pb.RunSpec.FromString(data).steps)


def _copied_so_far(parents: Parents, run_dir: "str | os.PathLike", child_id: str) -> int:
    """How much of a step's output the pipeline's holds. Not recorded: none of it yet (the
    daemon was killed before its first copy), unless the pipeline is older than the records
    (it has no STARTING_FILE either), whose output holds the step's as far as it is now."""
    recorded = children.copied(run_dir, child_id)
    if recorded is not None:
        return recorded
    return 0 if children.keeps_records(run_dir) else rundir.output_size(parents.run_dir(child_id))


def _write_steps(run_dir: "str | os.PathLike", steps: list) -> None:
    with fsrights.as_owner_of(run_dir):  # the owner's dir: written with their rights
        (rundir.guild_dir(run_dir) / STEPS_FILE).write_bytes(pb.RunSpec(steps=steps).SerializeToString())


def resume(parents: Parents, rec: RunRecord, steps: list) -> None:
    """After a daemon restart: the pipeline goes on from its last linked step."""
    _go(parents, rec, steps, rec.user, resuming=True)


def _go(parents: Parents, rec: RunRecord, steps: list, user: str, resuming: bool) -> None:
    """Follows a running pipeline's output and starts its loop."""
    parents.follow(rec.id, rec.scalar_offset)
    driver = PipelineDriver(rec.id, parents.drivers)
    parents.drivers.add(driver)
    parents.runtime.spawn(_run(parents, driver, steps, user, resuming), name=f"pipeline-{rec.id[:8]}")


async def _run(parents: Parents, driver: PipelineDriver, steps: list, user: str, resuming: bool = False) -> None:
    run_id = driver.run_id
    run_dir = parents.run_dir(run_id)
    exit_status = 0
    try:
        if resuming:
            await parents.relink(run_dir)  # a step a killed daemon made and did not link
        for step in steps:
            if driver.stopping:
                exit_status = -15
                break
            child_id = await parents.runtime.io(children.linked, run_dir, step.name) if resuming else None
            offset = 0
            if child_id is not None:
                # Started before the restart (or made and not started: started now): its output
                # is in ours as far as it was copied (an older pipeline without that record: as
                # far as it is now).
                await parents.start_made(child_id, step.spec, user)
                offset = await parents.runtime.io(_copied_so_far, parents, run_dir, child_id)
            else:
                try:
                    # Not cut by a shutdown: a step started but not linked would run again.
                    child_id = await parents.runtime.critical(_start_step(parents, run_dir, step, user))
                except Exception as e:  # the step could not start: the pipeline fails at it
                    await parents.say(run_dir, f"ERROR: [guild] step {step.name} could not start: {e}")
                    exit_status = 1
                    break
            driver.step = child_id
            if driver.stopping:  # asked while the step was starting: it stops too
                await parents.stop_runs([child_id])
            ended = await parents.wait_end(child_id, run_dir, offset)
            if ended is None or ended.status != runstate.COMPLETED:
                stopped = driver.stopping or (ended and ended.status == runstate.TERMINATED)
                exit_status = -15 if stopped else 1
                status = ended.status if ended else "deleted"
                await parents.say(run_dir, f"ERROR: [guild] step {step.name} ({child_id[:8]}) ended with status {status}")
                break
    finally:
        parents.drivers.remove(driver)
    # Not reached when cancelled (the daemon is shutting down): the pipeline stays running,
    # and the next daemon resumes it as after a crash.
    await parents.runtime.critical(parents.end(run_id, exit_status))


async def _start_step(parents: Parents, run_dir: "str | os.PathLike", step: pb.StepSpec, user: str) -> str:
    """Starts a step's run and links it into the pipeline; returns the run's id."""
    await parents.say(run_dir, f"INFO: [guild] running {step.name}: {step.spec.op_name}")
    return (await parents.start_child(run_dir, step.name, step.spec, False, user)).id
