"""The web view's server: aiohttp on guildd's own event loop, started by the first StartView
request (`guildctl view`) and stopped with the daemon.

Why aiohttp: it is an asyncio server made to be embedded in a loop someone else runs (an
AppRunner and a site on a socket we bind), with server-sent events and websockets built in;
guildd's loop already runs gRPC's aio server and every part of the daemon, so the view's
handlers await the same servicer coroutines the CLI's requests do, with no thread between
them. (Starlette or FastAPI would add an ASGI server that expects to own the loop.)

Every request passes `guard` first (guildd.web.auth decides: Host, token, CSRF); the page's
files are in guildd/web/static/, served only to a request with a valid token too.
"""

from __future__ import annotations

import asyncio
import logging
import pathlib
import secrets
import socket
from collections.abc import Callable, Hashable
from typing import Any

from aiohttp import web

from guild_common import __version__, errors
from guildd.tokens import Identities
from guildd.web import auth
from guildd.web.api import Api, BadInput
from guildd.web.calls import CallFailed, Calls
from guildd.web.live import Live

log = logging.getLogger("guildd.web")

STATIC = pathlib.Path(__file__).parent / "static"
SHUTDOWN_GRACE = 1.0
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",  # the token never leaves in a Referer
    "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                               "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
}
REFUSED_PAGE = """<!doctype html><meta charset="utf-8"><title>guildctl view: {status}</title>
<body style="font-family: sans-serif; margin: 3em"><h1>{status}</h1><p>{reason}</p>
<p>Open the URL that 'guildctl view' printed: run <code>guildctl view</code> to get it again.</p></body>"""


class ViewServer:
    """The view, served on one address from the first `serve` until `close`."""

    def __init__(self, identities: Identities, version: Callable[[], Hashable], home: str) -> None:
        self.identities = identities
        self.version = version
        self.home = home
        self.serving = False
        self.host = ""
        self.port = 0
        self._secret = secrets.token_bytes(32)  # CSRF values are keyed with it
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()
        self._lock = asyncio.Lock()

    async def serve(self, host: str, port: int, servicer: Any) -> tuple[str, int, bool]:
        """Serves the view on `host`:`port` (0: a free port), unless it is served already;
        returns where it is served and whether it was already. FailedPrecondition naming
        the address when it can't be bound."""
        async with self._lock:
            if self.serving:
                return self.host, self.port, True
            sock = _bind(host, port)
            calls = Calls(servicer)
            app = web.Application(middlewares=[self.guard], client_max_size=1 << 20)
            app.add_routes(Api(calls, self.session).routes())
            app.add_routes(Live(calls, self.version, self._closing).routes())
            app.add_routes([web.get("/", self.index), web.static("/static", STATIC, follow_symlinks=False)])
            runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_GRACE)
            await runner.setup()
            await web.SockSite(runner, sock, shutdown_timeout=SHUTDOWN_GRACE).start()
            self._runner = runner
            self.host, self.port, self.serving = host, sock.getsockname()[1], True
            log.info("serving the web view on %s:%d", self.host, self.port)
            return self.host, self.port, False

    async def close(self) -> None:
        """Stops serving: live streams end, then connections close."""
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.serving = False

    async def session(self, token: str) -> dict[str, Any]:
        caller = self.identities.view_caller(token)
        assert caller is not None  # the guard let only valid tokens through
        return {"user": caller.name, "admin": caller.admin or not self.identities.shared, "shared": self.identities.shared,
                "csrf": auth.csrf_for(self._secret, token), "version": __version__, "home": str(self.home)}

    @web.middleware
    async def guard(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """auth.decide for every request; then the handler, its errors as one-line JSON."""
        token = auth.token_of(request.query.get("token"), request.headers.get("Authorization"),
                              request.cookies.get(auth.COOKIE))
        valid = token is not None and self.identities.view_caller(token) is not None
        verdict = auth.decide(auth.Facts(
            method=request.method, host_header=request.headers.get("Host"), origin=request.headers.get("Origin"),
            token_valid=valid, csrf_given=request.headers.get(auth.CSRF_HEADER),
            csrf_expected=auth.csrf_for(self._secret, token) if valid and token else None,
            bound=self.host, port=self.port,
        ))
        api = request.path.startswith("/api/")
        if verdict.status:
            return _refused(verdict.status, verdict.reason, api)
        request["token"] = token
        try:
            resp = await handler(request)
        except web.HTTPException as e:
            if not api or e.status < 400:
                raise
            resp = _refused(e.status, e.reason, api)
        except CallFailed as e:
            resp = _refused(e.status, e.message.splitlines()[0] if e.message else "refused", api)
        except (BadInput, errors.InvalidArgument) as e:
            resp = _refused(400, str(e), api)
        except Exception:  # our bug: logged, and still one line of JSON for the page
            log.exception("internal error in %s %s", request.method, request.path)
            resp = _refused(500, "internal error in guildd's web view (see guildd.log)", api)
        if not resp.prepared:
            resp.headers.update(SECURITY_HEADERS)
        return resp

    async def index(self, request: web.Request) -> web.StreamResponse:
        """The page. Opened with the printed URL (`?token=`), the token goes into a cookie and
        the browser is sent to the same page without it, so it leaves the address bar."""
        if request.query.get("token"):
            resp = web.HTTPFound("/")
            resp.set_cookie(auth.COOKIE, request.query["token"], httponly=True, samesite="Strict", path="/")
            resp.headers.update(SECURITY_HEADERS)
            raise resp
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})


def _refused(status: int, reason: str, api: bool) -> web.Response:
    if api:
        resp = web.json_response({"error": reason}, status=status)
    else:
        resp = web.Response(text=REFUSED_PAGE.format(status=status, reason=_escape(reason)), status=status,
                            content_type="text/html")
    resp.headers.update(SECURITY_HEADERS)
    return resp


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port; FailedPrecondition naming it when it can't be."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise errors.FailedPrecondition(f"cannot serve the view on {host}:{port}: {e.strerror}") from None
    family, kind, proto, _name, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as e:
        sock.close()
        raise errors.FailedPrecondition(f"cannot serve the view on {host}:{port}: {e.strerror or e}") from None
    sock.setblocking(False)
    return sock
