"""Protobuf messages <-> plain values: the one place guildd's parts meet the wire format.
The servicer turns requests into values here, calls a part, and turns its answer into a
message here; the parts themselves take and return plain values."""

import dataclasses
import json
import os
import shlex
from typing import Any, Iterable, Mapping, Sequence

from guild_common import errors, rundir
from guild_common.pb import guild_pb2 as pb
from guildd import annotations, compare as comparelib, queue as queuelib, scheduler, selection
from guildd import store as storelib

LABEL_ACTIONS: dict[int, str] = {
    pb.LABEL_SET: "set",
    pb.LABEL_PREPEND: "prepend",
    pb.LABEL_APPEND: "append",
    pb.LABEL_REMOVE: "remove",
    pb.LABEL_CLEAR: "clear",
}

COMMENT_ACTIONS: dict[int, str] = {
    pb.COMMENT_ADD: annotations.ADD,
    pb.COMMENT_DELETE: annotations.DELETE,
    pb.COMMENT_CLEAR: annotations.CLEAR,
}

HIDDEN_ATTRS = ("op", "platform", "pip_freeze", "run_params")  # attrs `runs info` doesn't show


def criteria(run_filter: pb.RunFilter, exclude_batch: bool = False) -> selection.Criteria:
    """The selection a request's run filter makes (an empty filter: all runs)."""
    if not run_filter.ByteSize():
        return selection.Criteria(exclude_batch=exclude_batch)
    f = run_filter
    return selection.Criteria(
        statuses=tuple(f.statuses),
        not_statuses=tuple(f.not_statuses),
        labels=tuple(f.labels),
        unlabeled=f.unlabeled,
        marked=f.marked,
        unmarked=f.unmarked,
        started_after_us=f.started_after_us,
        started_before_us=f.started_before_us,
        digests=tuple(f.digests),
        ops=tuple(f.ops),
        tags=tuple(f.tags),
        comments=tuple(f.comments),
        expr=f.expr,
        deleted=f.deleted,
        exclude_batch=exclude_batch and not f.include_batch,
    )


def order(request: Any) -> "tuple[str, bool] | None":
    """A request's `min`/`max` column as (column, descending), or None for latest first."""
    if request.min and request.max:
        raise errors.InvalidArgument("--min and --max cannot both be used")
    if request.min:
        return (request.min, False)
    if request.max:
        return (request.max, True)
    return None


def label_action(action: int) -> str:
    """A LabelRuns action as guildd.manage.new_label names it."""
    name = LABEL_ACTIONS.get(action)
    if name is None:
        raise errors.InvalidArgument("label action missing")
    return name


def tag_change(request: pb.TagRunsRequest) -> annotations.TagChange:
    return annotations.TagChange(tuple(request.add), tuple(request.remove), request.clear, request.sync_labels)


def comment_change(request: pb.CommentRunsRequest, user: str) -> annotations.CommentChange:
    """A CommentRuns request as a change, a comment added signed by `user` (the caller as
    the kernel vouches for them, never a name the client sent)."""
    action = COMMENT_ACTIONS.get(request.action)
    if action is None:
        raise errors.InvalidArgument("comment action missing")
    return annotations.CommentChange(action, request.body, request.index, user)


def comment_message(comment: Mapping[str, Any]) -> pb.Comment:
    """A comment from the `comments` attr (Guild's keys; a time that isn't a number is 0)."""
    time_us = comment.get("time")
    return pb.Comment(body=str(comment.get("body") or ""), user=str(comment.get("user") or ""),
                      host=str(comment.get("host") or ""), time_us=time_us if isinstance(time_us, int) else 0)


def queue_settings(request: pb.ConfigureQueueRequest) -> dict[str, Any]:
    """A ConfigureQueue request as guildd.queue.Queue.configure's keyword arguments (None:
    leave as it is)."""
    return {
        "paused": request.paused if request.HasField("paused") else None,
        "queue_limits": dict(request.queue_limits),
        "user_gpu_cap": request.user_gpu_cap if request.HasField("user_gpu_cap") else None,
        "cpu_slots": request.cpu_slots if request.HasField("cpu_slots") else None,
        "processing": {
            "run_once": request.processing.run_once,
            "gpus": list(request.processing.gpus),
            "wait_for_running": request.processing.wait_for_running,
        },
    }


