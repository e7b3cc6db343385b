"""The Guild gRPC servicer: thin. Each method converts the request, calls the Daemon, and
converts the result back."""

import os

from guild_common import errors, rundir
from guild_common.pb import guild_pb2 as pb, guild_pb2_grpc
from guild_common import __version__
from guildd import runstate
from guildd.rpc import mapped


def run_message(daemon, rec, scalars=()):
    run_dir = daemon.run_dir(rec.id)
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


def _statuses(run_filter):
    return tuple(run_filter.statuses) if run_filter else ()


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
        )

    @mapped
    async def StartRun(self, request, context):
        rec = await self.daemon.start_run(request.spec, request.stage, self._user(context))
        return pb.StartRunResponse(run=run_message(self.daemon, rec))

    @mapped
    async def StartProtoRun(self, request, context):
        rec = await self.daemon.start_proto_run(request, self._user(context))
        return pb.StartProtoRunResponse(run=run_message(self.daemon, rec))

    @mapped
    async def RestartRun(self, request, context):
        rec, offset = await self.daemon.restart_run(request, self._user(context))
        return pb.RestartRunResponse(run=run_message(self.daemon, rec), output_offset=offset)

    @mapped
    async def ListRuns(self, request, context):
        recs, total = await self.daemon.list_runs(_statuses(request.filter), request.limit)
        return pb.ListRunsResponse(runs=[run_message(self.daemon, r) for r in recs], total=total)

    @mapped
    async def GetRun(self, request, context):
        rec = await self.daemon.get_run(request.run, _statuses(request.filter))
        scalars = await self.daemon.scalars(rec.id)
        return pb.GetRunResponse(run=run_message(self.daemon, rec, scalars))

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
        async for chunk in self.daemon.watch(rec, request.tail, request.new_only, request.offset):
            yield pb.WatchRunResponse(output=chunk)
        # No scalars here: the end is sent as soon as the process ends (GetRun has them).
        rec = await self.daemon.get_run(rec.id)
        yield pb.WatchRunResponse(ended=run_message(self.daemon, rec))

    @mapped
    async def StopRuns(self, request, context):
        recs = await self.daemon.stop_runs(list(request.runs))
        return pb.StopRunsResponse(runs=[run_message(self.daemon, r) for r in recs])

    @mapped
    async def ShutdownDaemon(self, request, context):
        self._shutdown()
        return pb.ShutdownDaemonResponse()
