"""A run's dependencies (`requires`), resolved into its dir just before its process starts,
and the upstream run an operation dependency uses."""

import dataclasses
import json
import logging
import os
import pathlib
from typing import Any, Optional

from guild_common import errors, opconfig, rundir
from guildd import deps, diskspace, fsrights, manage, outputs, runstate, selection
from guildd.runstate import RunStates
from guildd.runtime import Runtime
from guildd.store import Store

log = logging.getLogger("guildd")


async def resolve_requires(runtime: Runtime, states: RunStates, store: Store, reserve: diskspace.Reserve,
                           home: "str | os.PathLike", run_id: str, config: opconfig.OpConfig,
                           flag_values: dict[str, Any]) -> dict[str, Any]:
    """Resolves a pending run's dependencies into its dir; records them (attrs/deps, upstream
    run ids as flag values) and returns its flag values. On failure the run ends as an error
    and the caller gets the reason, naming the resource."""
    run_dir = states.run_dir(run_id)

    def log_line(line: str) -> None:  # `Resolving ...`: Guild logs these to stderr
        outputs.append_line(run_dir, line)

    def find_run(op_name: str, spec: Optional[str]) -> Optional[tuple[str, str]]:
        return runtime.io_submit(find_upstream, store, home, op_name, spec).result()

    already = await runtime.io(fsrights.call_as_owner_of, run_dir, rundir.read_attr, run_dir, "deps")
    ctx = deps.ResolveContext(
        run_dir=str(run_dir),
        project_dir=config.project_dir,
        flags=flag_values,
        cache_dir=await runtime.io(cache_dir, home, run_dir),
        find_run=find_run,
        log=log_line,
        python_exe=config.python_exe,
    )
    try:
        # All of it with the run's owner's rights: their project's files, their run dir.
        resolved = await runtime.work(fsrights.call_as_owner_of, run_dir, deps.resolve, list(config.requires), ctx,
                                      skip=tuple(already or ()))
    except Exception as e:  # whatever stops resolution ends the run, never leaves it pending
        if not isinstance(e, errors.GuildError):
            log.exception("resolving dependencies of run %s", run_id[:8])
        message = f"run failed because a dependency was not met: {e}"
        try:
            await runtime.work(log_line, f"guildctl: {message}")
        except OSError:
            pass  # a full disk: the run still ends, as an error
        await runtime.io(reserve.use, states.apply, run_id, runstate.ERROR, exit_status=False)
        if diskspace.is_full(e):
            raise diskspace.full_error(home, e, "run failed because a dependency was not met") from None
        raise errors.FailedPrecondition(message) from None
    chosen = {**flag_values, **resolved.flag_values()}
    attrs: dict[str, Any] = {"deps": {**(already or {}), **resolved.deps_attr()}, "flags": chosen}
    updates: dict[str, Any] = {"flags_json": json.dumps(chosen)}
    if chosen != flag_values:  # the label shows the upstream runs chosen, as Guild's does
        tags = await runtime.io(fsrights.call_as_owner_of, run_dir, rundir.read_attr, run_dir, "tags")
        attrs["label"] = updates["label"] = opconfig.render_label(config.label_template, list(tags or []), chosen)
    await runtime.io(fsrights.call_as_owner_of, run_dir, rundir.write_attrs, run_dir, attrs)
    await runtime.io(store.update, run_id, **updates)
    return chosen


def cache_dir(home: "str | os.PathLike", run_dir: "str | os.PathLike") -> str:
    """Where a run's downloads and unpacked archives are cached: GUILD_HOME/cache/resources,
    shared by all runs of a per-user daemon. A root daemon resolves each run with its owner's
    rights, so each owner has a cache of their own (GUILD_HOME/cache/users/UID/resources, the
    UID dir made by the daemon and given to them): no user can plant a file another user's
    run takes from the cache. On the I/O thread."""
    uid = fsrights.owner_of(run_dir)
    if not fsrights.confines() or not uid:
        return str(pathlib.Path(home) / "cache" / "resources")
    users = pathlib.Path(home) / "cache" / "users"
    users.mkdir(parents=True, exist_ok=True)
    mine = users / str(uid)
    try:
        mine.mkdir(mode=0o700)
        os.lchown(mine, uid, fsrights.owner_ids(uid, -1)[0])
    except FileExistsError:
        pass
    return str(mine / "resources")


def find_upstream(store: Store, home: "str | os.PathLike", op_name: str, spec: Optional[str]) -> Optional[tuple[str, str]]:
    """The run an operation dependency uses: the one named, else the latest marked, else
    the latest completed run of that operation, as (run id, run dir). On the I/O thread."""
    criteria = selection.Criteria(ops=(op_name,))
    if spec:
        # A full id may name any run of the op; a prefix or index only a completed one.
        if len(spec) < 32:
            criteria = dataclasses.replace(criteria, statuses=("completed",))
        rec = store.resolve(spec, criteria=criteria)
        return rec.id, str(manage.location(home, rec))
    recs, _ = store.select(dataclasses.replace(criteria, statuses=("completed",)))
    recs = [r for r in recs if r.op_name == op_name or r.op_name.endswith(":" + op_name)]
    chosen = next((r for r in recs if r.marked), recs[0] if recs else None)
    return (chosen.id, str(manage.location(home, chosen))) if chosen else None
