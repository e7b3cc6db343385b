"""Turning `guildctl run SCRIPT FLAG=VAL ...` into a self-contained run spec: the client sees
the user's files, Python and environment; the daemon gets everything it needs in the spec."""

import dataclasses
import os
import pathlib
import sys
from collections.abc import Iterable

from guild_common import errors, opconfig, opmain, pyscript, rundir, sourcecode
from guild_common.pb import guild_pb2 as pb
from guildctl import opflags, runspec

OPMAIN = os.path.abspath(opmain.__file__)


@dataclasses.dataclass(frozen=True)
class ScriptOp:
    name: str  # as typed and listed: `train.py`
    path: pathlib.Path  # absolute
    project_dir: pathlib.Path
    python: bool
    flags_dest: str
    flag_defs: dict

    @property
    def relpath(self):
        return self.path.relative_to(self.project_dir).as_posix()


def for_opspec(opspec, cwd):
    """The operation `opspec` names: a Python script, or another executable file."""
    path = (pathlib.Path(cwd) / opspec).absolute()
    if not path.is_file():
        raise errors.NotFound(
            f"cannot find operation {opspec}\nYou may need to include a model in the form MODEL:OPERATION. "
            "Try 'guildctl operations' for a list of available operations."
        )
    project_dir = path.parent
    if path.suffix == ".py":
        detected = pyscript.detect_flags(path)
        return ScriptOp(opspec, path, project_dir, True, detected.dest, detected.flags)
    if not os.access(path, os.X_OK):
        raise errors.InvalidArgument(f"cannot run {opspec}: it must be a Python script or an executable file")
    return ScriptOp(opspec, path, project_dir, False, "args", {})


def flag_values(op, assigns, force_flags=False, cwd=None):
    return opflags.flag_values(op, assigns, force_flags, cwd)


def source_files(op):
    """The source snapshot with Guild's default rules; the script itself always goes in."""
    selection = sourcecode.select_files(op.project_dir)
    for warning in selection.warnings:
        print(f"WARNING: {warning}", file=sys.stderr)
    paths = list(selection.files)
    if op.relpath not in paths:
        paths.append(op.relpath)
    files = []
    for rel in sorted(paths):
        full = op.project_dir / rel
        files.append(pb.SourceFile(path=rel, data=full.read_bytes(), mode=full.stat().st_mode & 0o777))
    return files


def cmd_args(op):
    if op.python:
        return ["${python_exe}", "-u", OPMAIN, op.relpath, "__flag_args__"]
    return [f"./{op.relpath}", "__flag_args__"]


def run_spec(
    op: ScriptOp,
    values: dict,
    user_flags: dict,
    label: str = "",
    tags: Iterable[str] = (),
    stop_after: float = 0.0,
    run_params: dict | None = None,
    cwd: str | os.PathLike | None = None,
) -> pb.RunSpec:
    config = opconfig.OpConfig(
        cmd_args=tuple(cmd_args(op)),
        flags_dest=op.flags_dest,
        flag_defs=op.flag_defs,
        op_env={"PROJECT_DIR": str(op.project_dir)},
        label_template=label or None,
        python_exe=sys.executable,
        guild_op=str(op.path),
        cmd_dir=str(cwd or os.getcwd()),
        project_dir=str(op.project_dir),
    )
    opref = rundir.script_opref(op.project_dir, op.relpath)
    return runspec.build(config, op.name, opref, source_files(op), values, user_flags, tags, stop_after, run_params)
