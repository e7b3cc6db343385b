"""Identity for gRPC requests, from the kernel: the token handshake.

gRPC Python never shows a servicer the peer credentials of the Unix-socket connection a
request came on (grpc/grpc#15511, #28755), so the kernel's word is taken on a second socket
that guildd serves itself, next to the gRPC one (homelib.auth_socket_path):

1. The client connects to it. The daemon reads the connection's SO_PEERCRED: the uid of the
   connecting process, as the kernel recorded it at connect() (a client cannot choose it).
2. The daemon answers with a fresh random token (32 bytes from `secrets`) bound to that uid,
   and closes the connection. The client keeps it in memory only.
3. The client sends it with every gRPC request (metadata `guild-token`); the server maps it
   back to the uid's Caller. A shared daemon refuses requests without a token it issued.

A token is worth exactly the uid the kernel reported for whoever asked for it. Another user
can't obtain someone else's: it crosses only the two Unix sockets (no one else can read a
connection's bytes), lives in the client process's memory (which other users can't read),
is never written to a file, the environment or a command line, and can't be guessed (256
bits). A request that claims another identity in its metadata, its fields or its
environment is still the token's uid: nothing else is read. Tokens expire after a day
unused and each uid holds at most MAX_PER_UID (the oldest goes first).

The web view (guildd.web) has tokens of its own (`issue_view`): one is asked for over the
gRPC socket (so by a kernel-verified caller), printed in the page's URL and kept by a browser,
so unlike a handshake token it does leave the process; it opens only the web view (the gRPC
server's interceptor admits only handshake tokens). Web tokens follow the same expiry and
per-uid cap, separately.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pathlib
import secrets
import socket
import struct
import time

from guild_common import errors
from guild_common import handshake
from guild_common.handshake import METADATA_KEY
from guildd import callers
from guildd.callers import Caller

log = logging.getLogger("guildd.tokens")

TTL_SECONDS = 24 * 3600.0
MAX_PER_UID = 256
_UCRED = struct.Struct("3i")  # pid, uid, gid


class _Tokens:
    """Random tokens, each standing for a Caller: expired after TTL_SECONDS unused, at most
    MAX_PER_UID per uid (the least recently used go first)."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[Caller, float]] = {}  # token -> (caller, last used, monotonic)

    def issue(self, caller: Caller) -> str:
        now = time.monotonic()
        mine = []
        for token, (holder, used) in list(self._entries.items()):
            if now - used > TTL_SECONDS:
                del self._entries[token]
            elif holder.uid == caller.uid:
                mine.append((used, token))
        for _used, token in sorted(mine)[: max(0, len(mine) - MAX_PER_UID + 1)]:
            del self._entries[token]
        token = secrets.token_urlsafe(32)
        self._entries[token] = (caller, now)
        return token

    def resolve(self, token: str) -> Caller | None:
        """The token's Caller (its use noted); None for a token not issued, or expired."""
        entry = self._entries.get(token)
        if entry is None:
            return None
        caller, used = entry
        now = time.monotonic()
        if now - used > TTL_SECONDS:
            del self._entries[token]
            return None
        self._entries[token] = (caller, now)
        return caller


class Identities:
    """Tokens issued to kernel-verified uids, and the Caller of a request's metadata."""

    def __init__(self, shared: bool, admin_group: str | None = None) -> None:
        self.shared = shared
        self.admin_group = admin_group
        self.owner = callers.daemon_user(admin_group)
        self._tokens = _Tokens()  # the handshake's
        self._views = _Tokens()  # the web view's

    def issue(self, uid: int) -> str:
        """A new token for `uid` (from SO_PEERCRED). PermissionDenied for a uid with no
        account, and in a per-user daemon for any uid but its own."""
        return self._tokens.issue(self._account(uid))

    def _account(self, uid: int) -> Caller:
        if not self.shared and uid != self.owner.uid:
            raise errors.PermissionDenied(f"this guildd serves only {self.owner.describe()}")
        return callers.lookup(uid, self.admin_group) if uid != self.owner.uid else self.owner

    def resolve(self, token: str) -> Caller | None:
        """The Caller a token was issued to; None for a token this daemon didn't issue (or
        one that expired)."""
        return self._tokens.resolve(token)

    def issue_view(self, uid: int) -> str:
        """A web view token for `uid`, the kernel-verified caller of StartView."""
        return self._views.issue(self._account(uid))

    def view_caller(self, token: str) -> Caller | None:
        """The Caller a web view token was issued to; None for a token this daemon didn't
        issue, or one that expired."""
        return self._views.resolve(token)

    def caller(self, metadata: dict[str, str | bytes]) -> Caller:
        """The Caller of a request with this metadata: its token's (a web view token's for the
        web view's requests, VIEW_KEY: the gRPC server's interceptor admits only handshake
        tokens, so it counts only in-process); without a valid token, the
        daemon's own user in a per-user daemon (only that user can connect to its 0600
        socket). In a shared daemon the interceptor has refused such a request already."""
        token = metadata.get(METADATA_KEY)
        caller = self.resolve(token) if isinstance(token, str) else None
        view = metadata.get(VIEW_KEY)
        if caller is None and isinstance(view, str):
            caller = self.view_caller(view)
        if caller is not None:
            return caller
        if self.shared:
            raise errors.Unauthenticated(UNAUTHENTICATED)
        return self.owner


VIEW_KEY = "guild-view-token"  # the web view's requests to the servicer, in-process only (guildd.web)
UNAUTHENTICATED = "no valid identity token: connect through guildctl (it asks the daemon's auth socket for one)"


def peer_uid(sock: socket.socket) -> int:
    """The uid of the process at the other end of a Unix-socket connection, from the kernel."""
    _pid, uid, _gid = _UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
    return uid


async def serve_handshake(identities: Identities, path: pathlib.Path, mode: int) -> asyncio.AbstractServer:
    """Serves the handshake on `path` (created with `mode`): a token line for each
    connection, or `!reason` when the peer gets none."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            uid = peer_uid(writer.get_extra_info("socket"))
            try:
                writer.write(handshake.answer(identities.issue(uid)))
            except errors.GuildError as e:
                log.warning("no token for uid %d: %s", uid, e)
                writer.write(handshake.refusal(str(e)))
            await writer.drain()
        except OSError as e:
            log.warning("handshake failed: %s", e)
        finally:
            writer.close()

    old_umask = os.umask(0o777 & ~mode)
    try:
        return await asyncio.start_unix_server(handle, str(path))
    finally:
        os.umask(old_umask)