def run_message(rec: storelib.RunRecord, run_dir: "str | os.PathLike", pid: int = 0,
                scalars: Iterable[storelib.Summary] = ()) -> pb.Run:
    """A run as the wire shows it: `run_dir` where it lives now, `pid` its process (running)."""
    return pb.Run(
        id=rec.id,
        op_name=rec.op_name,
        status=rec.status,
        label=rec.label,
        started_us=rec.started_us,
        stopped_us=rec.stopped_us,
        exit_status=rec.exit_status or 0,
        has_exit_status=rec.exit_status is not None,
        pid=pid,
        run_dir=str(run_dir),
        flags_json=rec.flags_json,
        user=rec.user,
        tags=rec.tags,
        opref=rec.opref,
        marked=rec.marked,
        deleted=rec.deleted,
        sourcecode_digest=rec.digest,
        scalars=[scalar_message(s) for s in scalars],
        comments=[comment_message(c) for c in json.loads(rec.comments_json)],
    )


def scalar_message(s: storelib.Summary) -> pb.ScalarSummary:
    return pb.ScalarSummary(
        tag=s.tag,
        first=s.first_val,
        first_step=s.first_step,
        last=s.last_val,
        last_step=s.last_step,
        min=s.min_val,
        min_step=s.min_step,
        max=s.max_val,
        max_step=s.max_step,
        total=s.total,
        count=s.count,
    )


def purged_message(rec: storelib.RunRecord) -> pb.Run:
    """A run purged: only what names it (its dir is gone)."""
    return pb.Run(id=rec.id, op_name=rec.op_name, status=rec.status, label=rec.label)


def command_line(cmd: Any) -> str:
    """A run's `cmd` attr as one line (shlex.split gives the list back)."""
    return " ".join(shlex.quote(str(a)) for a in cmd) if isinstance(cmd, list) else ""


def add_details(msg: pb.Run, attrs: dict[str, Any]) -> pb.Run:
    """Adds to `msg` what only `runs info` shows, from the run's attributes: command, origin,
    env, deps, comments and the other attributes."""
    attrs = dict(attrs)
    msg.command = command_line(attrs.pop("cmd", None))
    env = attrs.pop("env", None) or {}
    msg.env.update({str(k): str(v) for k, v in env.items()})
    msg.deps_json = json.dumps(attrs.pop("deps", None) or {}, default=str)
    msg.vcs_commit = str(attrs.get("vcs_commit") or "")
    del msg.comments[:]  # the run dir's, which the index's copy may lag (a comment added by hand)
    msg.comments.extend(comment_message(c) for c in annotations.comments_of(attrs.pop("comments", None)))
    setattr(msg, "from", rundir.opref_origin(msg.opref)[1])  # `from` is a Python keyword
    for name in HIDDEN_ATTRS:
        attrs.pop(name, None)
    msg.attrs_json = json.dumps(attrs, default=str)
    return msg


def cell(value: Any) -> pb.Cell:
    if value is None:
        return pb.Cell()
    if isinstance(value, bool):
        return pb.Cell(boolean=value)
    if isinstance(value, int):
        return pb.Cell(integer=value)
    if isinstance(value, float):
        return pb.Cell(number=value)
    return pb.Cell(text=str(value))


def compare_message(cols: Sequence[comparelib.Column], rows: Iterable[tuple[str, Sequence[Any]]]) -> pb.CompareRunsResponse:
    return pb.CompareRunsResponse(
        columns=[pb.CompareColumn(header=c.header, kind=c.kind) for c in cols],
        rows=[pb.CompareRow(run_id=run_id, cells=[cell(v) for v in values]) for run_id, values in rows],
    )


def file_messages(files: Iterable[tuple[str, bool, bool, int]]) -> list[pb.RunFile]:
    return [pb.RunFile(path=p, is_dir=d, is_link=link, size=size) for p, d, link, size in files]


def transfer_messages(results: Iterable[tuple[str, str, str]]) -> list[pb.RunTransfer]:
    """Export or import results: (run id, copied/moved/skipped, why)."""
    return [pb.RunTransfer(run_id=i, result=r, reason=why) for i, r, why in results]


def disk_usage_message(usage: Iterable[tuple[str, str, int]]) -> pb.GetDiskUsageResponse:
    return pb.GetDiskUsageResponse(usage=[pb.DiskUsage(name=n, path=p, bytes=b) for n, p, b in usage])


def resources_message(snap: Any) -> pb.GetResourcesResponse:
    """A resources snapshot (guildd.resources.Snapshot) as GetResources answers it."""
    return pb.GetResourcesResponse(
        backend=snap.backend,
        gpus=[
            pb.Gpu(
                index=g.index,
                uuid=g.uuid,
                name=g.name,
                memory_total=g.memory_total,
                memory_used=g.memory_used,
                memory_free=g.memory_free,
                utilization=g.utilization,
                processes=[
                    pb.GpuProcess(pid=p.pid, user=p.user, used_memory=p.used_memory, run_id=p.run_id) for p in g.processes
                ],
                pci_bus_id=g.pci_bus_id,
            )
            for g in snap.gpus
        ],
        reason=snap.reason,
        links=[pb.GpuLink(a=link.a, b=link.b, kind=link.kind) for link in snap.links],
        cpu_count=snap.cpu_count,
        memory_total=snap.memory_total,
        memory_available=snap.memory_available,
        taken_us=snap.taken_us,
    )


