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
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from guild_common import __version__, errors, home as homelib, ownership
from guild_common.pb import guild_pb2_grpc
from guildd import daemonlog, homelock
from guildd.daemon import Daemon
from guildd.service import GuildServicer

log = logging.getLogger("guildd")

MAX_MESSAGE = 512 * 1024 * 1024  # source snapshots travel in the run spec
SHUTDOWN_GRACE = 2.0


def _prepare_socket(home: pathlib.Path) -> pathlib.Path:
    """Removes a socket left by a dead daemon (we hold the home lock, so it is stale) and
    returns the path to bind, leaving a link in GUILD_HOME when that path is elsewhere.
    Refuses a socket directory that isn't this user's alone, and anything at the socket's
    paths that isn't this user's socket or link (never removing it)."""
    uid = os.getuid()
    bind = homelib.socket_bind_path(home)
    link = homelib.socket_link(home)
    if bind != link:
        ownership.private_dir(bind.parent, uid)
    for path in {bind, link}:
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


def _remove_socket(home: pathlib.Path) -> None:
    """Removes the socket and its link, but only while they are still ours: the directory
    may have been replaced under a running daemon."""
    uid = os.getuid()
    for path in {homelib.socket_bind_path(home), homelib.socket_link(home)}:
        st = ownership.lstat(path)
        reason = st and ownership.check_link(st, uid)
        if reason:
            log.warning("leaving %s: it %s", path, reason)
        elif st:
            path.unlink(missing_ok=True)


async def _serve(home: pathlib.Path, handle_signals: bool, ready: Callable[[], Any] | None,
                 queue_always_on: bool) -> None:
    stop = asyncio.Event()
    why: list[str] = []  # what asked the daemon to stop, for the log

    def stop_for(reason: str) -> None:
        why.append(reason)
        stop.set()

    loop = asyncio.get_running_loop()
    if handle_signals:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop_for, sig.name)  # handlers only record the signal
    daemon = Daemon(home, queue_always_on)
    server = grpc.aio.server(
        interceptors=[WaitUntilReady(daemon.ready)],
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE),
            ("grpc.max_send_message_length", MAX_MESSAGE),
        ]
    )
    guild_pb2_grpc.add_GuildServicer_to_server(GuildServicer(daemon, lambda: stop_for("a ShutdownDaemon request")), server)
    bind = _prepare_socket(home)
    old_umask = os.umask(0o177)  # the socket is created 0600: only this user connects
    try:
        server.add_insecure_port(f"unix:{bind}")
    finally:
        os.umask(old_umask)
    await server.start()
    log.info("guildd %s serving %s on %s (pid %d)", __version__, home, bind, os.getpid())
    try:
        # Requests wait (WaitUntilReady) while a first start indexes the runs on disk.
        await daemon.reconcile()
        daemon.ready.set()
        if ready:
            ready()
        await stop.wait()
    finally:
        # Also when the start failed: the server stops and the socket goes, in order.
        log.info("shutting down%s (runs keep running)", f" on {why[0]}" if why else "")
        # Requests still waiting for a start-up that won't finish get no grace.
        await server.stop(SHUTDOWN_GRACE if daemon.ready.is_set() else 0)
        await daemon.close()
        _remove_socket(home)
        log.info("stopped")


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
          ready: Callable[[], Any] | None = None, lock_fd: int | None = None, queue_always_on: bool = False) -> None:
    """Runs the daemon for `home` until it is asked to stop. Raises GuildError for a home it
    can't use or one another daemon already serves; whatever ends it, the reason is logged.
    `lock_fd`: the home's lock, when the caller has claimed it already. `queue_always_on`:
    staged runs start as resources free, without `guildctl queue start` (a shared box)."""
    try:
        if lock_fd is None:
            lock_fd = homelock.claim(home)
        try:
            daemonlog.setup(home, log_to_stderr)
            asyncio.run(_serve(home, handle_signals, ready, queue_always_on))
        finally:
            os.close(lock_fd)
    except Exception as e:
        daemonlog.log_exit(home, e)  # every exit says why in guildd.log
        raise
