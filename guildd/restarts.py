"""Runs made from other runs or started again: a batch run from its trial spec, a run from an
earlier run's operation (Guild's --proto), and restarts of runs, pipelines and batches. Part
of the launcher (guildd.launcher), kept apart for its size."""

import asyncio
import dataclasses
import json
from typing import TYPE_CHECKING, Any, Callable

from guild_common import errors, flags as flaglib, opconfig, rundir, sourcecode, trials as trialslib
from guild_common.pb import guild_pb2 as pb
from guildd import batchspec, convert, fsrights, needed, pipeline, queue as queuelib, rayjobs, runs, runstate
from guildd import store as storelib
from guildd.convert import BatchStart, ProtoStart, Restart

if TYPE_CHECKING:
    from guildd.launcher import Launcher


async def start_batch(launcher: "Launcher", req: BatchStart, user: str) -> storelib.RunRecord:
    """Creates a batch run and starts its loop (or stages it)."""
    spec = pb.BatchSpec()
    spec.CopyFrom(req.batch)
    await asyncio.get_running_loop().run_in_executor(None, batchspec.check, spec)
    opconfig.check_spec(req.proto)
    await rayjobs.admit(req.proto, launcher.shared, launcher.ray)  # trials on Ray: the cluster checked once, its address fixed
    request = queuelib.request_for(convert.run_resources(rayjobs.local_request(req.proto)))
    await launcher.queue.check_request(request)
    if not spec.HasField("random_seed"):
        spec.random_seed = batchspec.draw_seed()
    proto = req.proto
    # Its trials are made later: refuse a snapshot they could not write now.
    await launcher.runtime.io(runs.check_snapshot, proto, launcher.run_dir(rundir.new_run_id()))
    opref, values = _batch_identity(req, spec)
    batch_run = pb.RunSpec(
        op_name=req.batch_op_name,
        opref=opref,
        flags_json=json.dumps(values),
        user_flags_json=json.dumps(values),
        env=dict(proto.env),
        cmd_dir=proto.cmd_dir,
        project_dir=proto.project_dir,
        guild_op=req.batch_op_name,
        label=req.label,
        tags=list(req.tags),
        python_exe=proto.python_exe,
        run_params_json=proto.run_params_json,
        delete_on_success=spec.kind in ("grid", "random") and not spec.keep_batch,
    )
    rec, _config, _flags = await launcher.create_run(
        batch_run,
        user,
        runstate.STAGED if req.stage else runstate.PENDING,
        batchspec.spec_files(spec, proto),
        {"max_trials": spec.max_trials, "random_seed": spec.random_seed},
    )
    if req.stage:
        if launcher.takes_staged_now():  # answered as staged, as the queue takes it
            await launcher.states.transition(rec.id, runstate.PENDING)
            await launcher.run_batch(rec.id, spec, proto, 0, user)
        return rec
    return await launcher.or_take_back(rec.id, launcher.run_batch(rec.id, spec, proto, 0, user))


def _batch_identity(req: BatchStart, spec: pb.BatchSpec) -> tuple[str, dict[str, Any]]:
    """The batch run's opref (its trials' with the batch's suffix: `... train.py+`) and flag
    values: what `run --needed` compares, with its optimizer flags."""
    kind, _, name = req.proto.opref.rpartition(" ")
    values = json.loads(spec.values_json) if spec.values_json else _batch_values(json.loads(spec.trials_json or "[]"))
    return f"{kind} {name}{req.batch_op_name[len(req.proto.op_name):]}", values


async def batch_needed(launcher: "Launcher", req: BatchStart) -> list[storelib.RunRecord]:
    """`run --needed` for a new batch: the batch runs of its operation with its flag values
    and optimizer flags (guildd.needed)."""
    opref, values = _batch_identity(req, req.batch)
    return await _needed(launcher, req.batch_op_name, opref, values, _opt_flags(req.batch.optimizer_flags_json))


async def restart_needed(launcher: "Launcher", req: Restart) -> list[storelib.RunRecord]:
    """`run --needed` for a restart: the runs of the run's operation with the flag values (and,
    for a batch, the optimizer flags) it would run with; the run itself among them when they
    have not changed."""
    rec = await launcher.runtime.io(launcher.store.resolve, req.run)
    run_dir = launcher.run_dir(rec.id)
    flags = {**rec.flags, **convert.json_object(req.flags_json, "flags")}
    found = await launcher.runtime.io(fsrights.call_as_owner_of, run_dir, batchspec.read_spec, run_dir)
    if found is None:
        return await _needed(launcher, rec.op_name, rec.opref, flags, None)
    opt_flags = {**_opt_flags(found[0].optimizer_flags_json), **convert.json_object(req.optimizer_flags_json, "optimizer flags")}
    return await _needed(launcher, rec.op_name, rec.opref, flags, opt_flags)


