"""Creating and restarting run directories from a run spec: plain functions of files.

Everything needed to start the run again lives in its directory afterwards (`attrs/op` holds
the command template, flag definitions and environment; `attrs/flags` the values), so the
daemon never needs the user's project to restart a run (ARCHITECTURE.md, contract 2).
"""

import dataclasses
import getpass
import json
import marshal
import os
import platform
import pwd
import re
import socket
import sys
from collections.abc import Collection, Iterable, Mapping
from typing import Any, Optional

from guild_common import errors, flags as flaglib, opconfig, rundir, sourcecode
from guild_common.paths import StrPath
from guild_common.pb import guild_pb2 as pb
from guildd import callers, fsrights

# Environment variables never recorded in attrs/env (they may hold secrets).
SECRET_ENV = re.compile(r".*(SECRET|PASSWORD|TOKEN|API_KEY|CREDENTIALS).*", re.I)


@dataclasses.dataclass(frozen=True)
class Launch:
    """What the shim needs to start a run's process."""

    run_dir: str
    cmd: list
    env: dict
    stop_after: float
    # A shared daemon's run: the owner the shim becomes before anything else (None: the
    # daemon's own user, as in a per-user daemon).
    uid: Optional[int] = None
    gid: Optional[int] = None
    groups: tuple = ()

    def to_bytes(self) -> bytes:
        """The shim's launch spec (guildd.shim reads it with marshal)."""
        return marshal.dumps(dataclasses.asdict(self))


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


def platform_attr() -> dict[str, Any]:
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
            "flags": flag_values,
            "user_flags": user_flags,
            "label": label,
            "tags": list(spec.tags),
            "host": socket.gethostname(),
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


@dataclasses.dataclass(frozen=True)
class Owner:
    """Who a shared daemon's run executes as: its run dir's owner's account."""

    uid: int
    gid: int
    groups: tuple[int, ...]
    name: str
    home: str

    def env(self) -> dict[str, str]:
        """The account's variables, over whatever the client sent: a run sees its own user."""
        return {"HOME": self.home, "USER": self.name, "LOGNAME": self.name}

    def account(self) -> fsrights.Account:
        return fsrights.Account(self.uid, self.gid, self.groups)


def owner(uid: int) -> Owner:
    """The account a shared daemon's run executes as. PermissionDenied for root (a shared
    daemon never runs user code as root) and for a uid with no account."""
    if uid == 0:
        raise errors.PermissionDenied("a shared guildd never runs code as root: start runs as a regular user")
    caller = callers.lookup(uid)
    return Owner(caller.uid, caller.gid, caller.groups, caller.name, caller.home)


def owner_named(user: str) -> Owner:
    """The Owner of a run made for `user` (a caller's name, or a parent run's owner's)."""
    try:
        uid = pwd.getpwnam(user).pw_uid
    except KeyError:
        raise errors.PermissionDenied(f"user {user!r} has no account on this machine: guildd cannot run anything as them") from None
    return owner(uid)


def check_project_dir(project_dir: str, owner: Owner) -> None:
    """Refuses (PermissionDenied) a run whose project dir its owner can't read: its
    dependencies are read from there with the owner's rights. Read with those rights here."""
    try:
        with fsrights.as_user(owner.uid, owner.gid, owner.groups):
            with os.scandir(project_dir):
                pass
    except FileNotFoundError:
        pass  # gone since (a batch's later trials): a dependency on it fails by name
    except OSError as e:
        raise errors.PermissionDenied(f"cannot read project directory '{project_dir}' as {owner.name}: {e.strerror or e}") from None


def confined_gpus(env: Mapping[str, str], granted: Mapping[str, str]) -> dict[str, str]:
    """A shared daemon's run sees only the GPUs the queue granted it (`granted`, from
    queue.gpu_env), none when it asked for none: whatever its client's environment, its
    guild.yml env or its recorded env from an earlier start say."""
    visible = granted.get("CUDA_VISIBLE_DEVICES", "")
    return {**env, "CUDA_VISIBLE_DEVICES": visible, "GUILD_GPUS": granted.get("GUILD_GPUS", visible)}


def prepare_launch(run_dir: StrPath, run_id: str, config: opconfig.OpConfig, flag_values: Mapping[str, Any],
                   base_env: Mapping[str, str], guild_home: StrPath, stop_after: float, owner: Optional[Owner] = None,
                   granted_gpus: Optional[Mapping[str, str]] = None) -> Launch:
    """Writes the command and environment attrs a start records, and returns the launch.
    `owner`: a shared daemon's run, executed as that account (its HOME, USER and LOGNAME in
    its environment); `granted_gpus`: not None when its GPUs are confined to what the queue
    granted (see confined_gpus)."""
    cmd = opconfig.render_cmd(config, flag_values)
    env = run_env(base_env, config, flag_values, run_dir, run_id, guild_home)
    if owner is not None:
        env.update(owner.env())
    if granted_gpus is not None:
        env = confined_gpus(env, granted_gpus)
    rundir.write_attr(run_dir, "cmd", cmd)
    rundir.write_attr(run_dir, "env", recorded_env(env, config.env_secrets), private=True)  # may hold tokens
    if owner is None:
        return Launch(run_dir=str(run_dir), cmd=cmd, env=env, stop_after=stop_after)
    return Launch(run_dir=str(run_dir), cmd=cmd, env=env, stop_after=stop_after, uid=owner.uid, gid=owner.gid, groups=owner.groups)


def current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())
