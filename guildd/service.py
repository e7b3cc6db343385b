"""The Guild gRPC servicer: thin. Each method converts the request, calls the Daemon, and
converts the result back."""

import dataclasses
import json
import os
import shlex

from guild_common import __version__, errors, rundir
from guild_common.pb import guild_pb2 as pb, guild_pb2_grpc
from guildd import manage, runstate, selection
from guildd.rpc import mapped


def run_message(daemon, rec, scalars=()):
    run_dir = manage.location(daemon.home, rec)
    pid = 0
    if rec.status == runstate.RUNNING:
        pid = rundir.read_lock_pid(run_dir) or 0
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
        scalars=[
            pb.ScalarSummary(
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
            for s in scalars
        ],
    )


def _criteria(run_filter, exclude_batch=False):
    return selection.Criteria.for_filter(run_filter if run_filter.ByteSize() else None, exclude_batch)


def _order(request):
    if request.min and request.max:
        raise errors.InvalidArgument("--min and --max cannot both be used")
    if request.min:
        return (request.min, False)
    if request.max:
        return (request.max, True)
    return None


def _cell(value):
    if value is None:
        return pb.Cell()
    if isinstance(value, bool):
        return pb.Cell(boolean=value)
    if isinstance(value, int):
        return pb.Cell(integer=value)
    if isinstance(value, float):
        return pb.Cell(number=value)
    return pb.Cell(text=str(value))


def _command(cmd):
    """A run's `cmd` attr as one line (shlex.split gives the list back)."""
    return " ".join(shlex.quote(str(a)) for a in cmd) if isinstance(cmd, list) else ""


def _commands(msgs):
    for msg in msgs:
        msg.command = _command(rundir.read_attr(msg.run_dir, "cmd"))


def _details(daemon, msg):
    """Adds what only `runs info` shows: command, origin, env, deps and other attributes."""
    attrs = rundir.read_attrs(msg.run_dir)
    msg.command = _command(attrs.pop("cmd", None))
    env = attrs.pop("env", None) or {}
    msg.env.update({str(k): str(v) for k, v in env.items()})
    msg.deps_json = json.dumps(attrs.pop("deps", None) or {}, default=str)
    msg.vcs_commit = str(attrs.get("vcs_commit") or "")
    setattr(msg, "from", rundir.opref_origin(msg.opref)[1])  # `from` is a Python keyword
    for name in ("op", "platform", "pip_freeze", "run_params"):
        attrs.pop(name, None)
    msg.attrs_json = json.dumps(attrs, default=str)
    return msg


def resources_message(snap):
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


LABEL_ACTIONS = {
    pb.LABEL_SET: "set",
    pb.LABEL_PREPEND: "prepend",
    pb.LABEL_APPEND: "append",
    pb.LABEL_REMOVE: "remove",
    pb.LABEL_CLEAR: "clear",
}


