"""Creating and restarting run directories from a run spec: plain functions of files.

Everything needed to start the run again lives in its directory afterwards (`attrs/op` holds
the command template, flag definitions and environment; `attrs/flags` the values), so the
daemon never needs the user's project to restart a run (ARCHITECTURE.md, contract 2).
"""

import dataclasses
import marshal
import os
import pwd
from collections.abc import Mapping
from typing import Any, Optional

from guild_common import errors, opconfig, rundir
from guild_common.paths import StrPath
# The layout both guildd and `guildctl run --run-dir` write; its names are the daemon's too.
from guild_common.runlayout import check_snapshot as check_snapshot, current_user as current_user, run_env, \
    snapshot_files as snapshot_files, write_launch_attrs, write_new_run as write_new_run, write_run_base as write_run_base, \
    write_run_flags as write_run_flags
from guildd import callers, fsrights, rayjobs


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


def reattach_launch(run_dir: StrPath, shared: bool) -> Optional[Launch]:
    """On the I/O thread, at a daemon's start: the launch of a shim whose follower attaches again
    to a running run's Ray job, its shim and follower gone (guildd.rayjobs.reattach_cmd); None
    for any other run. As the run's owner, with its recorded environment."""
    owner_ = owner(os.lstat(run_dir).st_uid) if shared else None
    with fsrights.as_owner_of(run_dir):
        cmd = rayjobs.reattach_cmd(run_dir)
        env = rundir.read_attr(run_dir, "env") if cmd is not None else None
    if cmd is None:
        return None
    env = {str(k): str(v) for k, v in (env if isinstance(env, dict) else {}).items()}
    return _launch(run_dir, cmd, env, 0.0, owner_)


def _launch(run_dir: StrPath, cmd: list[str], env: dict[str, str], stop_after: float, owner_: Optional[Owner]) -> Launch:
    """A shim's launch, as `owner_` (a shared daemon's run) or as the daemon's user."""
    if owner_ is None:
        return Launch(run_dir=str(run_dir), cmd=cmd, env=env, stop_after=stop_after)
    return Launch(run_dir=str(run_dir), cmd=cmd, env=env, stop_after=stop_after, uid=owner_.uid, gid=owner_.gid, groups=owner_.groups)


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
    write_launch_attrs(run_dir, cmd, env, config.env_secrets)
    if config.executor:  # the shim runs the follower, which runs `cmd` on the Ray cluster
        cmd = rayjobs.launch_cmd(run_dir, run_id, config.executor, cmd)
    return _launch(run_dir, cmd, env, stop_after, owner)