def queue_message(queue: Any, decisions: Sequence[Any], runs: Mapping[str, pb.Run]) -> pb.ListQueueResponse:
    """The queue's settings and holdings (guildd.queue.Queue), and each waiting run of
    `decisions` (in order, with the reason it waits and its expected start) whose message is in `runs`."""
    entries = []
    for position, decision in enumerate(decisions, 1):
        entry = queue.entries.get(decision.run_id)
        run = runs.get(decision.run_id)
        if entry is None or run is None:
            continue
        request = entry.request
        entries.append(
            pb.QueueEntry(
                run=run,
                resources=pb.ResourceRequest(
                    gpus=request.gpus,
                    devices=list(request.devices),
                    gpu_memory=request.gpu_memory,
                    no_gpus=decision.run_id in queue.no_gpus,
                ),
                options=pb.QueueOptions(priority=entry.priority, queue=entry.queue, after=list(entry.after),
                                        preemptible=entry.preemptible),
                position=position,
                reason=getattr(decision, "reason", "") or "starting",
                queued_us=queue.queued_us.get(decision.run_id, 0),
                front=entry.front,
                eta_us=queue.etas.get(decision.run_id),  # None: unknown (unset)
            )
        )
    settings = queue.settings
    processing = queue.processing()
    p50, p99 = queue.plan_stats()
    cap = int(settings.get("user_gpu_cap") or 0)
    return pb.ListQueueResponse(
        entries=entries,
        holdings=[
            pb.QueueHolding(run_id=h.run_id, user=h.user, devices=list(h.devices), gpu_memory=h.gpu_memory, queue=h.queue)
            for h in queue.holdings.values()
        ],
        paused=not processing["on"],
        processing=pb.QueueProcessing(
            run_once=processing["run_once"], gpus=processing["gpus"], wait_for_running=processing["wait_for_running"]),
        always_on=queue.always_on,
        queue_limits=settings.get("queue_limits") or {},
        user_gpu_cap=cap,
        cpu_slots=queue.cpu_slots(),
        gpu_count=len(queue.snapshot.gpus) if queue.snapshot else 0,
        plans=queue.plans,
        waiting=len(queue.entries),
        plan_p50_ms=p50,
        plan_p99_ms=p99,
        users=[user_share_message(share, cap) for share in queue.shares()],
        fair_share_half_life=queue.ledger.half_life,
    )


def user_share_message(share: Any, cap: int) -> pb.UserShare:
    """A user's fair share (guildd.fairshare.Share) and GPU cap (0: none)."""
    return pb.UserShare(user=share.user, gpus_held=share.gpus_held, usage_gpu_seconds=share.usage, share=share.share,
                        waiting=share.waiting, cap=cap)


@dataclasses.dataclass(frozen=True)
class BatchStart:
    """A StartBatch request: a batch run whose trials are `proto` with their own flags."""

    proto: pb.RunSpec  # the trial run spec
    batch: pb.BatchSpec
    batch_op_name: str  # `train.py+`, `train.py+gp`
    stage: bool = False
    label: str = ""
    tags: tuple[str, ...] = ()


def batch_start(request: pb.StartBatchRequest) -> BatchStart:
    _check_batch_json(request.batch)
    if request.batch.preemptible_trials and not queuelib.request_for(run_resources(request.proto.resources)).wants_gpus:
        raise errors.InvalidArgument(f"--preemptible-trials: {NOTHING_TO_PREEMPT}")
    batch = pb.BatchSpec()
    batch.CopyFrom(request.batch)
    proto = pb.RunSpec()
    proto.CopyFrom(request.proto)
    return BatchStart(proto, batch, request.batch_op_name, request.stage, request.label, tuple(request.tags))


@dataclasses.dataclass(frozen=True)
class ProtoStart:
    """A StartProtoRun request: a new run from an earlier run's operation (Guild's --proto)."""

    proto: str  # the run to copy: index, id or id prefix
    flags_json: str = ""  # flag values that replace the proto's
    label: str = ""
    tags: tuple[str, ...] = ()
    stage: bool = False
    sourcecode: tuple[pb.SourceFile, ...] = ()  # empty: the proto's snapshot
    stop_after: float = 0.0
    env: dict[str, str] = dataclasses.field(default_factory=dict)  # empty: the proto's


