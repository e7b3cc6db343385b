"""guildd.web.auth: who may use the web view, as table tests of its pure decisions."""

import pytest

from guildd.web import auth

CSRF = auth.csrf_for(b"k" * 32, "tok")


def facts(**kw):
    base = dict(method="GET", host_header="127.0.0.1:8000", origin=None, token_valid=True, csrf_given=None,
                csrf_expected=CSRF, bound="127.0.0.1", port=8000)
    base.update(kw)
    return auth.Facts(**base)


DECIDE = [
    ("a page read with a valid token", facts(), 0),
    ("localhost names the same server", facts(host_header="localhost:8000"), 0),
    ("IPv6 loopback names it too", facts(host_header="[::1]:8000"), 0),
    ("no token", facts(token_valid=False), 401),
    ("a rebinding site's own name", facts(host_header="evil.example:8000"), 403),
    ("a rebinding site's name is refused before the token is looked at", facts(host_header="evil.example:8000", token_valid=False), 403),
    ("another port of loopback", facts(host_header="127.0.0.1:9000"), 403),
    ("no Host header at all", facts(host_header=None), 403),
    ("a Host without a port", facts(host_header="localhost"), 403),
    ("served beyond the machine: any name that reaches it", facts(bound="0.0.0.0", host_header="gpubox:8000"), 0),
    ("an action with the page's CSRF value", facts(method="POST", csrf_given=CSRF), 0),
    ("an action with the page's own Origin", facts(method="POST", csrf_given=CSRF, origin="http://127.0.0.1:8000"), 0),
    ("an action without the CSRF header", facts(method="POST"), 403),
    ("an action with a wrong CSRF value", facts(method="POST", csrf_given="0" * 32), 403),
    ("an action from another site's page", facts(method="POST", csrf_given=CSRF, origin="http://evil.example"), 403),
    ("an action from the same host on another port", facts(method="POST", csrf_given=CSRF, origin="http://127.0.0.1:9000"), 403),
    ("an action without a token is 401 first", facts(method="POST", token_valid=False, csrf_expected=None), 401),
    ("DELETE is an action too", facts(method="DELETE"), 403),
    ("HEAD reads", facts(method="HEAD"), 0),
]


@pytest.mark.parametrize("given, status", [c[1:] for c in DECIDE], ids=[c[0] for c in DECIDE])
def test_decide(given, status):
    verdict = auth.decide(given)
    assert verdict.status == status
    assert bool(verdict.reason) == bool(status)


TOKEN_OF = [
    ("the printed URL's ?token= first", ("q", "Bearer b", "c"), "q"),
    ("then a script's bearer header", (None, "Bearer b", "c"), "b"),
    ("bearer in any case", (None, "bearer b", None), "b"),
    ("then the page's cookie", (None, None, "c"), "c"),
    ("another authorization scheme is no token", (None, "Basic xyz", None), None),
    ("an empty bearer is no token", (None, "Bearer ", None), None),
    ("nothing", (None, None, None), None),
]


@pytest.mark.parametrize("given, token", [c[1:] for c in TOKEN_OF], ids=[c[0] for c in TOKEN_OF])
def test_token_of(given, token):
    assert auth.token_of(*given) == token


LOOPBACK = [("127.0.0.1", True), ("127.9.9.9", True), ("localhost", True), ("::1", True), ("[::1]", True),
            ("0.0.0.0", False), ("10.0.0.5", False), ("gpubox", False), ("", False)]


@pytest.mark.parametrize("host, expected", LOOPBACK, ids=[h or "empty" for h, _ in LOOPBACK])
def test_loopback(host, expected):
    assert auth.loopback(host) is expected


def test_csrf_is_keyed_and_per_token():
    assert auth.csrf_for(b"a" * 32, "t") != auth.csrf_for(b"b" * 32, "t")
    assert auth.csrf_for(b"a" * 32, "t") != auth.csrf_for(b"a" * 32, "u")
    assert len(auth.csrf_for(b"a" * 32, "t")) == 32


def test_url_names_the_machine_when_bound_to_every_address(monkeypatch):
    monkeypatch.setattr(auth.socket, "gethostname", lambda: "gpubox")
    assert auth.url("0.0.0.0", 8000, "T") == "http://gpubox:8000/?token=T"
    assert auth.url("127.0.0.1", 8000, "T") == "http://127.0.0.1:8000/?token=T"
    assert auth.url("::1", 8000, "T") == "http://[::1]:8000/?token=T"
