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
    start_run: Callable[..., Awaitable[RunRecord]]  # (spec, stage, user, made=a premade dir or None)
    # (run id, spec, user): a child a killed daemon made but did not start, started now
    start_made: Callable[[str, pb.RunSpec, str], Awaitable[None]]
    # (spec, user): a child's dir made ahead of its flag values (guildd.premade); one left unused is discarded
    premake: Callable[[pb.RunSpec, str], Awaitable[Any]]
    discard: Callable[[Any], Awaitable[None]]
    stop_runs: Callable[[Sequence[str]], Awaitable[Any]]
    end: Callable[[str, int], Awaitable[None]]  # records a parent's end, given its exit status
    scalars: Callable[[str], Awaitable[list]]  # a run's scalar summaries, all indexed
    # hears a run's new (key, value, step) scalars until the returned callable is called
    # (watching.Followers.listen; a batch's pruner); by default nothing is heard
    listen: Callable[..., Callable[[], None]] = lambda run_id, listener, prompt=False: lambda: None

    async def say(self, run_dir: "str | os.PathLike", line: str) -> None:
        """A line of guildd's own in a parent's output (stderr, as Guild logs them)."""
        await self.runtime.work(outputs.append_line, run_dir, line)

    async def premake_child(self, parent_dir: "str | os.PathLike", name: str, spec: pb.RunSpec, user: str) -> Any:
        """The dir of the child a parent makes next as `name`, made ahead of its flag values
        (`spec`'s are not used: see guildd.premade), for start_child; STARTING_FILE names it
        already, so start_child has nothing more to write first."""
        made = await self.premake(spec, user)
        starting = Starting(name, spec.op_name, {}, user, rundir.now_us(), made.run_id)
        try:
            await self.runtime.io(_write_starting, parent_dir, starting)
        except BaseException:
            await self.discard(made)
            raise
        return made

    async def start_child(self, parent_dir: "str | os.PathLike", name: str, spec: pb.RunSpec, stage: bool,
                          user: str, made: Any = None) -> RunRecord:
        """Starts (or stages) a child run and links it into its parent as `name`, saying
        first what it is about to make (STARTING_FILE), so that a daemon killed between the
        child's making and its link leaves a child the next one links (relink), never one it
        makes again. `made`: its dir, from premake_child (which said so), or None."""
        if made is None:
            starting = Starting(name, spec.op_name, json.loads(spec.flags_json or "{}"), user, rundir.now_us())
            await self.runtime.io(_write_starting, parent_dir, starting)
        child = await self.start_run(spec, stage, user, made=made)
        await self.runtime.io(link, parent_dir, name, child.id)
        return child

    async def relink(self, parent_dir: "str | os.PathLike") -> None:
        """After a restart: links the child the last daemon made but was killed before
        linking (see start_child), if there is one."""
        starting = await self.runtime.io(read_starting, parent_dir)
        if starting is None or await self.runtime.io(linked, parent_dir, starting.name) is not None:
            return
        records, _ = await self.runtime.io(self.store.list)
        taken = await self.runtime.io(linked_ids, parent_dir)
        child_id = made_child(records, starting, taken)
        if child_id is not None:
            await self.runtime.io(link, parent_dir, starting.name, child_id)

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


# The child a parent is about to make: its link name, op, flag values, user, and a time no
# later than the child's creation (or the id of the dir made for it ahead: guildd.premade).
# Written before the child is made, so the next daemon can tell the child a killed one made
# (and did not link yet) from every other run.
STARTING_FILE = "child-starting"


@dataclasses.dataclass(frozen=True)
class Starting:
    """What STARTING_FILE holds."""

    name: str
    op_name: str
    flags: dict[str, Any]
    user: str
    after_us: int
    run_id: str = ""  # its dir's, made ahead (its flags not known then); "" when not


def made_child(records: Sequence[RunRecord], starting: Starting, taken: "set[str] | frozenset[str]") -> Optional[str]:
    """The run a parent made as `starting` but did not link: the one made in the dir it names,
    else the first one made since with its op, flags and user, that no link of the parent
    names (`taken`); None if there is none (the daemon was killed before the child was made:
    the loop makes it as usual)."""
    if starting.run_id:
        return starting.run_id if starting.run_id not in taken and any(r.id == starting.run_id for r in records) else None
    found = [r for r in records if r.id not in taken and r.op_name == starting.op_name and r.user == starting.user
             and r.created_us >= starting.after_us and r.flags == starting.flags]
    return min(found, key=lambda r: r.created_us).id if found else None


def keeps_records(parent_dir: "str | os.PathLike") -> bool:
    """Whether a parent was run by a daemon that keeps STARTING_FILE and COPIED_FILE (it
    writes the first before its first child)."""
    with fsrights.as_owner_of(parent_dir):
        return os.path.lexists(rundir.guild_dir(parent_dir) / STARTING_FILE)


def _write_starting(parent_dir: "str | os.PathLike", starting: Starting) -> None:
    with fsrights.as_owner_of(parent_dir):
        rundir.write_atomic(rundir.guild_dir(parent_dir) / STARTING_FILE, json.dumps(dataclasses.asdict(starting)).encode())


def read_starting(parent_dir: "str | os.PathLike") -> Optional[Starting]:
    try:
        with fsrights.as_owner_of(parent_dir):
            return Starting(**json.loads(rundir.read_regular(rundir.guild_dir(parent_dir) / STARTING_FILE)))
    except (OSError, ValueError, TypeError):
        return None


def linked_ids(parent_dir: "str | os.PathLike") -> set[str]:
    """The ids of the children linked into a parent (any link name)."""
    with fsrights.as_owner_of(parent_dir):
        try:
            entries = list(os.scandir(str(parent_dir)))
        except OSError:
            return set()
        return {os.path.basename(os.readlink(e.path)) for e in entries if e.is_symlink()}


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
