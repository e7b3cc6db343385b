"""The one module that talks to guildd: finding (or starting) the daemon for a GUILD_HOME,
calling RPCs, and translating gRPC errors back into guild_common.errors (the client's seam).
"""

import os
import pathlib
import socket
import stat
import sys

import grpc

from guild_common import __version__, daemonstart, errors, handshake, home as homelib, ownership
from guild_common.pb import guild_pb2 as pb, guild_pb2_grpc

AUTOSTART_ENV = "GUILDCTL_NO_AUTOSTART"
START_TIMEOUT = 60.0  # a loaded box can take a while to import gRPC
MAX_MESSAGE = 512 * 1024 * 1024
EXIT_WAIT = 5.0  # seconds a started daemon that stopped answering gets to exit and say why


def _answers(path, home=None):
    """True when something accepts connections on the Unix socket at `path` (checked with
    ownership.connect_path first: even a bare connect tells a fake server we are here).
    With `home`: PermissionDenied saying why when its socket refuses us."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(str(path))
        return True
    except PermissionError:
        if home is None:
            return False
        try:
            st = os.stat(path)
        except OSError:
            st = None
        raise errors.PermissionDenied(refusal_text(home, path, st, os.getuid())) from None
    except OSError:
        return False
    finally:
        s.close()


def refusal_text(home: pathlib.Path, path: pathlib.Path, st: os.stat_result | None, uid: int) -> str:
    """What is true when connecting to the socket at `path` is refused (EACCES), never "not
    running": whose daemon it is when it is another user's; the socket's mode when it is
    ours; a directory we can't search when the socket can't even be looked at (`st` None)."""
    where = f"cannot connect to guildd for {home} at {path}: permission denied"
    if st is None:
        return f"{where} (a directory on that path can't be searched by {ownership.user_name(uid)})"
    if st.st_uid != uid:
        return (
            f"guildd for {home} is the per-user daemon of {ownership.user_name(st.st_uid)} and serves only that "
            f"user; an administrator serves every user with 'guildd --shared' (README: Shared box)"
        )
    return f"{where} (the socket is yours but its mode is {stat.S_IMODE(st.st_mode):04o}; 'chmod 600 {path}' restores it)"


def obtain_token(path, timeout=10.0):
    """A token from the daemon's auth socket at `path` (guild_common.handshake).
    PermissionDenied with the daemon's reason when it gives none; OSError when nothing answers."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(path))
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(256)
            if not chunk:
                break
            data += chunk
    return handshake.parse(data, str(path))


def _not_ours(home):
    """The owner of `home` when it exists and is another user's (a shared box's home, or
    someone's own): no daemon of ours can be started there."""
    try:
        uid = os.stat(home).st_uid
    except OSError:
        return None
    return None if uid == os.getuid() else ownership.user_name(uid)


def start_daemon(home: pathlib.Path, quiet: bool = False) -> daemonstart.StartedDaemon | None:
    """Starts a per-user guildd for `home` in the background and waits until it answers.
    Two clients racing here end up with one daemon: the second guildd finds the home locked
    and exits, and both clients connect to the first. Returns the StartedDaemon (None when
    another client's daemon won), which tells why it exited if it does."""
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise errors.PermissionDenied(f"cannot use GUILD_HOME {home}: {e.strerror}") from e
    if not quiet:
        print(f"guildctl: starting guildd for {home} (log: {homelib.log_path(home)})", file=sys.stderr)
    return daemonstart.start(home, lambda: _answers(ownership.connect_path(home)), START_TIMEOUT, lost_race_ok=True)