class GuildServicer(guild_pb2_grpc.GuildServicer):
    def __init__(self, daemon, shutdown):
        self.daemon = daemon
        self._shutdown = shutdown

    def _user(self, context):
        # The front door is a 0600 socket: only the daemon's own user can connect. A shared
        # box's service will attach the caller's proven identity here instead.
        return self.daemon.user

    @mapped
    async def GetDaemonInfo(self, request, context):
        return pb.GetDaemonInfoResponse(
            version=__version__,
            pid=os.getpid(),
            guild_home=str(self.daemon.home),
            started_us=self.daemon.started_us,
            running=self.daemon.executor.running,
            user=self._user(context),
            ready=self.daemon.ready.is_set(),
            state="ready" if self.daemon.ready.is_set() else self.daemon.state,
        )

    @mapped
    async def StartRun(self, request, context):
        options = request.queue if request.HasField("queue") else None
        rec = await self.daemon.start_run(request.spec, request.stage, self._user(context), options)
        return pb.StartRunResponse(run=run_message(self.daemon, rec))

    @mapped
    async def StartBatch(self, request, context):
        rec = await self.daemon.start_batch(request, self._user(context))
        return pb.StartBatchResponse(run=run_message(self.daemon, rec))

    @mapped
    async def StartProtoRun(self, request, context):
        rec = await self.daemon.start_proto_run(request, self._user(context))
        return pb.StartProtoRunResponse(run=run_message(self.daemon, rec))

    @mapped
    async def RestartRun(self, request, context):
        if request.start:
            return await self._start_staged(request, context)
        rec, offset = await self.daemon.restart_run(request, self._user(context))
        return pb.RestartRunResponse(run=run_message(self.daemon, rec), output_offset=offset)

    async def _start_staged(self, request, context):
        """`run --start`: a staged run starts now; one that queue processing took meanwhile is
        answered as it is, for the client to follow; anything else is refused."""
        rec = await self.daemon.get_run(request.run)
        if rec.status == runstate.STAGED:
            try:
                rec, offset = await self.daemon.restart_run(request, self._user(context))
                return pb.RestartRunResponse(run=run_message(self.daemon, rec), output_offset=offset)
            except errors.FailedPrecondition:
                rec = await self.daemon.get_run(rec.id)
                if not self.daemon.queue.taken(rec.id):
                    raise
        elif not self.daemon.queue.taken(rec.id):
            raise errors.FailedPrecondition(
                f"run {rec.id[:8]} is {rec.status}, not staged: --start starts a staged run (to run it again: --restart)")
        return pb.RestartRunResponse(run=run_message(self.daemon, rec), already_started=True)

    @mapped
    async def ListRuns(self, request, context):
        recs, total = await self.daemon.select(
            _criteria(request.filter), list(request.runs), request.limit, _order(request), request.filter.archive
        )
        msgs = [run_message(self.daemon, r) for r in recs]
        if request.with_command:
            await self.daemon.io(_commands, msgs)
        return pb.ListRunsResponse(runs=msgs, total=total)

    @mapped
    async def GetRun(self, request, context):
        if request.filter.archive:
            recs, _ = await self.daemon.select(_criteria(request.filter), [request.run or "1"], 1, archive=request.filter.archive)
            return pb.GetRunResponse(run=run_message(self.daemon, recs[0]))
        rec = await self.daemon.get_run(request.run, criteria=_criteria(request.filter))
        scalars = await self.daemon.scalars(rec.id)
        msg = run_message(self.daemon, rec, scalars)
        return pb.GetRunResponse(run=await self.daemon.io(_details, self.daemon, msg))

    async def _selected(self, sel, deleted=None):
        criteria = _criteria(sel.filter)
        if deleted is not None:
            criteria = dataclasses.replace(criteria, deleted=deleted)
        recs, _ = await self.daemon.select(criteria, list(sel.runs))
        return recs

    def _runs(self, recs):
        return [run_message(self.daemon, r) for r in recs]

    @mapped
    async def LabelRuns(self, request, context):
        action = LABEL_ACTIONS.get(request.action)
        if action is None:
            raise errors.InvalidArgument("label action missing")
        recs = await self.daemon.label_runs(await self._selected(request.selection), action, request.value)
        return pb.LabelRunsResponse(runs=self._runs(recs))

    @mapped
    async def MarkRuns(self, request, context):
        recs = await self.daemon.mark_runs(await self._selected(request.selection), request.clear)
        return pb.MarkRunsResponse(runs=self._runs(recs))

    @mapped
    async def DeleteRuns(self, request, context):
        recs = await self.daemon.delete_runs(await self._selected(request.selection), request.permanent)
        return pb.DeleteRunsResponse(runs=self._runs(recs))

    @mapped
    async def RestoreRuns(self, request, context):
        recs = await self.daemon.restore_runs(await self._selected(request.selection, deleted=True))
        return pb.RestoreRunsResponse(runs=self._runs(recs))

    @mapped
    async def PurgeRuns(self, request, context):
        recs = await self.daemon.purge_runs(await self._selected(request.selection, deleted=True))
        return pb.PurgeRunsResponse(runs=[pb.Run(id=r.id, op_name=r.op_name, status=r.status, label=r.label) for r in recs])

    async def _one(self, sel):
        spec = sel.runs[0] if sel.runs else ""
        if sel.filter.archive:
            recs, _ = await self.daemon.select(_criteria(sel.filter), [spec or "1"], 1, archive=sel.filter.archive)
            return recs[0]
        return await self.daemon.get_run(spec, criteria=_criteria(sel.filter))

    @mapped
    async def ListRunFiles(self, request, context):
        rec = await self._one(request.selection)
        files = await self.daemon.list_files(rec, request.path, request.all, request.sourcecode, request.follow_links)
        return pb.ListRunFilesResponse(
            run=run_message(self.daemon, rec),
            files=[pb.RunFile(path=p, is_dir=d, is_link=link, size=size) for p, d, link, size in files],
        )

    @mapped
    async def ReadRunFile(self, request, context):
        rec = await self._one(request.selection)
        async for data in self.daemon.read_file(rec, request.path, request.output):
            yield pb.ReadRunFileResponse(data=data)

    @mapped
    async def CompareRuns(self, request, context):
        sel = request.selection
        cols, rows = await self.daemon.compare(
            _criteria(sel.filter, exclude_batch=True),
            list(sel.runs),
            request.columns,
            request.strict,
            request.skip_core,
            request.skip_op,
            _order(request),
            request.top,
        )
        return pb.CompareRunsResponse(
            columns=[pb.CompareColumn(header=c.header, kind=c.kind) for c in cols],
            rows=[pb.CompareRow(run_id=run_id, cells=[_cell(v) for v in values]) for run_id, values in rows],
        )

    @mapped
    async def ExportRuns(self, request, context):
        results = await self.daemon.export_runs(await self._selected(request.selection), request.dir, request.move)
        return pb.ExportRunsResponse(runs=[pb.RunTransfer(run_id=i, result=r, reason=why) for i, r, why in results])

    @mapped
    async def ImportRuns(self, request, context):
        sel = request.selection
        results = await self.daemon.import_runs(request.dir, list(sel.runs), _criteria(sel.filter), request.move)
        return pb.ImportRunsResponse(runs=[pb.RunTransfer(run_id=i, result=r, reason=why) for i, r, why in results])

    @mapped
    async def GetDiskUsage(self, request, context):
        usage = await self.daemon.disk_usage()
        return pb.GetDiskUsageResponse(usage=[pb.DiskUsage(name=n, path=p, bytes=b) for n, p, b in usage])

    @mapped
    async def GetResources(self, request, context):
        return resources_message(await self.daemon.queue.poll())  # the queue places runs on the freshest view

    @mapped
    async def WatchRun(self, request, context):
        if request.run:
            rec = await self.daemon.get_run(request.run)
        else:
            running, _ = await self.daemon.list_runs((runstate.RUNNING,), 1)
            if not running:
                raise errors.NotFound(
                    "nothing to watch\nYou can view the output of a specific run using 'guildctl watch RUN'."
                )
            rec = running[0]
        yield pb.WatchRunResponse(run=run_message(self.daemon, rec))
        async for is_stderr, chunk in self.daemon.watch(rec, request.tail, request.new_only, request.offset):
            yield pb.WatchRunResponse(stderr=chunk) if is_stderr else pb.WatchRunResponse(output=chunk)
        # No scalars here: the end is sent as soon as the process ends (GetRun has them).
        # By id, trash included: a run that deletes itself on success may be there already.
        rec = await self.daemon.io(self.daemon.store.get, rec.id) or rec
        yield pb.WatchRunResponse(ended=run_message(self.daemon, rec))

    @mapped
    async def StopRuns(self, request, context):
        recs = await self.daemon.stop_runs(list(request.runs))
        return pb.StopRunsResponse(runs=[run_message(self.daemon, r) for r in recs])

    @mapped
    async def ListQueue(self, request, context):
        return await self._queue_message()

    async def _queue_message(self, entries=True):
        """The queue's settings and holdings, and (with `entries`) every waiting run in order
        with the reason it waits."""
        queue = self.daemon.queue
        decisions = await queue.explain() if entries else []
        recs = {r.id: r for r in await self.daemon.io(self.daemon.store.get_many, [d.run_id for d in decisions])}
        entries = []
        for position, decision in enumerate(decisions, 1):
            entry = queue.entries.get(decision.run_id)
            rec = recs.get(decision.run_id)
            if entry is None or rec is None:
                continue
            request = entry.request
            entries.append(
                pb.QueueEntry(
                    run=run_message(self.daemon, rec),
                    resources=pb.ResourceRequest(
                        gpus=request.gpus,
                        devices=list(request.devices),
                        gpu_memory=request.gpu_memory,
                        no_gpus=decision.run_id in queue.no_gpus,
                    ),
                    options=pb.QueueOptions(priority=entry.priority, queue=entry.queue, after=list(entry.after)),
                    position=position,
                    reason=getattr(decision, "reason", "") or "starting",
                    queued_us=queue.queued_us.get(decision.run_id, 0),
                    front=entry.front,
                )
            )
        settings = queue.settings
        processing = queue.processing()
        p50, p99 = queue.plan_stats()
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
            user_gpu_cap=int(settings.get("user_gpu_cap") or 0),
            cpu_slots=queue.cpu_slots(),
            gpu_count=len(queue.snapshot.gpus) if queue.snapshot else 0,
            plans=queue.plans,
            waiting=len(queue.entries),
            plan_p50_ms=p50,
            plan_p99_ms=p99,
        )

    @mapped
    async def ConfigureQueue(self, request, context):
        if request.processing.gpus:
            await self.daemon.queue.check_queue_gpus(tuple(request.processing.gpus))
        self.daemon.queue.configure(
            paused=request.paused if request.HasField("paused") else None,
            queue_limits=dict(request.queue_limits),
            user_gpu_cap=request.user_gpu_cap if request.HasField("user_gpu_cap") else None,
            cpu_slots=request.cpu_slots if request.HasField("cpu_slots") else None,
            processing={
                "run_once": request.processing.run_once,
                "gpus": list(request.processing.gpus),
                "wait_for_running": request.processing.wait_for_running,
            },
        )
        return pb.ConfigureQueueResponse(queue=await self._queue_message(entries=False))

    @mapped
    async def SetQueuePriority(self, request, context):
        recs = [await self.daemon.get_run(spec) for spec in request.runs]
        await self.daemon.queue.set_priority([r.id for r in recs], request.priority)
        return pb.SetQueuePriorityResponse(runs=[run_message(self.daemon, r) for r in recs])

    @mapped
    async def CancelQueued(self, request, context):
        recs = [await self.daemon.get_run(spec) for spec in request.runs]
        await self.daemon.queue.cancel([r.id for r in recs])
        recs = [await self.daemon.get_run(r.id) for r in recs]
        return pb.CancelQueuedResponse(runs=[run_message(self.daemon, r) for r in recs])

    @mapped
    async def ShutdownDaemon(self, request, context):
        self._shutdown()
        return pb.ShutdownDaemonResponse()
