"""Turning `guildctl run SCRIPT FLAG=VAL ...` into a self-contained run spec: the client sees
the user's files, Python and environment; the daemon gets everything it needs in the spec."""

import dataclasses
import json
import os
import pathlib
import sys

from guild_common import errors, opconfig, opmain, pyscript, rundir, sourcecode
from guild_common.pb import guild_pb2 as pb
from guildctl import opflags

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


def run_spec(op, values, user_flags, label="", tags=(), stop_after=0.0, run_params=None, cwd=None):
    cwd = str(cwd or os.getcwd())
    return pb.RunSpec(
        op_name=op.name,
        opref=rundir.script_opref(op.project_dir, op.relpath),
        cmd_args=cmd_args(op),
        flags_dest=op.flags_dest,
        flags_json=json.dumps(values),
        user_flags_json=json.dumps(user_flags),
        flag_defs=[opconfig.flagdef_to_pb(d) for d in op.flag_defs.values()],
        env=dict(os.environ),
        op_env={"PROJECT_DIR": str(op.project_dir)},
        sourcecode=source_files(op),
        cmd_dir=cwd,
        project_dir=str(op.project_dir),
        guild_op=str(op.path),
        label=label,
        tags=list(tags),
        stop_after=stop_after,
        python_exe=sys.executable,
        run_params_json=json.dumps(run_params or {}),
    )
