"""What the runs that drive child runs (a pipeline's steps, a batch's trials) use of the
daemon, and the helpers both share: their output lines, the links to their children, and
waiting for a child's end."""

import dataclasses
import json
import os
from typing import Any, Awaitable, Callable, Optional, Sequence

from guild_common import rundir
from guild_common.pb import guild_pb2 as pb
from guildd import fsrights, outputs, runstate
from guildd.drivers import Drivers
from guildd.runstate import RunStates
from guildd.runtime import Runtime
from guildd.store import RunRecord, Store


@dataclasses.dataclass(frozen=True)
class Parents:
    """The collaborators of a pipeline's or a batch's loop."""

    runtime: Runtime
    store: Store
    states: RunStates
    drivers: Drivers
    run_dir: Callable[[str], "str | os.PathLike"]
    follow: Callable[[str, int], None]  # follows a parent's output from an offset
    start_run: Callable[[pb.RunSpec, bool, str], Awaitable[RunRecord]]  # (spec, stage, user)
    stop_runs: Callable[[Sequence[str]], Awaitable[Any]]
    end: Callable[[str, int], Awaitable[None]]  # records a parent's end, given its exit status
    scalars: Callable[[str], Awaitable[list]]  # a run's scalar summaries, all indexed

    async def say(self, run_dir: "str | os.PathLike", line: str) -> None:
        """A line of guildd's own in a parent's output (stderr, as Guild logs them)."""
        await self.runtime.work(outputs.append_line, run_dir, line)

    async def wait_end(self, run_id: str, parent_dir: "Optional[str | os.PathLike]" = None, offset: int = 0) -> Optional[RunRecord]:
        """Waits for a child run to end, copying its output from `offset` into the parent's as
        it grows (a Guild pipeline's output holds its steps' output, so `guildctl run
        PIPELINE` shows it); without a parent dir, only waits. None if the run is gone."""
        child_dir = self.run_dir(run_id)
        while True:
            rec = await self.runtime.io(self.store.get, run_id)
            if parent_dir is not None:
                offset = await self.runtime.work(_copy_new_output, child_dir, parent_dir, offset)
            if rec is None or rec.status not in runstate.ACTIVE:
                return rec
            await self.states.wait_change(run_id)


# How much of each child's output is in the parent's: a daemon that resumes the parent after a
# restart copies from there, so what the child printed while no daemon ran is not lost.
COPIED_FILE = "children-copied"


def _copy_new_output(child_dir: "str | os.PathLike", parent_dir: "str | os.PathLike", offset: int) -> int:
    """Copies a child's output from `offset` into its parent's (both read and written with
    the parent's owner's rights: a child's output linked to a root-only file stays unread),
    then records how far it has copied."""
    with fsrights.as_owner_of(parent_dir):
        copied = _copy_output(child_dir, parent_dir, offset)
        if copied != offset:
            # After the append: a crash in between copies that part twice, never loses it.
            record = {**_copied_record(parent_dir), os.path.basename(child_dir): copied}
            rundir.write_atomic(rundir.guild_dir(parent_dir) / COPIED_FILE, json.dumps(record).encode())
        return copied


def copied(parent_dir: "str | os.PathLike", child_id: str) -> Optional[int]:
    """How much of a child's output its parent holds (with the parent's owner's rights);
    None when not recorded (a parent from before this record was kept)."""
    with fsrights.as_owner_of(parent_dir):
        value = _copied_record(parent_dir).get(child_id)
    return value if isinstance(value, int) and value >= 0 else None


def _copied_record(parent_dir: "str | os.PathLike") -> dict[str, Any]:
    try:
        data = json.loads(rundir.read_regular(rundir.guild_dir(parent_dir) / COPIED_FILE))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _copy_output(child_dir: "str | os.PathLike", parent_dir: "str | os.PathLike", offset: int) -> int:
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


def linked(run_dir: "str | os.PathLike", name: str) -> Optional[str]:
    """The id of the child run linked into `run_dir` as `name`, or None."""
    try:
        return os.path.basename(os.readlink(os.path.join(run_dir, name)))
    except OSError:
        return None


def link(run_dir: "str | os.PathLike", name: str, child_id: str) -> None:
    """Links a child run's dir into its parent's as `name` (kept if there already), with the
    parent's owner's rights."""
    path = os.path.join(run_dir, name)
    with fsrights.as_owner_of(run_dir):
        if not os.path.lexists(path):
            os.symlink(os.path.join("..", child_id), path)
