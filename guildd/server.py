"""The daemon's entry point as a library function: `serve(home)` runs guildd in the foreground
until SIGTERM/SIGINT (or a ShutdownDaemon request) and returns. Tests call it in a thread with
`handle_signals=False`.

Shutdown, in order: stop accepting (server.stop with a grace period), stop watching runs
(they keep running under their shims), flush and close the index, remove the socket.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pathlib
import signal
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from guild_common import __version__, errors, home as homelib, ownership
from guild_common.pb import guild_pb2_grpc
from guild_common.handshake import METADATA_KEY
from guildd import daemonlog, homelock, tokens
from guildd.daemon import Daemon, Options
from guildd.service import GuildServicer
from guildd.web.server import ViewServer

log = logging.getLogger("guildd")

MAX_MESSAGE = 512 * 1024 * 1024  # source snapshots travel in the run spec
SHUTDOWN_GRACE = 2.0


def _prepare_socket(home: pathlib.Path, shared: bool = False) -> pathlib.Path:
    """Removes the sockets left by a dead daemon (we hold the home lock, so they are stale)
    and returns the path to bind, leaving a link in GUILD_HOME when that path is elsewhere.
    Refuses a socket directory that isn't this user's alone, and anything at the sockets'
    paths that isn't this user's socket or link (never removing it)."""
    uid = os.getuid()
    bind = homelib.socket_bind_path(home, shared)
    link = homelib.socket_link(home)
    if bind != link:
        ownership.private_dir(bind.parent, uid, mode=0o755 if shared else 0o700)
    for path in {bind, link, homelib.auth_socket_path(bind)}:
        st = ownership.lstat(path)
        if st is None:
            continue
        reason = ownership.check_link(st, uid)
        if reason:
            raise errors.PermissionDenied(f"refusing to replace {path}: it {reason}")
        path.unlink()
    if bind != link:
        link.symlink_to(bind)
    return bind


def _remove_socket(home: pathlib.Path, shared: bool = False) -> None:
    """Removes the sockets and the link, but only while they are still ours: the directory
    may have been replaced under a running daemon."""
    uid = os.getuid()
    bind = homelib.socket_bind_path(home, shared)
    for path in {bind, homelib.auth_socket_path(bind), homelib.socket_link(home)}:
        st = ownership.lstat(path)
        reason = st and ownership.check_link(st, uid)
        if reason:
            log.warning("leaving %s: it %s", path, reason)
        elif st:
            path.unlink(missing_ok=True)


async def _serve(home: pathlib.Path, handle_signals: bool, ready: Callable[[], Any] | None, options: Options) -> None:
    stop = asyncio.Event()
    why: list[str] = []  # what asked the daemon to stop, for the log

    def stop_for(reason: str) -> None:
        why.append(reason)
        stop.set()

    loop = asyncio.get_running_loop()
    if handle_signals:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop_for, sig.name)  # handlers only record the signal
    daemon = Daemon(home, options)
    server = grpc.aio.server(
        interceptors=[RequireIdentity(daemon.identities), WaitUntilReady(daemon.ready)],
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE),
            ("grpc.max_send_message_length", MAX_MESSAGE),
        ]
    )
    view = ViewServer(daemon.identities, daemon.version, str(home))  # served from the first StartView on
    guild_pb2_grpc.add_GuildServicer_to_server(GuildServicer(daemon, lambda: stop_for("a ShutdownDaemon request"), view), server)
    bind = _prepare_socket(home, options.shared)
    # Per-user: 0600, only this user connects. Shared: every local user connects, and each
    # request is attributed to the uid the kernel reports on the auth socket (guildd.tokens).
    mode = 0o666 if options.shared else 0o600
    old_umask = os.umask(0o777 & ~mode)
    try:
        _listen(server, bind)
    finally:
        os.umask(old_umask)
    handshake = await tokens.serve_handshake(daemon.identities, homelib.auth_socket_path(bind), mode)
    await server.start()
    log.info("guildd %s serving %s on %s (pid %d%s)", __version__, home, bind, os.getpid(),
             ", shared: every local user" if options.shared else "")
    try:
        # Requests wait (WaitUntilReady) while a first start indexes the runs on disk.
        if not await _start_up(daemon, stop):
            raise errors.GuildError(f"stopped by {why[0]} during start-up")
        daemon.ready.set()
        if ready:
            ready()
        await stop.wait()
    finally:
        # Also when the start failed: the server stops and the socket goes, in order.
        log.info("shutting down%s (runs keep running)", f" on {why[0]}" if why else "")
        # Requests still waiting for a start-up that won't finish get no grace.
        handshake.close()
        await view.close()
        await server.stop(SHUTDOWN_GRACE if daemon.ready.is_set() else 0)
        await daemon.close()
        _remove_socket(home, options.shared)
        log.info("stopped")


def _listen(server: grpc.aio.Server, bind: pathlib.Path) -> None:
    """Listens on the socket at `bind`; FailedPrecondition naming the kernel's reason when it
    can't (gRPC's own error says only that it failed)."""
    try:
        server.add_insecure_port(f"unix:{bind}")
    except RuntimeError:
        raise errors.FailedPrecondition(f"cannot listen on {bind}: {bind_error(bind)}") from None


def bind_error(path: pathlib.Path) -> str:
    """Why a socket can't be bound at `path`, as a plain bind of it says. If that bind works
    (the reason was passing), the socket it made is removed again."""
    with socket.socket(socket.AF_UNIX) as sock:
        try:
            sock.bind(str(path))
        except OSError as e:
            return e.strerror or str(e)
    path.unlink(missing_ok=True)
    return "gRPC could not bind it, though a plain bind could (see GRPC_VERBOSITY=debug)"


async def _start_up(daemon: Daemon, stop: asyncio.Event) -> bool:
    """The daemon's reconcile, unless it is asked to stop first (SIGTERM while a first start
    indexes many runs): then the index's sync stops at its next batch of runs (each batch is
    one transaction: nothing is left half-written), the rest of start-up is cancelled (the
    next start does it again from the run dirs), and False is returned."""
    reconciling = asyncio.ensure_future(daemon.reconcile())
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({reconciling, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if reconciling.done():
        stopping.cancel()
        reconciling.result()  # raises what made start-up fail
        return True
    daemon.stop_start_up()
    reconciling.cancel()
    try:
        await reconciling
    except asyncio.CancelledError:
        pass
    return False


class RequireIdentity(grpc.aio.ServerInterceptor):
    """A shared daemon's gate: a request without a token the handshake issued is refused
    (UNAUTHENTICATED) before any servicer sees it. A per-user daemon lets it through: only
    its own user can reach its socket."""

    def __init__(self, identities: tokens.Identities) -> None:
        self._identities = identities

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(details)
        if handler is None or not self._identities.shared:
            return handler
        token = dict(details.invocation_metadata or ()).get(METADATA_KEY)
        if isinstance(token, str) and self._identities.resolve(token) is not None:
            return handler
        return _refusal(handler)


def _refusal(handler: grpc.RpcMethodHandler[Any, Any]) -> grpc.RpcMethodHandler[Any, Any]:
    async def refuse(_request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, tokens.UNAUTHENTICATED)

    async def refuse_stream(_request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, tokens.UNAUTHENTICATED)
        yield  # an async generator, as the stream's handler must be

    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(refuse_stream, handler.request_deserializer, handler.response_serializer)
    return grpc.unary_unary_rpc_method_handler(refuse, handler.request_deserializer, handler.response_serializer)


class WaitUntilReady(grpc.aio.ServerInterceptor):
    """Holds requests until the daemon has reconciled its index with the run dirs; only the
    daemon's own info and shutdown answer at once."""

    ALWAYS = ("/GetDaemonInfo", "/ShutdownDaemon")

    def __init__(self, ready: asyncio.Event) -> None:
        self._ready = ready

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        if not details.method.endswith(self.ALWAYS):
            await self._ready.wait()
        return await continuation(details)


def serve(home: pathlib.Path, handle_signals: bool = True, log_to_stderr: bool = True,
          ready: Callable[[], Any] | None = None, lock_fd: int | None = None, options: Options | None = None) -> None:
    """Runs the daemon for `home` until it is asked to stop. Raises GuildError for a home it
    can't use or one another daemon already serves; whatever ends it, the reason is logged.
    `lock_fd`: the home's lock, when the caller has claimed it already."""
    options = options or Options()
    try:
        if lock_fd is None:
            lock_fd = homelock.claim(home)
        try:
            daemonlog.setup(home, log_to_stderr)
            asyncio.run(_serve(home, handle_signals, ready, options))
        finally:
            os.close(lock_fd)
    except Exception as e:
        daemonlog.log_exit(home, e)  # every exit says why in guildd.log
        raise