async def _needed(launcher: "Launcher", op_name: str, opref: str, flags: dict[str, Any],
                  opt_flags: "dict[str, Any] | None") -> list[storelib.RunRecord]:
    """The matches (guildd.needed); with `opt_flags`, batch runs with those optimizer flags."""
    return await launcher.runtime.io(needed.find, launcher.store, launcher.run_dir, op_name, opref, flags, opt_flags)


def _opt_flags(text: str) -> dict[str, Any]:
    return convert.json_object(text, "optimizer flags")


def _batch_values(trials: list[dict[str, Any]]) -> dict[str, Any]:
    """A grid batch's flag values as Guild shows them: each flag's values as a list where
    the trials vary it."""
    out: dict[str, list] = {}
    for trial in trials:
        for name, value in trial.items():
            seen = out.setdefault(name, [])
            if value not in seen:
                seen.append(value)
    return {name: values[0] if len(values) == 1 else values for name, values in out.items()}


async def start_proto_run(launcher: "Launcher", req: ProtoStart, user: str) -> storelib.RunRecord:
    """A new run from an earlier run's operation, flags and source (Guild's --proto)."""
    proto = await launcher.runtime.io(launcher.store.resolve, req.proto)
    run_dir = launcher.run_dir(proto.id)

    def read() -> tuple[dict[str, Any], opconfig.OpConfig, list[pb.SourceFile], str]:
        # Only what the new run takes: its recorded env (private to its owner) only when the
        # caller sent none.
        names = ("op", "flags", "user_flags") if req.env else ("op", "flags", "user_flags", "env")
        attrs = {name: rundir.read_attr(run_dir, name) for name in names}
        config = opconfig.OpConfig.for_attr(attrs.get("op"))
        prefix = f"{config.sourcecode_dest}/" if config.sourcecode_dest else ""
        files = []
        for path, data, mode in [] if req.sourcecode else rundir.read_sourcecode(run_dir):
            rel = path[len(prefix) :] if prefix and path.startswith(prefix) else path
            files.append(pb.SourceFile(path=rel, data=data, mode=mode))
        return attrs, config, files, rundir.read_opref(run_dir)

    # Read with the rights of the new run's owner (a shared daemon's caller), as a snapshot is.
    caller = runs.owner_named(user).account() if launcher.shared else None
    try:
        attrs, config, files, opref = await launcher.runtime.io(fsrights.call_as_account, caller, read)
    except PermissionError as e:
        raise errors.PermissionDenied(f"cannot read run {proto.id[:8]} as {user}: {e.strerror} ({e.filename})") from None
    overrides = checked_flags(convert.json_object(req.flags_json, "flags"), config)
    spec = opconfig.spec_from_config(
        config,
        op_name=proto.op_name,
        opref=opref,
        flags_json=json.dumps({**(attrs.get("flags") or {}), **overrides}),
        user_flags_json=json.dumps({**(attrs.get("user_flags") or {}), **overrides}),
        env=dict(req.env) or dict(attrs.get("env") or {}),
        sourcecode=list(req.sourcecode) or files,
        label=req.label,
        tags=list(req.tags),
        stop_after=req.stop_after,
        run_params_json=json.dumps({"proto": proto.id}),
    )
    return await launcher.start_run(spec, req.stage, user)


PATH_TYPES = ("path", "existing-path")


def checked_flags(values: dict[str, Any], config: opconfig.OpConfig) -> dict[str, Any]:
    """Flag values a client gave for a copy of a run, converted to their flags' types and
    checked against their choices and ranges, as `run` checks its own (InvalidArgument
    naming the flag). Path flags are taken as given: the caller's directory isn't ours."""
    out = {}
    for name, value in values.items():
        flagdef = config.flag_defs.get(name)
        out[name] = value if flagdef is None or flagdef.type in PATH_TYPES else flaglib.coerce_flag_value(value, flagdef)
    return out