class Client:
    def __init__(self, home, autostart=None, started=None):
        self.home = home
        if autostart is None:
            autostart = not os.environ.get(AUTOSTART_ENV)
        self.started = started  # the StartedDaemon, when this client (or its caller) started it
        # Checked before anything is sent: a socket another user could have put there would
        # receive the whole run spec (source snapshot, environment).
        path = ownership.connect_path(home)
        if not _answers(path, home):
            owner = _not_ours(home)
            if owner:
                raise errors.DaemonUnavailable(
                    f"guildd is not running for {home}, which belongs to {owner}: ask its administrator "
                    f"to start it (e.g. 'sudo systemctl start guildd')"
                )
            if not autostart:
                raise errors.DaemonUnavailable(
                    f"guildd is not running for {home} (start it with 'guildctl daemon start')"
                )
            self.started = start_daemon(home)
            path = ownership.connect_path(home)
        self._auth_path = homelib.auth_socket_path(path)
        self._metadata = self._identify()
        self.channel = grpc.insecure_channel(
            f"unix:{path}",
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE),
                ("grpc.max_send_message_length", MAX_MESSAGE),
            ],
        )
        self.stub = guild_pb2_grpc.GuildStub(self.channel)
        self.info = self._first_answer(path)
        if not self.info.ready and self.info.state:
            print(f"guildctl: guildd is {self.info.state}; commands wait until it is done", file=sys.stderr)
        if self.info.version != __version__:
            print(
                f"guildctl: warning: guildd for {home} is version {self.info.version}, guildctl is "
                f"{__version__}; restart it with 'guildctl daemon stop'",
                file=sys.stderr,
            )

    def close(self):
        self.channel.close()

    def _first_answer(self, path):
        """GetDaemonInfo, the first call. Something that accepts connections on the socket
        but can't answer it is no guildd of ours (another program listening there, a daemon
        that is exiting): FailedPrecondition saying so, never "guildd is not running"."""
        try:
            return self.daemon_info()
        except errors.DaemonUnavailable as e:
            if self.started is not None or self._metadata is not None:
                raise  # a daemon we started (it says why it exited) or one that handed us a token
            raise errors.FailedPrecondition(
                f"something accepts connections on {path} but does not answer as guildd ({e}); "
                f"if no guildd runs for {self.home}, stop what listens there or remove {path}"
            ) from None

    def _identify(self):
        """The metadata that tells the daemon who we are: a token from its auth socket, which
        it binds to the uid the kernel reports for this process (guildd.tokens). None from a
        daemon without one (an older version): it serves only its own user."""
        try:
            return ((handshake.METADATA_KEY, obtain_token(self._auth_path)),)
        except (FileNotFoundError, ConnectionRefusedError):
            return None
        except OSError as e:
            raise errors.DaemonUnavailable(f"cannot reach guildd's auth socket {self._auth_path}: {e.strerror or e}") from None

    def call(self, name, request, timeout=600.0):
        for attempt in range(2):
            try:
                return getattr(self.stub, name)(request, timeout=timeout, metadata=self._metadata)
            except grpc.RpcError as e:
                if attempt == 0 and e.code() == grpc.StatusCode.UNAUTHENTICATED:
                    self._metadata = self._identify()  # a token that expired, or a restarted daemon
                    continue
                raise self.translate(e) from None

    def stream(self, name, request):
        """Iterates a server stream; the returned iterator's cancel() ends it."""
        return _Stream(getattr(self.stub, name)(request, metadata=self._metadata), self.translate)

    def translate(self, e):
        """translate(), but a daemon this client started that is gone says why it exited (it
        answers before its start-up is done, so it can still fail after that)."""
        if self.started is not None and e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
            reason = self.started.exit_reason(wait=EXIT_WAIT)
            if reason is not None:
                return errors.DaemonUnavailable(f"guildd exited: {reason}")
        return translate(e, self.home)

    def daemon_info(self):
        return self.call("GetDaemonInfo", pb.GetDaemonInfoRequest(), timeout=10)

    def start_run(self, spec, stage=False, queue=None):
        return self.call("StartRun", pb.StartRunRequest(spec=spec, stage=stage, queue=queue)).run

    def start_batch(self, **kw):
        return self.call("StartBatch", pb.StartBatchRequest(**kw)).run

    def start_proto_run(self, **kw):
        return self.call("StartProtoRun", pb.StartProtoRunRequest(**kw)).run

    def restart_run(self, **kw):
        """The restarted run, and the output offset where its new output begins."""
        resp = self.call("RestartRun", pb.RestartRunRequest(**kw))
        return resp.run, resp.output_offset

    def start_staged(self, **kw):
        """`run --start`: the run, the output offset where its new output begins, and whether
        queue processing had started it already."""
        resp = self.call("RestartRun", pb.RestartRunRequest(start=True, **kw))
        return resp.run, resp.output_offset, resp.already_started

    def list_runs(self, statuses=(), limit=0, runs=(), run_filter=None, min="", max="", with_command=False):
        run_filter = run_filter or pb.RunFilter(statuses=statuses)
        req = pb.ListRunsRequest(
            filter=run_filter, limit=limit, runs=list(runs), min=min or "", max=max or "", with_command=with_command
        )
        resp = self.call("ListRuns", req)
        return list(resp.runs), resp.total

    def get_run(self, run="", statuses=(), run_filter=None):
        run_filter = run_filter or pb.RunFilter(statuses=statuses)
        return self.call("GetRun", pb.GetRunRequest(run=run, filter=run_filter)).run

    def label_runs(self, selection, action, value=""):
        return list(self.call("LabelRuns", pb.LabelRunsRequest(selection=selection, action=action, value=value)).runs)

    def mark_runs(self, selection, clear=False):
        return list(self.call("MarkRuns", pb.MarkRunsRequest(selection=selection, clear=clear)).runs)

    def delete_runs(self, selection, permanent=False):
        return list(self.call("DeleteRuns", pb.DeleteRunsRequest(selection=selection, permanent=permanent)).runs)

    def restore_runs(self, selection):
        return list(self.call("RestoreRuns", pb.RestoreRunsRequest(selection=selection)).runs)

    def purge_runs(self, selection):
        return list(self.call("PurgeRuns", pb.PurgeRunsRequest(selection=selection)).runs)

    def list_files(self, selection, **kw):
        return self.call("ListRunFiles", pb.ListRunFilesRequest(selection=selection, **kw))

    def read_file(self, selection, path="", output=False, sourcecode=False):
        req = pb.ReadRunFileRequest(selection=selection, path=path, output=output, sourcecode=sourcecode)
        for msg in self.stream("ReadRunFile", req):
            yield msg.data

    def compare_runs(self, selection, **kw):
        return self.call("CompareRuns", pb.CompareRunsRequest(selection=selection, **kw), timeout=600)

    def export_runs(self, selection, dest, move=False):
        return list(self.call("ExportRuns", pb.ExportRunsRequest(selection=selection, dir=dest, move=move), timeout=3600).runs)

    def import_runs(self, archive, selection, move=False):
        req = pb.ImportRunsRequest(dir=archive, selection=selection, move=move)
        return list(self.call("ImportRuns", req, timeout=3600).runs)

    def disk_usage(self):
        return list(self.call("GetDiskUsage", pb.GetDiskUsageRequest(), timeout=600).usage)

    def list_queue(self):
        return self.call("ListQueue", pb.ListQueueRequest())

    def configure_queue(self, **kw):
        return self.call("ConfigureQueue", pb.ConfigureQueueRequest(**kw)).queue

    def set_queue_priority(self, runs, priority):
        return list(self.call("SetQueuePriority", pb.SetQueuePriorityRequest(runs=list(runs), priority=priority)).runs)

    def cancel_queued(self, runs):
        return list(self.call("CancelQueued", pb.CancelQueuedRequest(runs=list(runs))).runs)

    def get_resources(self):
        return self.call("GetResources", pb.GetResourcesRequest(), timeout=60)

    def watch_run(self, run="", tail=0, new_only=False, offset=0):
        return self.stream("WatchRun", pb.WatchRunRequest(run=run, tail=tail, new_only=new_only, offset=offset))

    def stop_runs(self, runs=()):
        return list(self.call("StopRuns", pb.StopRunsRequest(runs=list(runs))).runs)

    def shutdown_daemon(self):
        return self.call("ShutdownDaemon", pb.ShutdownDaemonRequest(), timeout=10)


class _Stream:
    def __init__(self, call, translate):
        self._call = call
        self._translate = translate

    def __iter__(self):
        try:
            yield from self._call
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.CANCELLED:
                return
            raise self._translate(e) from None

    def cancel(self):
        self._call.cancel()


def translate(e, home):
    """A gRPC error as the GuildError the daemon raised (or an unreachable-daemon error)."""
    code = e.code()
    if code == grpc.StatusCode.UNAVAILABLE:
        return errors.DaemonUnavailable(f"cannot reach guildd for {home}: {e.details()}")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return errors.DaemonUnavailable(f"guildd for {home} did not answer in time")
    return errors.for_grpc_code(code.name)(e.details() or code.name.lower())
