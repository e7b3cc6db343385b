"""A new run's dir made before its flag values are known: everything its flags don't decide
(the source snapshot, the op and the other attrs, for a batch's trials most of a run's making:
a score of file creations, 5-10 ms). A batch makes its next trial's so while its running trials
run (guildd.batches), and Launcher.create_run finishes it with the flags, the
label and the index row. Part of the launcher (guildd.launcher), kept apart for its size.

Until it is finished it is marked as being made (guildd.catalog): not a run, never listed,
and removed by the next daemon's start if the daemon dies first; one left unused is
discarded.
"""

import dataclasses
import functools
import shutil
from typing import TYPE_CHECKING, Callable

from guild_common import opconfig, rundir
from guild_common.paths import StrPath
from guild_common.pb import guild_pb2 as pb
from guildd import catalog, runs

if TYPE_CHECKING:
    from guildd.launcher import Launcher


@dataclasses.dataclass(frozen=True)
class Premade:
    """A run dir made ahead of its flag values, from a spec (`key`: that spec less its flag
    values, which is all a spec may differ by to be finished in it)."""

    run_id: str
    digest: str  # its source snapshot's
    key: bytes


def spec_key(spec: pb.RunSpec) -> bytes:
    """What of a run spec decides a premade dir: all of it but its flag values."""
    rest = pb.RunSpec()
    rest.CopyFrom(spec)
    rest.ClearField("flags_json")
    rest.ClearField("user_flags_json")
    return rest.SerializeToString(deterministic=True)


async def premake(launcher: "Launcher", spec: pb.RunSpec, user: str) -> Premade:
    """Makes a new run's dir from `spec`, all but its flag values, for create_run to finish."""
    opconfig.check_spec(spec)
    config = opconfig.config_from_spec(spec)
    run_id = rundir.new_run_id()
    run_dir = launcher.run_dir(run_id)
    write = functools.partial(runs.write_run_base, run_dir, run_id, spec, config, user, rundir.now_us())
    digest = await launcher.runtime.io(launcher.changing_dirs, _make, launcher, run_id, write)
    return Premade(run_id, digest, spec_key(spec))


def _make(launcher: "Launcher", run_id: str, write: Callable[[], str]) -> str:
    """On the I/O thread: the dir, marked as being made; removed again if it can't be whole.
    It stays the daemon's until finished (Launcher._create gives a shared daemon's run to its
    owner then): its owner can put nothing in it for the daemon's writes to follow."""
    launcher.reserve.take()
    run_dir = launcher.run_dir(run_id)
    try:
        catalog.begin_making(run_dir)
        return write()
    except BaseException:
        shutil.rmtree(run_dir, ignore_errors=True)  # needs no space
        raise


async def discard(launcher: "Launcher", made: Premade) -> None:
    """Removes a premade dir that will not be finished."""
    await launcher.runtime.io(launcher.changing_dirs, shutil.rmtree, launcher.run_dir(made.run_id), True)


def finish(run_dir: StrPath, flag_values: dict, user_flags: dict, label: str, now_us: int, digest: str) -> str:
    """On the I/O thread, for Launcher._create: a premade dir's flag values, and the time
    the run is made (`initialized`, as its index row's); returns its digest."""
    runs.write_run_flags(run_dir, flag_values, user_flags, label)
    rundir.write_attr(run_dir, "initialized", now_us)
    return digest
