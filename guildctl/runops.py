"""Starting a new run, as plain functions both front ends call: `guildctl run` (click, with
its previews and confirmations) and the Python API (`guildctl.api`, no terminal). The order
is the CLI's: resolve the operation in the project, decode and check the flags, build the
run spec, then either one run or the batch the flag values make."""

import dataclasses
import os

from guild_common import errors, flags as flaglib
from guild_common.pb import guild_pb2 as pb
from guildctl import batch as batchlib, queueopts


@dataclasses.dataclass(frozen=True)
class NewRun:
    """What a new run is asked to be besides its operation and flags (`run`'s options)."""

    label: str = ""
    tags: tuple = ()
    stage: bool = False
    background: bool = False
    force_flags: bool = False
    stop_after: float = 0.0
    gpus: str | None = None
    no_gpus: bool = False
    gpu_memory: str | None = None
    cpus: str | None = None  # runs on Ray: CPUs (--cpus) and memory (--memory) the job asks
    memory: str | None = None
    queue: pb.QueueOptions | None = None
    needed: bool = False  # create nothing when a run of the same op and flag values exists
    batch: batchlib.Options = dataclasses.field(default_factory=batchlib.Options)
    executor: str = ""  # `ray[:ADDRESS]`: the run (each trial) executes on a Ray cluster


@dataclasses.dataclass(frozen=True)
class Prepared:
    """An operation resolved and its flags checked: everything a run or a batch of it needs."""

    op: object  # scriptop.ScriptOp or guildop.GuildOp
    kind: object  # the module that builds its spec (scriptop or guildop)
    values: dict  # every flag's value
    user: dict  # the flags the user set
    batch_files: list  # `@file` arguments
    params: dict  # the run's `run_params` attribute, as Guild records it
    spec: pb.RunSpec  # the single run's spec (a batch's trials use `kind.run_spec` again)
    resources: pb.ResourceRequest
    cwd: str


def resolve_op(opspec, cwd):
    """A Guild-file operation (they shadow same-named scripts), else a script or executable.
    Returns (op, module that builds its spec)."""
    from guildctl import scriptop

    gf = None
    if any(os.path.isfile(os.path.join(cwd, name)) for name in ("guild.yml", "guild.yaml")):
        from guild_common import guildfile
        from guildctl import guildop

        gf = guildop.load(cwd)
    if gf is not None:
        try:
            return guildop.for_opdef(gf, guildfile.resolve(gf, opspec)), guildop
        except errors.NotFound:
            if not opspec or not os.path.isfile(os.path.join(cwd, opspec)):
                raise
    if not opspec:
        raise errors.InvalidArgument("missing operation: try 'guildctl run SCRIPT [FLAG=VAL...]'")
    return scriptop.for_opspec(opspec, cwd), scriptop


def flag_assigns(flags):
    """`NAME=VAL` arguments from Python values ({"lr": 0.1, "x": [1, 2]}), so that a flag
    given from Python is decoded and checked exactly as one typed on the command line."""
    return [f"{name}={flaglib.encode_flag_value(value)}" for name, value in flags.items()]


def prepare(op, kind, opspec, flag_args, opts, cwd):
    """The run `opts` asks for of `op` with `flag_args` (`NAME=VAL`, `@batch.csv`); bad flag
    names or values raise InvalidArgument, bad GPU, CPU or memory options too, before anything is sent."""
    queueopts.resource_request(opts.gpus, opts.no_gpus, opts.gpu_memory, None, opts.cpus, opts.memory, opts.executor)
    batch_files, flag_args = batchlib.split_batch_files(list(flag_args))
    values, user = kind.flag_values(op, flag_args, opts.force_flags, cwd)
    params = dict(flags=list(flag_args), force_flags=opts.force_flags, label=opts.label or None, tags=list(opts.tags),
                  stage=opts.stage, background=opts.background, stop_after=opts.stop_after or None, opspec=opspec,
                  gpus=opts.gpus, no_gpus=opts.no_gpus)
    defaults = getattr(getattr(op, "opdef", None), "resources", None)
    resources = queueopts.resource_request(opts.gpus, opts.no_gpus, opts.gpu_memory, defaults, opts.cpus, opts.memory, opts.executor)
    steps = kind.step_specs(op, values, cwd, label=opts.label, tags=opts.tags) if hasattr(kind, "step_specs") else []
    spec = kind.run_spec(op, values, user, opts.label, opts.tags, opts.stop_after, params, cwd, **({"steps": steps} if steps else {}))
    return Prepared(op, kind, values, user, batch_files, params, spec, resources, cwd)


def plan(prepared, opts):
    """The batch the flag values and batch options make (a grid, random search, an
    optimizer), or None for one run."""
    return batchlib.plan(prepared.op, prepared.values, prepared.user, prepared.batch_files, opts.batch, prepared.cwd, opts.force_flags)


def start_single(client, prepared, opts):
    """Starts (or stages) the one run. Returns (the run as the daemon created it, None),
    or with `needed`, (None, the runs that made it needless) when there are such."""
    spec = pb.RunSpec()
    spec.CopyFrom(prepared.spec)
    spec.resources.CopyFrom(prepared.resources)
    spec.executor = opts.executor
    resp = client.call("StartRun", pb.StartRunRequest(spec=spec, stage=opts.stage, queue=opts.queue, needed=opts.needed))
    return _started(resp)


def start_batch(client, prepared, batch_plan, opts):
    """Starts (or stages) the batch run that drives the plan's trials: the trials get the
    run's label and tags, the batch run its own (`batch.batch_label`, `batch.batch_tags`),
    as in Guild. Returns what start_single does, with the batch run."""
    op, kind = prepared.op, prepared.kind
    first = batch_plan.trials[0] if batch_plan.trials else batchlib.proto_values(batch_plan.values)
    proto = kind.run_spec(op, first, {**prepared.user, **first}, opts.label, opts.tags, opts.stop_after, prepared.params, prepared.cwd)
    proto.resources.CopyFrom(prepared.resources)
    proto.executor = opts.executor
    request = pb.StartBatchRequest(
        proto=proto,
        batch=batchlib.batch_spec(batch_plan, opts.batch),
        stage=opts.stage,
        label=opts.batch.batch_label,
        tags=list(opts.batch.batch_tags),
        batch_op_name=op.name + batchlib.op_suffix(batch_plan.kind),
        needed=opts.needed,
    )
    return _started(client.call("StartBatch", request))


def _started(resp):
    if resp.needed_matches:
        return None, list(resp.needed_matches)
    return resp.run, None
