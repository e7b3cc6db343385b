"""The identity handshake: tokens bound to the uid the kernel reports, and the Caller of a
request's metadata (guildd.tokens, guildd.callers)."""

import asyncio
import os
import pathlib
import pwd
import shutil
import subprocess
import tempfile
import threading

import pytest

from guild_common import errors, handshake
from guildctl.client import obtain_token
from guildd import callers, tokens

ME = os.getuid()
NO_ACCOUNT = next(uid for uid in range(54321, 64000) if not any(p.pw_uid == uid for p in pwd.getpwall()))


def _other_user():
    return next((p for p in pwd.getpwall() if p.pw_uid not in (0, ME) and p.pw_uid < 60000), None)


def test_a_token_resolves_to_the_uid_it_was_issued_for():
    ids = tokens.Identities(shared=True)
    token = ids.issue(ME)
    caller = ids.resolve(token)
    assert caller is not None and caller.uid == ME and caller.name == pwd.getpwuid(ME).pw_name
    assert ids.caller({handshake.METADATA_KEY: token}) == caller


def test_tokens_are_distinct_and_unguessable():
    ids = tokens.Identities(shared=True)
    issued = {ids.issue(ME) for _ in range(50)}
    assert len(issued) == 50 and all(len(t) >= 40 for t in issued)


@pytest.mark.parametrize(
    "metadata",
    [
        pytest.param({}, id="no token"),
        pytest.param({handshake.METADATA_KEY: "made-up"}, id="a token it never issued"),
        pytest.param({"user": "root", "uid": "0"}, id="a name and uid claimed in metadata"),
        pytest.param({handshake.METADATA_KEY: b"bytes"}, id="a binary value"),
    ],
)
def test_a_shared_daemon_refuses_requests_without_a_token_it_issued(metadata):
    ids = tokens.Identities(shared=True)
    ids.issue(ME)
    with pytest.raises(errors.Unauthenticated):
        ids.caller(metadata)


def test_a_claimed_identity_beside_a_valid_token_changes_nothing():
    ids = tokens.Identities(shared=True)
    token = ids.issue(ME)
    assert ids.caller({handshake.METADATA_KEY: token, "user": "someone-else", "uid": "12345"}).uid == ME


def test_a_per_user_daemons_caller_is_its_own_user_and_other_uids_get_no_token():
    ids = tokens.Identities(shared=False)
    assert ids.caller({}).uid == ME
    other = _other_user()
    if other is None:
        pytest.skip("no other account on this machine")
    with pytest.raises(errors.PermissionDenied, match="this guildd serves only"):
        ids.issue(other.pw_uid)


def test_a_uid_with_no_account_gets_no_token():
    ids = tokens.Identities(shared=True)
    with pytest.raises(errors.PermissionDenied, match=f"uid {NO_ACCOUNT} has no account on this machine"):
        ids.issue(NO_ACCOUNT)


def test_tokens_expire_when_unused(monkeypatch):
    ids = tokens.Identities(shared=True)
    now = [1000.0]
    monkeypatch.setattr(tokens.time, "monotonic", lambda: now[0])
    token = ids.issue(ME)
    now[0] += tokens.TTL_SECONDS / 2
    assert ids.resolve(token) is not None  # use keeps it alive
    now[0] += tokens.TTL_SECONDS / 2 + 1
    assert ids.resolve(token) is not None
    now[0] += tokens.TTL_SECONDS + 1
    assert ids.resolve(token) is None


def test_a_uid_holds_a_bounded_number_of_tokens_oldest_first(monkeypatch):
    monkeypatch.setattr(tokens, "MAX_PER_UID", 3)
    now = [0.0]
    monkeypatch.setattr(tokens.time, "monotonic", lambda: now[0])
    ids = tokens.Identities(shared=True)
    issued = []
    for _ in range(5):
        now[0] += 1
        issued.append(ids.issue(ME))
    assert [ids.resolve(t) is not None for t in issued] == [False, False, True, True, True]