def proto_start(request: pb.StartProtoRunRequest) -> ProtoStart:
    return ProtoStart(request.proto, request.flags_json, request.label, tuple(request.tags), request.stage,
                      tuple(request.sourcecode), request.stop_after, dict(request.env))


# A run on Ray asks its CPUs and memory when it is made (guildd.rayjobs.admit records them).
RESTART_KEEPS_RAY_RESOURCES = "--cpus and --memory are given when a run on Ray is made (--executor ray); a restart keeps them"


@dataclasses.dataclass(frozen=True)
class Restart:
    """A RestartRun request (see guild.proto's RestartRunRequest)."""

    run: str
    flags_json: str = ""
    label: str = ""
    sourcecode: tuple[pb.SourceFile, ...] = ()
    force_sourcecode: bool = False
    stop_after: float = 0.0
    env: dict[str, str] = dataclasses.field(default_factory=dict)  # empty: the run's recorded one
    resources: "queuelib.Resources | None" = None  # None: the run's own request
    optimizer_flags_json: str = ""
    max_trials: int = 0


def restart(request: pb.RestartRunRequest) -> Restart:
    """The request as the daemon takes it; CPUs or memory are refused: a run on Ray keeps the
    entrypoint resources it was made with, and a local run has none."""
    if request.set_resources and (request.resources.cpus or request.resources.memory):
        raise errors.InvalidArgument(RESTART_KEEPS_RAY_RESOURCES)
    resources = run_resources(request.resources) if request.set_resources else None
    return Restart(request.run, request.flags_json, request.label, tuple(request.sourcecode), request.force_sourcecode,
                   request.stop_after, dict(request.env), resources, request.optimizer_flags_json, request.max_trials)


def run_resources(msg: pb.ResourceRequest) -> queuelib.Resources:
    """The GPUs a run spec or request asks for."""
    return queuelib.Resources(gpus=msg.gpus, devices=tuple(msg.devices), gpu_memory=msg.gpu_memory, no_gpus=msg.no_gpus)


def queue_wants(msg: pb.QueueOptions) -> queuelib.Wants:
    """A StartRun request's queue options (--after as given: ids or prefixes)."""
    return queuelib.Wants(priority=msg.priority, queue=msg.queue, after=tuple(msg.after), preemptible=msg.preemptible)


NOTHING_TO_PREEMPT = "the run asks for no GPUs (--gpus or --gpu-memory, or its operation's), so there is nothing to preempt it for"


def preemptible_wants(wants: queuelib.Wants, spec: pb.RunSpec, request: scheduler.Request) -> queuelib.Wants:
    """A run's queue wants, preemptible also when its spec's run params say so (a trial of a
    batch run with --preemptible-trials); InvalidArgument for a preemptible run that asks for
    no GPUs: no run could ever wait for what it holds."""
    params = json_object(spec.run_params_json, "run params")
    preemptible = wants.preemptible or params.get("preemptible") is True
    if preemptible and not request.wants_gpus:
        raise errors.InvalidArgument(f"--preemptible: {NOTHING_TO_PREEMPT}")
    return dataclasses.replace(wants, preemptible=preemptible)


def json_object(text: str, what: str) -> dict[str, Any]:
    """A JSON object of a request or run spec (flag values, say); InvalidArgument if it is not one."""
    return _json_of(text, what, dict) if text else {}


def _json_of(text: str, what: str, kind: type) -> Any:
    """`text` as JSON of `kind` (dict or list); InvalidArgument naming `what` if it isn't.
    RecursionError too: `[[[[...` a few thousand deep is JSON the decoder can't nest."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise errors.InvalidArgument(f"invalid {what}: {str(e)[:200]}") from None
    if not isinstance(value, kind):
        raise errors.InvalidArgument(f"invalid {what}: expected {'an object' if kind is dict else 'a list'}")
    return value


def _check_batch_json(batch: pb.BatchSpec) -> None:
    """Refuses a StartBatch whose JSON fields are not what guildctl sends (trials: a list of
    objects; values and optimizer flags: objects) before anything reads them: the batch's
    `--needed` search and its loop would otherwise fail inside the daemon (INTERNAL)."""
    if batch.trials_json:
        trials = _json_of(batch.trials_json, "batch trials", list)
        if not all(isinstance(t, dict) for t in trials):
            raise errors.InvalidArgument("invalid batch trials: expected a list of objects")
    for text, what in ((batch.values_json, "batch flag values"), (batch.optimizer_flags_json, "optimizer flags")):
        if text:
            _json_of(text, what, dict)

