"""Who may use the web view, and how: pure decisions, table-tested (tests/unit/test_web_auth.py).

The view is served over TCP, where the kernel tells us nothing of who connects, so a request
is worth what its token is worth: a web view token (guildd.tokens.Identities.issue_view),
which `guildctl view` got over the daemon's socket for a kernel-verified user and printed in
the page's URL. The browser keeps it as an HttpOnly, SameSite=Strict cookie.

Checks, in order: the Host header (a page on another site that points its own name at
127.0.0.1, DNS rebinding, is refused); the token (401 without a valid one); and for a
request that changes something (any method but GET/HEAD), its Origin (when sent: it must be
this server) and the CSRF header, a value derived from the token that only a page of this
origin can read (from /api/session), which no cross-site form or fetch can send.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import ipaddress
import socket

COOKIE = "guild_view"
CSRF_HEADER = "X-Guild-CSRF"
SAFE_METHODS = frozenset({"GET", "HEAD"})
ANY_HOST = ("0.0.0.0", "::", "")

NO_TOKEN = "no valid token: open the URL that 'guildctl view' printed (it holds your token)"


def loopback(host: str) -> bool:
    """`host` (a name or address, IPv6 with or without brackets) is this machine only."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url(host: str, port: int, token: str) -> str:
    """The page's address for a server bound to `host`: the machine's name when it is bound
    to every address."""
    shown = socket.gethostname() if host in ANY_HOST else host
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/?token={token}"


def csrf_for(secret: bytes, token: str) -> str:
    """The CSRF value of a token: a keyed hash only this server can make, so it can't be
    guessed from the token's cookie, nor the token from it."""
    return hmac.new(secret, token.encode(), hashlib.sha256).hexdigest()[:32]


def token_of(query: str | None, authorization: str | None, cookie: str | None) -> str | None:
    """The token a request carries: `?token=` (the printed URL), else `Authorization: Bearer`
    (scripts), else the cookie (the page)."""
    if query:
        return query
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:].strip() or None
    return cookie or None


def host_ok(host_header: str | None, bound: str, port: int) -> bool:
    """Whether a request's Host header names this server. Bound to loopback, only loopback
    names with our port (a rebinding site's own name is refused); bound beyond the machine,
    whatever name reached it."""
    if not loopback(bound):
        return True
    if not host_header:
        return False
    name, sep, given_port = host_header.rpartition(":")
    if not sep or name.endswith(":"):  # no port, or a bare IPv6 address
        return False
    return loopback(name) and given_port == str(port)


def origin_ok(origin: str | None, host_header: str | None) -> bool:
    """A request's Origin, when the browser sent one, is this server's own."""
    return origin is None or (host_header is not None and origin == f"http://{host_header}")


@dataclasses.dataclass(frozen=True)
class Facts:
    """What the decision needs of a request."""

    method: str
    host_header: str | None
    origin: str | None
    token_valid: bool  # it carried a web view token the daemon issued and that hasn't expired
    csrf_given: str | None  # its X-Guild-CSRF header
    csrf_expected: str | None  # the CSRF value of its token (None without a valid token)
    bound: str  # the host the server is bound to
    port: int


@dataclasses.dataclass(frozen=True)
class Verdict:
    """0: allowed; else the HTTP status and one line saying why."""

    status: int
    reason: str = ""


ALLOWED = Verdict(0)


def decide(f: Facts) -> Verdict:
    """Whether a request may go on (see the module doc for the order of the checks)."""
    if not host_ok(f.host_header, f.bound, f.port):
        return Verdict(403, f"unexpected Host {f.host_header!r}: open the view at the address 'guildctl view' printed")
    if not f.token_valid:
        return Verdict(401, NO_TOKEN)
    if f.method.upper() in SAFE_METHODS:
        return ALLOWED
    if not origin_ok(f.origin, f.host_header):
        return Verdict(403, f"cross-site request refused (Origin {f.origin!r} is not this view)")
    if not f.csrf_given or f.csrf_expected is None or not hmac.compare_digest(f.csrf_given, f.csrf_expected):
        return Verdict(403, f"missing or wrong {CSRF_HEADER} header: actions come from the view's own page")
    return ALLOWED