async def restart_run(launcher: "Launcher", req: Restart, user: str) -> tuple[storelib.RunRecord, int]:
    """Starts an ended (or staged) run again, in its own dir; returns its record and the size
    of its output before (where the new output begins)."""
    rec = await launcher.runtime.io(launcher.store.resolve, req.run)
    if rec.status in runstate.ACTIVE:
        raise errors.FailedPrecondition(f"run {rec.id[:8]} is {rec.status}: stop it before restarting")
    run_dir = launcher.run_dir(rec.id)

    async def read(fn: Callable[..., Any]) -> Any:
        """fn(run_dir) on the I/O thread with the rights of the run dir's owner: its files
        are hers, and a link she put there to a root-only file is refused (guildd.fsrights)."""
        return await launcher.runtime.io(fsrights.call_as_owner_of, run_dir, fn, run_dir)

    found = await read(batchspec.read_spec)
    if found is not None:
        return await _restart_batch(launcher, rec, req, found)
    steps = await read(pipeline.read_steps)
    if steps is not None:  # a pipeline (a staged one, say): its steps run again
        offset = rundir.output_size(run_dir)
        await launcher.states.transition(rec.id, runstate.PENDING)
        return await launcher.start_pipeline(rec.id, steps, rec.user or user), offset
    attrs = await read(rundir.read_attrs)
    config = opconfig.OpConfig.for_attr(attrs.get("op"))
    opconfig.check(config)
    flag_values = dict(attrs.get("flags") or {})
    flag_values.update(convert.json_object(req.flags_json, "flags"))
    if req.label:
        config = dataclasses.replace(config, label_template=req.label)
    tags = list(attrs.get("tags") or [])
    label = opconfig.render_label(config.label_template, tags, flag_values)
    env = dict(req.env) or dict(attrs.get("env") or {})

    def rewrite() -> None:
        # The snapshot first: its paths are checked before anything changes.
        if req.force_sourcecode:
            files = runs.snapshot_files(req.sourcecode, config.sourcecode_dest)
            written = rundir.replace_sourcecode(run_dir, files, config.sourcecode_dest)
            rundir.write_attr(run_dir, "sourcecode_digest", sourcecode.digest(run_dir, written) or "")
        rundir.write_attrs(run_dir, {"flags": flag_values, "label": label, "op": config.to_attr()})

    queued = await launcher.runtime.io(queuelib.read_file, run_dir)
    resources = req.resources if req.resources is not None else queuelib.request_from_json((queued or {}).get("request"))
    request = queuelib.request_for(resources)
    await launcher.queue.check_request(request)
    await launcher.runtime.io(fsrights.call_as_owner_of, run_dir, rewrite)
    offset = rundir.output_size(run_dir)
    launcher.queue.discard(rec.id)
    await launcher.states.transition(rec.id, runstate.PENDING, label=label, flags_json=json.dumps(flag_values))
    if request.wants_gpus:
        # Started explicitly: it goes ahead of the staged runs, and starts when its GPUs are free.
        wants = queuelib.Wants(preemptible=bool((queued or {}).get("preemptible")))  # a restart keeps it
        await launcher.queue.add(rec.id, rec.user or user, resources, wants, True, env, req.stop_after)
        return await launcher.runtime.io(runstate.existing, launcher.store, rec.id), offset
    env.update(queuelib.gpu_env(resources.no_gpus, ()))
    return await launcher.launch(rec.id, config, flag_values, env, req.stop_after), offset


async def _restart_batch(launcher: "Launcher", rec: storelib.RunRecord, req: Restart,
                         found: tuple[pb.BatchSpec, int, pb.RunSpec]) -> tuple[storelib.RunRecord, int]:
    """A new session of a batch: new trials (the earlier ones inform an optimizer), with
    the flag values, optimizer flags and trial count given, else the batch's own."""
    spec, _session, proto = found
    run_dir = launcher.run_dir(rec.id)
    overrides = convert.json_object(req.flags_json, "flags")
    flags = {**rec.flags, **overrides}
    if overrides:
        if spec.kind == "grid":
            spec.trials_json = json.dumps(trialslib.grid(trialslib.expand_values(flags)) or [flags])
        else:
            spec.values_json = json.dumps(flags)
    if req.optimizer_flags_json:
        spec.optimizer_flags_json = json.dumps({**json.loads(spec.optimizer_flags_json or "{}"), **convert.json_object(req.optimizer_flags_json, "optimizer flags")})
    if req.max_trials:
        spec.max_trials = req.max_trials
    await asyncio.get_running_loop().run_in_executor(None, batchspec.check, spec)
    session_start = len(await launcher.runtime.io(batchspec.trial_ids, run_dir)) if rec.status != runstate.STAGED else 0
    await launcher.runtime.io(batchspec.write_spec, run_dir, spec, proto, session_start)
    if overrides:
        await launcher.runtime.io(fsrights.call_as_owner_of, run_dir, rundir.write_attr, run_dir, "flags", flags)
    offset = rundir.output_size(run_dir)
    await launcher.states.transition(rec.id, runstate.PENDING, flags_json=json.dumps(flags))
    return await launcher.run_batch(rec.id, spec, proto, session_start, rec.user or ""), offset
