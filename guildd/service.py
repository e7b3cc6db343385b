"""The Guild gRPC servicer: thin. Each method converts the request (guildd.convert), calls
the part that owns the job (the catalog, the followers, the queue, the launcher), and
converts the answer back."""

import dataclasses
import os
from typing import AsyncIterator, Callable, Iterable, Protocol, Sequence

import grpc

from guild_common import __version__, errors
from guild_common.pb import guild_pb2 as pb, guild_pb2_grpc
from guildd import authz, convert, fsrights, runstate
from guildd.web import auth as webauth
from guildd.callers import Caller
from guildd.daemon import Daemon
from guildd.store import RunRecord, Summary
from guildd.rpc import mapped


class View(Protocol):
    """The web view's server, as StartView uses it (guildd.web.server.ViewServer)."""

    serving: bool

    async def serve(self, host: str, port: int, servicer: "GuildServicer") -> tuple[str, int, bool]: ...


class GuildServicer(guild_pb2_grpc.GuildServicer):
    def __init__(self, daemon: Daemon, shutdown: Callable[[], None], view: "View | None" = None) -> None:
        self.daemon = daemon
        self._view = view
        self.catalog = daemon.catalog
        self.followers = daemon.followers
        self.queue = daemon.queue
        self._shutdown = shutdown
        self._policy = authz.Policy(daemon.identities.shared, daemon.identities.admin_group)

    def _caller(self, context: grpc.aio.ServicerContext) -> Caller:
        """Who made this request, as the kernel vouches for it (guildd.callers): the token's
        owner (the interceptor in guildd.server refused requests without a valid one in a
        shared daemon), else the daemon's own user (a per-user daemon's socket is 0600)."""
        return self.daemon.identities.caller(dict(context.invocation_metadata() or ()))

    def _user(self, context: grpc.aio.ServicerContext) -> str:
        return self._caller(context).name

    async def _allowed(self, context: grpc.aio.ServicerContext, action: authz.Action, recs: Sequence[RunRecord]) -> Sequence[RunRecord]:
        """`recs`, once the caller may do `action` to every one of them (guildd.authz): else
        PermissionDenied, before anything is done. A per-user daemon's one user owns them all."""
        if self._policy.shared:
            authz.check_runs(self._policy, self._caller(context), action, await self.catalog.owners(recs))
        return recs

    def _run(self, rec: RunRecord, scalars: Iterable[Summary] = ()) -> pb.Run:
        return convert.run_message(rec, self.catalog.location(rec), self.catalog.running_pid(rec), scalars)

    def _runs(self, recs: Iterable[RunRecord]) -> list[pb.Run]:
        return [self._run(r) for r in recs]

    @mapped
    async def GetDaemonInfo(self, request: pb.GetDaemonInfoRequest, context: grpc.aio.ServicerContext) -> pb.GetDaemonInfoResponse:
        caller = self._caller(context)  # who they are to this daemon: `daemon status` tells them
        return pb.GetDaemonInfoResponse(
            version=__version__,
            pid=os.getpid(),
            guild_home=str(self.daemon.home),
            started_us=self.daemon.started_us,
            running=self.daemon.executor.running,
            user=caller.name,
            ready=self.daemon.ready.is_set(),
            state="ready" if self.daemon.ready.is_set() else self.catalog.state,
            shared=self.daemon.identities.shared,
            admin=caller.admin or not self.daemon.identities.shared,  # a per-user daemon's one user runs it
        )

    @mapped
    async def StartRun(self, request: pb.StartRunRequest, context: grpc.aio.ServicerContext) -> pb.StartRunResponse:
        wants = convert.queue_wants(request.queue) if request.HasField("queue") else None
        if request.needed and (matches := await self.daemon.launcher.run_needed(request.spec)):
            return pb.StartRunResponse(needed_matches=self._runs(matches))
        rec = await self.daemon.launcher.start_run(request.spec, request.stage, self._user(context), wants)
        return pb.StartRunResponse(run=self._run(rec))

    @mapped
    async def StartBatch(self, request: pb.StartBatchRequest, context: grpc.aio.ServicerContext) -> pb.StartBatchResponse:
        start = convert.batch_start(request)
        if request.needed and (matches := await self.daemon.launcher.batch_needed(start)):
            return pb.StartBatchResponse(needed_matches=self._runs(matches))
        rec = await self.daemon.launcher.start_batch(start, self._user(context))
        return pb.StartBatchResponse(run=self._run(rec))

    @mapped
    async def StartProtoRun(self, request: pb.StartProtoRunRequest, context: grpc.aio.ServicerContext) -> pb.StartProtoRunResponse:
        rec = await self.daemon.launcher.start_proto_run(convert.proto_start(request), self._user(context))
        return pb.StartProtoRunResponse(run=self._run(rec))

    @mapped
    async def RestartRun(self, request: pb.RestartRunRequest, context: grpc.aio.ServicerContext) -> pb.RestartRunResponse:
        if request.start:
            return await self._start_staged(request, context)
        await self._allowed(context, authz.Action.RESTART, [rec := await self.catalog.get_run(request.run)])
        request.run = rec.id  # the run checked, whatever the spec resolves to by now
        if request.needed and (matches := await self.daemon.launcher.restart_needed(convert.restart(request))):
            return pb.RestartRunResponse(needed_matches=self._runs(matches))
        rec, offset = await self.daemon.launcher.restart_run(convert.restart(request), self._user(context))
        return pb.RestartRunResponse(run=self._run(rec), output_offset=offset)

    async def _start_staged(self, request: pb.RestartRunRequest, context: grpc.aio.ServicerContext) -> pb.RestartRunResponse:
        """`run --start`: a staged run starts now; one that queue processing took meanwhile is
        answered as it is, for the client to follow; anything else is refused."""
        await self._allowed(context, authz.Action.START, [rec := await self.catalog.get_run(request.run)])
        request.run = rec.id  # the run checked, whatever the spec resolves to by now
        if request.needed and (matches := await self.daemon.launcher.restart_needed(convert.restart(request))):
            return pb.RestartRunResponse(needed_matches=self._runs(matches))
        if rec.status == runstate.STAGED:
            try:
                rec, offset = await self.daemon.launcher.restart_run(convert.restart(request), self._user(context))
                return pb.RestartRunResponse(run=self._run(rec), output_offset=offset)
            except errors.FailedPrecondition:
                rec = await self.catalog.get_run(rec.id)
                if not self.queue.taken(rec.id):
                    raise
        elif not self.queue.taken(rec.id):
            raise errors.FailedPrecondition(
                f"run {rec.id[:8]} is {rec.status}, not staged: --start starts a staged run (to run it again: --restart)")
        return pb.RestartRunResponse(run=self._run(rec), already_started=True)

    @mapped
    async def ListRuns(self, request: pb.ListRunsRequest, context: grpc.aio.ServicerContext) -> pb.ListRunsResponse:
        f = request.filter
        c = self._caller(context)  # an archive is theirs to name: read with their rights, never root's
        found = await self.catalog.listing(
            convert.criteria(f), list(request.runs), request.limit, convert.order(request), f.archive, request.with_command,
            fsrights.Account(c.uid, c.gid, c.groups), request.with_scalars, max(0, request.offset)
        )
        msgs = []
        for rec in found.recs:
            msg = convert.run_message(rec, self.catalog.location(rec), found.pids.get(rec.id, 0), found.scalars.get(rec.id, ()))
            if request.with_command:
                msg.command = convert.command_line(found.commands.get(rec.id))
            msgs.append(msg)
        return pb.ListRunsResponse(runs=msgs, total=found.total)

    @mapped
    async def GetRun(self, request: pb.GetRunRequest, context: grpc.aio.ServicerContext) -> pb.GetRunResponse:
        if request.filter.archive:
            c = self._caller(context)  # the archive is read with their rights (see ListRuns)
            rec = await self._one(request.run, request.filter, fsrights.Account(c.uid, c.gid, c.groups))
            return pb.GetRunResponse(run=self._run(rec))
        rec = await self.catalog.get_run(request.run, criteria=convert.criteria(request.filter))
        msg = self._run(rec, await self.followers.scalars(rec.id))
        details = await self.catalog.details(rec)
        if not await self._may(context, authz.Action.SEE_ENV, rec):
            details.pop("env", None)  # everyone may read every run, but its environment is its owner's
        return pb.GetRunResponse(run=convert.add_details(msg, details))

    async def _may(self, context: grpc.aio.ServicerContext, action: authz.Action, rec: RunRecord) -> bool:
        """Whether the caller may do `action` to the run (see _allowed), without refusing."""
        if not self._policy.shared:
            return True
        owner = (await self.catalog.owners([rec]))[rec.id]
        return authz.refusal(self._policy, self._caller(context), action, rec.id, owner) is None

    async def _selected(self, sel: pb.RunSelection, deleted: "bool | None" = None) -> list[RunRecord]:
        criteria = convert.criteria(sel.filter)
        if deleted is not None:
            criteria = dataclasses.replace(criteria, deleted=deleted)
        recs, _ = await self.catalog.select(criteria, list(sel.runs))
        return recs

    async def _one(self, spec: str, run_filter: pb.RunFilter, caller: "fsrights.Account | None" = None) -> RunRecord:
        if run_filter.archive:  # read with `caller`'s rights (Catalog.archive_store)
            recs, _ = await self.catalog.select(convert.criteria(run_filter), [spec or "1"], 1, archive=run_filter.archive,
                                                caller=caller)
            return recs[0]
        return await self.catalog.get_run(spec, criteria=convert.criteria(run_filter))

    @mapped
    async def LabelRuns(self, request: pb.LabelRunsRequest, context: grpc.aio.ServicerContext) -> pb.LabelRunsResponse:
        action = convert.label_action(request.action)
        recs = await self._allowed(context, authz.Action.LABEL, await self._selected(request.selection))
        recs = await self.catalog.label_runs(recs, action, request.value)
        return pb.LabelRunsResponse(runs=self._runs(recs))

    @mapped
    async def MarkRuns(self, request: pb.MarkRunsRequest, context: grpc.aio.ServicerContext) -> pb.MarkRunsResponse:
        action = authz.Action.UNMARK if request.clear else authz.Action.MARK
        recs = await self._allowed(context, action, await self._selected(request.selection))
        recs = await self.catalog.mark_runs(recs, request.clear)
        return pb.MarkRunsResponse(runs=self._runs(recs))

    @mapped
    async def TagRuns(self, request: pb.TagRunsRequest, context: grpc.aio.ServicerContext) -> pb.TagRunsResponse:
        change = convert.tag_change(request)
        recs = await self._allowed(context, authz.Action.TAG, await self._selected(request.selection))
        recs = await self.catalog.tag_runs(recs, change)
        return pb.TagRunsResponse(runs=self._runs(recs))

    @mapped
    async def CommentRuns(self, request: pb.CommentRunsRequest, context: grpc.aio.ServicerContext) -> pb.CommentRunsResponse:
        change = convert.comment_change(request, self._user(context))
        recs = await self._allowed(context, authz.Action.COMMENT, await self._selected(request.selection))
        recs = await self.catalog.comment_runs(recs, change)
        return pb.CommentRunsResponse(runs=self._runs(recs))

    @mapped
    async def DeleteRuns(self, request: pb.DeleteRunsRequest, context: grpc.aio.ServicerContext) -> pb.DeleteRunsResponse:
        if request.selection.filter.deleted and not request.permanent:  # trash to trash failed inside the daemon
            raise errors.InvalidArgument("runs in the trash are already deleted: purge them ('guildctl runs purge')")
        recs = await self._allowed(context, authz.Action.DELETE, await self._selected(request.selection))
        recs = await self.catalog.delete_runs(recs, request.permanent)
        return pb.DeleteRunsResponse(runs=self._runs(recs))

    @mapped
    async def RestoreRuns(self, request: pb.RestoreRunsRequest, context: grpc.aio.ServicerContext) -> pb.RestoreRunsResponse:
        recs = await self._allowed(context, authz.Action.RESTORE, await self._selected(request.selection, deleted=True))
        recs = await self.catalog.restore_runs(recs)
        return pb.RestoreRunsResponse(runs=self._runs(recs))

    @mapped
    async def PurgeRuns(self, request: pb.PurgeRunsRequest, context: grpc.aio.ServicerContext) -> pb.PurgeRunsResponse:
        recs = await self._allowed(context, authz.Action.PURGE, await self._selected(request.selection, deleted=True))
        recs = await self.catalog.purge_runs(recs)
        return pb.PurgeRunsResponse(runs=[convert.purged_message(r) for r in recs])

    @mapped
    async def ListRunFiles(self, request: pb.ListRunFilesRequest, context: grpc.aio.ServicerContext) -> pb.ListRunFilesResponse:
        sel = request.selection
        c = self._caller(context)  # an archive filter reads the archive with the caller's rights
        rec = await self._one(sel.runs[0] if sel.runs else "", sel.filter, fsrights.Account(c.uid, c.gid, c.groups))
        files = await self.catalog.list_files(rec, request.path, request.all, request.sourcecode, request.follow_links)
        return pb.ListRunFilesResponse(run=self._run(rec), files=convert.file_messages(files))

    @mapped
    async def ReadRunFile(self, request: pb.ReadRunFileRequest, context: grpc.aio.ServicerContext) -> AsyncIterator[pb.ReadRunFileResponse]:
        sel = request.selection
        c = self._caller(context)  # an archive filter reads the archive with the caller's rights
        rec = await self._one(sel.runs[0] if sel.runs else "", sel.filter, fsrights.Account(c.uid, c.gid, c.groups))
        async for data in self.catalog.read_file(rec, request.path, request.output):
            yield pb.ReadRunFileResponse(data=data)

    @mapped
    async def CompareRuns(self, request: pb.CompareRunsRequest, context: grpc.aio.ServicerContext) -> pb.CompareRunsResponse:
        sel = request.selection
        cols, rows = await self.catalog.compare(
            convert.criteria(sel.filter, exclude_batch=True),
            list(sel.runs),
            request.columns,
            request.strict,
            request.skip_core,
            request.skip_op,
            convert.order(request),
            request.top,
        )
        return convert.compare_message(cols, rows)

    @mapped
    async def ExportRuns(self, request: pb.ExportRunsRequest, context: grpc.aio.ServicerContext) -> pb.ExportRunsResponse:
        recs = await self._selected(request.selection)
        if request.move:  # the runs leave GUILD_HOME: a change, not a read
            await self._allowed(context, authz.Action.MOVE, recs)
        c = self._caller(context)  # the dir is theirs to name: written with their rights, never root's
        results = await self.catalog.export_runs(recs, request.dir, request.move, fsrights.Account(c.uid, c.gid, c.groups))
        return pb.ExportRunsResponse(runs=convert.transfer_messages(results))

    @mapped
    async def ImportRuns(self, request: pb.ImportRunsRequest, context: grpc.aio.ServicerContext) -> pb.ImportRunsResponse:
        sel = request.selection
        c = self._caller(context)  # the archive is read with their rights: the runs are then theirs
        results = await self.catalog.import_runs(request.dir, list(sel.runs), convert.criteria(sel.filter), request.move,
                                                 fsrights.Account(c.uid, c.gid, c.groups))
        return pb.ImportRunsResponse(runs=convert.transfer_messages(results))

    @mapped
    async def GetDiskUsage(self, request: pb.GetDiskUsageRequest, context: grpc.aio.ServicerContext) -> pb.GetDiskUsageResponse:
        return convert.disk_usage_message(await self.catalog.disk_usage())

    @mapped
    async def GetResources(self, request: pb.GetResourcesRequest, context: grpc.aio.ServicerContext) -> pb.GetResourcesResponse:
        return convert.resources_message(await self.queue.poll())  # the queue places runs on the freshest view

    @mapped
    async def WatchRun(self, request: pb.WatchRunRequest, context: grpc.aio.ServicerContext) -> AsyncIterator[pb.WatchRunResponse]:
        if request.run:
            rec = await self.catalog.get_run(request.run)
        else:
            running, _ = await self.catalog.list_runs((runstate.RUNNING,), 1)
            if not running:
                raise errors.NotFound(
                    "nothing to watch\nYou can view the output of a specific run using 'guildctl watch RUN'."
                )
            rec = running[0]
        yield pb.WatchRunResponse(run=self._run(rec))
        async for is_stderr, chunk in self.followers.watch(rec, request.tail, request.new_only, request.offset):
            yield pb.WatchRunResponse(stderr=chunk) if is_stderr else pb.WatchRunResponse(output=chunk)
        # No scalars here: the end is sent as soon as the process ends (GetRun has them).
        # By id, trash included: a run that deletes itself on success may be there already.
        rec = await self.catalog.get_by_id(rec.id) or rec
        yield pb.WatchRunResponse(ended=self._run(rec))

    @mapped
    async def StopRuns(self, request: pb.StopRunsRequest, context: grpc.aio.ServicerContext) -> pb.StopRunsResponse:
        if request.runs:
            recs = [await self.catalog.get_run(spec) for spec in request.runs]
        else:
            recs, _ = await self.catalog.list_runs((runstate.RUNNING,), 0)
        await self._allowed(context, authz.Action.STOP, recs)
        recs = await self.daemon.launcher.stop_runs([r.id for r in recs]) if recs else []
        return pb.StopRunsResponse(runs=self._runs(recs))

    @mapped
    async def ListQueue(self, request: pb.ListQueueRequest, context: grpc.aio.ServicerContext) -> pb.ListQueueResponse:
        return await self._queue_message()

    async def _queue_message(self, entries: bool = True) -> pb.ListQueueResponse:
        """The queue's settings and holdings, and (with `entries`) every waiting run in order
        with the reason it waits."""
        decisions = await self.queue.explain() if entries else []
        recs = await self.catalog.get_many([d.run_id for d in decisions])
        return convert.queue_message(self.queue, decisions, {r.id: self._run(r) for r in recs})

    @mapped
    async def ConfigureQueue(self, request: pb.ConfigureQueueRequest, context: grpc.aio.ServicerContext) -> pb.ConfigureQueueResponse:
        authz.check_daemon(self._policy, self._caller(context), authz.Action.QUEUE_SETTINGS)
        if request.processing.gpus:
            await self.queue.check_queue_gpus(tuple(request.processing.gpus))
        self.queue.configure(**convert.queue_settings(request))
        return pb.ConfigureQueueResponse(queue=await self._queue_message(entries=False))

    @mapped
    async def SetQueuePriority(self, request: pb.SetQueuePriorityRequest, context: grpc.aio.ServicerContext) -> pb.SetQueuePriorityResponse:
        recs = await self._allowed(context, authz.Action.PRIORITY, [await self.catalog.get_run(spec) for spec in request.runs])
        await self.queue.set_priority([r.id for r in recs], request.priority)
        return pb.SetQueuePriorityResponse(runs=self._runs(recs))

    @mapped
    async def CancelQueued(self, request: pb.CancelQueuedRequest, context: grpc.aio.ServicerContext) -> pb.CancelQueuedResponse:
        recs = await self._allowed(context, authz.Action.CANCEL, [await self.catalog.get_run(spec) for spec in request.runs])
        await self.queue.cancel([r.id for r in recs])
        recs = [await self.catalog.get_run(r.id) for r in recs]
        return pb.CancelQueuedResponse(runs=self._runs(recs))

    @mapped
    async def GetRunScalars(self, request: pb.GetRunScalarsRequest, context: grpc.aio.ServicerContext) -> pb.GetRunScalarsResponse:
        rec = await self.catalog.get_run(request.run)
        series = await self.catalog.scalar_history(rec, max(0, request.max_points))
        return pb.GetRunScalarsResponse(series=[pb.ScalarSeries(tag=t, steps=s, values=v) for t, s, v in series])

    @mapped
    async def GetBatch(self, request: pb.GetBatchRequest, context: grpc.aio.ServicerContext) -> pb.GetBatchResponse:
        rec = await self.catalog.get_run(request.run)
        view = await self.catalog.batch_view(rec)
        trials = [pb.Trial(number=n, run=self._run(t, view.scalars.get(t.id, ())), objective=value)
                  for n, t, value in view.trials]
        return pb.GetBatchResponse(run=self._run(rec), objective=view.column, maximize=view.maximize, trials=trials)

    @mapped
    async def StartView(self, request: pb.StartViewRequest, context: grpc.aio.ServicerContext) -> pb.StartViewResponse:
        if self._view is None:
            raise errors.FailedPrecondition("this guildd serves no web view")
        caller = self._caller(context)
        host = request.host or "127.0.0.1"
        if not self._view.serving and not webauth.loopback(host):
            authz.check_daemon(self._policy, caller, authz.Action.SERVE_VIEW)
        host, port, already = await self._view.serve(host, request.port, self)
        token = self.daemon.identities.issue_view(caller.uid)
        return pb.StartViewResponse(host=host, port=port, token=token, url=webauth.url(host, port, token), already=already)

    @mapped
    async def ShutdownDaemon(self, request: pb.ShutdownDaemonRequest, context: grpc.aio.ServicerContext) -> pb.ShutdownDaemonResponse:
        authz.check_daemon(self._policy, self._caller(context), authz.Action.SHUTDOWN)
        self._shutdown()
        return pb.ShutdownDaemonResponse()