def test_admins_are_root_and_members_of_the_admin_group():
    root = callers.lookup(0)
    assert root.admin and root.name == "root"
    other = _other_user()
    if other is None:
        pytest.skip("no other account on this machine")
    assert not callers.lookup(other.pw_uid).admin
    group = __import__("grp").getgrgid(other.pw_gid).gr_name
    assert callers.lookup(other.pw_uid, admin_group=group).admin
    assert not callers.lookup(other.pw_uid, admin_group="no-such-group-here").admin


def _serve(ids, path):
    """The handshake served on its own loop thread; returns a stop function."""
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(tokens.serve_handshake(ids, path, 0o666))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def stop():
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        server.close()
        loop.run_until_complete(server.wait_closed())
        loop.close()

    return stop


def test_the_handshake_binds_the_token_to_the_connecting_process_uid(tmp_path):
    ids = tokens.Identities(shared=True)
    path = tmp_path / "guildd-auth.sock"
    stop = _serve(ids, path)
    try:
        token = obtain_token(path)
        assert ids.resolve(token).uid == ME
        assert (os.stat(path).st_mode & 0o777) == 0o666
    finally:
        stop()


def test_the_handshake_says_why_it_gives_no_token(tmp_path):
    ids = tokens.Identities(shared=False)
    ids.owner = callers.Caller(ME + 1, "someone", 0, (), "/", False)  # a daemon of another user
    path = tmp_path / "guildd-auth.sock"
    stop = _serve(ids, path)
    try:
        with pytest.raises(errors.PermissionDenied, match="this guildd serves only someone"):
            obtain_token(path)
    finally:
        stop()


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv to connect as another uid")
def test_a_process_of_another_uid_gets_a_token_for_its_own_uid_whatever_it_claims(tmp_path):
    other = _other_user()
    if other is None:
        pytest.skip("no other account on this machine")
    ids = tokens.Identities(shared=True)
    reachable = pathlib.Path(tempfile.mkdtemp(prefix="guildd-hs-", dir="/tmp"))  # pytest's tmp is root's alone
    reachable.chmod(0o755)
    path = reachable / "guildd-auth.sock"
    stop = _serve(ids, path)
    try:
        # The other user's process asks for a token with its environment claiming root.
        code = f"import socket; s = socket.socket(socket.AF_UNIX); s.connect({str(path)!r}); print(s.recv(256).decode().strip())"
        r = subprocess.run(
            ["setpriv", f"--reuid={other.pw_uid}", f"--regid={other.pw_gid}", "--clear-groups", "/usr/bin/python3", "-c", code],
            env={"USER": "root", "LOGNAME": "root", "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=30,
        )
        assert r.returncode == 0, r.stderr
        caller = ids.resolve(r.stdout.strip())
        assert caller is not None and caller.uid == other.pw_uid and caller.name == other.pw_name and not caller.admin
    finally:
        stop()
        shutil.rmtree(reachable)


def test_a_web_view_token_stands_for_its_caller_and_opens_only_the_view():
    ids = tokens.Identities(shared=True)
    view = ids.issue_view(ME)
    grpc_token = ids.issue(ME)
    assert ids.view_caller(view).uid == ME
    assert ids.caller({tokens.VIEW_KEY: view}).uid == ME
    # The two kinds don't stand in for each other: a view token is no handshake token (the gRPC
    # interceptor admits only those) and a handshake token opens no view.
    assert ids.resolve(view) is None
    assert ids.view_caller(grpc_token) is None
    with pytest.raises(errors.Unauthenticated):
        ids.caller({tokens.VIEW_KEY: grpc_token})


def test_a_handshake_token_beside_a_view_token_is_the_caller():
    other = _other_user()
    if other is None:
        pytest.skip("needs a second account on this machine")
    ids = tokens.Identities(shared=True)
    theirs = ids.issue_view(other.pw_uid)
    assert ids.caller({handshake.METADATA_KEY: ids.issue(ME), tokens.VIEW_KEY: theirs}).uid == ME


def test_view_tokens_expire_when_unused(monkeypatch):
    ids = tokens.Identities(shared=True)
    view = ids.issue_view(ME)
    now = tokens.time.monotonic()
    monkeypatch.setattr(tokens.time, "monotonic", lambda: now + tokens.TTL_SECONDS + 1)
    assert ids.view_caller(view) is None
