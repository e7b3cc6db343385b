"""A new run directory's layout and its process's command environment, as plain functions
of files and values: shared by the daemon (guildd/runs.py, for runs in GUILD_HOME) and by
`guildctl run --run-dir` (guildctl/rundir_run.py), which writes a run outside GUILD_HOME
itself. Both must write the same Guild layout, so it is written in one place."""

import functools
import getpass
import json
import os
import platform
import re
import sys
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from guild_common import flags as flaglib, opconfig, rundir, sourcecode
from guild_common.paths import StrPath
from guild_common.pb import guild_pb2 as pb

# Environment variables never recorded in attrs/env (they may hold secrets).
SECRET_ENV = re.compile(r".*(SECRET|PASSWORD|TOKEN|API_KEY|CREDENTIALS).*", re.I)


def run_env(base_env: Mapping[str, str], config: opconfig.OpConfig, flag_values: Mapping[str, Any],
            run_dir: StrPath, run_id: str, guild_home: StrPath) -> dict[str, str]:
    env = {k: v for k, v in base_env.items()}
    # GPU indices as NVML and `guildctl gpus` number them (CUDA's default is fastest first).
    env.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    env.update(config.op_env)
    env.update(flaglib.flag_env(flag_values, config.flag_defs))
    env.update(
        {
            "RUN_DIR": str(run_dir),
            "RUN_ID": run_id,
            "GUILD_HOME": str(guild_home),
            "GUILD_OP": config.guild_op,
            "CMD_DIR": config.cmd_dir,
            "PROJECT_DIR": config.project_dir,
            "FLAGS_DEST": config.flags_dest,
            "GUILD_PLUGINS": "",
            "LOG_LEVEL": "20",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def recorded_env(env: Mapping[str, str], secrets: Collection[str] = ()) -> dict[str, str]:
    """The env recorded in attrs/env: without the op's env-secrets or names that look secret."""
    return {k: v for k, v in sorted(env.items()) if k not in secrets and not SECRET_ENV.match(k)}


@functools.cache
def platform_attr() -> dict[str, Any]:
    """What Guild records of the machine. The same for every run a process makes, and worth
    keeping: platform.architecture() runs `file` on the interpreter, a process per run."""
    uname = platform.uname()
    return {
        "architecture": " ".join(platform.architecture()),
        "cpus": os.cpu_count(),
        "processor": uname.processor,
        "python_version": sys.version.replace("\n", " "),
        "uname": " ".join(uname),
    }


def write_new_run(run_dir: StrPath, run_id: str, spec: pb.RunSpec, config: opconfig.OpConfig,
                  flag_values: Mapping[str, Any], user_flags: Mapping[str, Any], label: str, user: str, now_us: int,
                  extra_files: Iterable[tuple[str, bytes]] = ()) -> str:
    """Initializes a run directory (Guild's layout) and writes its source snapshot, and
    `extra_files` ((path under .guild, bytes)); returns the snapshot's digest."""
    digest = write_run_base(run_dir, run_id, spec, config, user, now_us, extra_files)
    write_run_flags(run_dir, flag_values, user_flags, label)
    return digest


def write_run_base(run_dir: StrPath, run_id: str, spec: pb.RunSpec, config: opconfig.OpConfig, user: str, now_us: int,
                   extra_files: Iterable[tuple[str, bytes]] = ()) -> str:
    """What of a new run directory its flag values don't decide (write_new_run less
    write_run_flags): a batch's next trial is made so while its point is being asked."""
    # Checked before the dir exists: a path outside the run dir leaves no half-made run.
    check_snapshot(spec, run_dir)
    files = snapshot_files(spec.sourcecode, spec.sourcecode_dest)
    gdir = rundir.guild_dir(run_dir)
    rundir.attrs_dir(run_dir).mkdir(parents=True)
    # Guild writes id and initialized first: a dir with them is a run, even half-made.
    rundir.write_attrs(run_dir, {"id": run_id, "initialized": now_us})
    written = rundir.write_sourcecode(run_dir, files)
    rundir.write_opref(run_dir, spec.opref)
    digest = sourcecode.digest(run_dir, written) or ""
    rundir.write_attrs(
        run_dir,
        {
            "op": config.to_attr(),
            "tags": list(spec.tags),
            "host": platform.node(),  # the hostname (common opens no sockets)
            "user": user,
            "platform": platform_attr(),
            "run_params": json.loads(spec.run_params_json or "{}"),
            "sourcecode_digest": digest,
            "deps": {},
        },
    )
    for path, data in extra_files:
        (gdir / path).write_bytes(data)
    (gdir / "output").touch()
    return digest


def write_run_flags(run_dir: StrPath, flag_values: Mapping[str, Any], user_flags: Mapping[str, Any], label: str) -> None:
    """A new run's flag values and the label they render."""
    rundir.write_attrs(run_dir, {"flags": flag_values, "user_flags": user_flags, "label": label})


def snapshot_files(source_files: Iterable[pb.SourceFile], dest: str) -> list[tuple[str, bytes, int]]:
    """(path in the run dir, bytes, mode) for each SourceFile, under the snapshot's `dest`."""
    dest = dest.rstrip("/")
    return [(f"{dest}/{f.path}" if dest else f.path, f.data, f.mode) for f in source_files]


def check_snapshot(spec: pb.RunSpec, run_dir: StrPath) -> None:
    """Refuses (InvalidArgument) a spec whose source snapshot, or a pipeline step's, would be
    written outside `run_dir` or among its metadata (a client can send any path). Writes
    nothing: `run_dir` need not exist."""
    files = snapshot_files(spec.sourcecode, spec.sourcecode_dest)
    rundir.check_sourcecode(run_dir, [path for path, _, _ in files], spec.sourcecode_dest.rstrip("/"))
    for step in spec.steps:
        check_snapshot(step.spec, run_dir)


def current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def write_launch_attrs(run_dir: StrPath, cmd: list[str], env: Mapping[str, str], secrets: Collection[str] = ()) -> None:
    """The command and environment attrs a start records; env is private (it may hold tokens)."""
    rundir.write_attr(run_dir, "cmd", cmd)
    rundir.write_attr(run_dir, "env", recorded_env(env, secrets), private=True)
