"""The daemon's entry point as a library function: `serve(home)` runs guildd in the foreground
until SIGTERM/SIGINT (or a ShutdownDaemon request) and returns. Tests call it in a thread with
`handle_signals=False`.

Shutdown, in order: stop accepting (server.stop with a grace period), stop watching runs
(they keep running under their shims), flush and close the index, remove the socket.
"""

import asyncio
import logging
import os
import signal

import grpc

from guild_common import __version__, home as homelib
from guild_common.pb import guild_pb2_grpc
from guildd import homelock
from guildd.daemon import Daemon
from guildd.service import GuildServicer

log = logging.getLogger("guildd")

MAX_MESSAGE = 512 * 1024 * 1024  # source snapshots travel in the run spec
SHUTDOWN_GRACE = 2.0


def _prepare_socket(home):
    """Removes a socket left by a dead daemon (we hold the home lock, so it is stale) and
    returns the path to bind, leaving a link in GUILD_HOME when that path is elsewhere."""
    bind = homelib.socket_bind_path(home)
    link = homelib.socket_link(home)
    for path in {bind, link}:
        if path.is_socket() or path.is_symlink():
            path.unlink()
    if bind != link:
        bind.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        link.symlink_to(bind)
    return bind


def _remove_socket(home):
    for path in {homelib.socket_bind_path(home), homelib.socket_link(home)}:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def setup_logging(home, to_stderr):
    handlers = [logging.FileHandler(homelib.log_path(home))]
    if to_stderr:
        handlers.append(logging.StreamHandler())
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s [%(name)s] %(message)s",
        handlers=handlers,
        force=True,
    )


async def _serve(home, handle_signals, ready):
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    if handle_signals:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)  # handlers only record the signal
    daemon = Daemon(home)
    server = grpc.aio.server(
        interceptors=[WaitUntilReady(daemon.ready)],
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE),
            ("grpc.max_send_message_length", MAX_MESSAGE),
        ]
    )
    guild_pb2_grpc.add_GuildServicer_to_server(GuildServicer(daemon, stop.set), server)
    bind = _prepare_socket(home)
    old_umask = os.umask(0o177)  # the socket is created 0600: only this user connects
    try:
        server.add_insecure_port(f"unix:{bind}")
    finally:
        os.umask(old_umask)
    await server.start()
    log.info("guildd %s serving %s on %s (pid %d)", __version__, home, bind, os.getpid())
    # Requests wait (WaitUntilReady) while a first start indexes the runs on disk.
    await daemon.reconcile()
    daemon.ready.set()
    if ready:
        ready()
    try:
        await stop.wait()
    finally:
        log.info("shutting down (runs keep running)")
        await server.stop(SHUTDOWN_GRACE)
        await daemon.close()
        _remove_socket(home)
        log.info("stopped")


class WaitUntilReady(grpc.aio.ServerInterceptor):
    """Holds requests until the daemon has reconciled its index with the run dirs; only the
    daemon's own info and shutdown answer at once."""

    ALWAYS = ("/GetDaemonInfo", "/ShutdownDaemon")

    def __init__(self, ready):
        self._ready = ready

    async def intercept_service(self, continuation, details):
        if not details.method.endswith(self.ALWAYS):
            await self._ready.wait()
        return await continuation(details)


def serve(home, handle_signals=True, log_to_stderr=True, ready=None, lock_fd=None):
    """Runs the daemon for `home` until it is asked to stop. Raises GuildError for a home it
    can't use or one another daemon already serves. `lock_fd`: the home's lock, when the
    caller has claimed it already."""
    if lock_fd is None:
        lock_fd = homelock.claim(home)
    try:
        setup_logging(home, log_to_stderr)
        asyncio.run(_serve(home, handle_signals, ready))
    finally:
        os.close(lock_fd)
