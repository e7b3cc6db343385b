"""`guildctl daemon status`'s line on whose daemon it is (guildctl.cmd_daemon.sharing_text), and
what any command says when the daemon's socket refuses it (guildctl.client.refusal_text)."""

import os
import pathlib
import stat

import pytest

from guild_common.pb import guild_pb2 as pb
from guildctl.client import refusal_text
from guildctl.cmd_daemon import sharing_text


@pytest.mark.parametrize(
    "shared, user, admin, expected",
    [
        (False, "alice", True, "no (only alice)"),
        (True, "bob", False, "yes (every local user; you are bob, admin: no)"),
        (True, "carol", True, "yes (every local user; you are carol, admin: yes)"),
    ],
)
def test_sharing_text_says_whose_daemon_and_who_you_are(shared, user, admin, expected):
    assert sharing_text(pb.GetDaemonInfoResponse(shared=shared, user=user, admin=admin)) == expected


def _st(uid, mode):
    return os.stat_result((stat.S_IFSOCK | mode, 0, 0, 1, uid, 0, 0, 0, 0, 0))


HOME, SOCK = pathlib.Path("/h"), pathlib.Path("/h/guildd.sock")


@pytest.mark.parametrize(
    "st, expected",
    [
        # root's (or anyone's) per-user daemon, seen by another user: whose it is.
        (_st(0, 0o600), "guildd for /h is the per-user daemon of root (uid 0) and serves only that user; an administrator "
                        "serves every user with 'guildd --shared' (README: Shared box)"),
        # The user's own socket with its modes taken away: what to do about it.
        (_st(4242, 0o000), "cannot connect to guildd for /h at /h/guildd.sock: permission denied (the socket is yours but "
                           "its mode is 0000; 'chmod 600 /h/guildd.sock' restores it)"),
        # The socket can't even be looked at: a directory on its path is closed.
        (None, "cannot connect to guildd for /h at /h/guildd.sock: permission denied (a directory on that path can't be "
               "searched by uid 4242)"),
    ],
    ids=["another-users-daemon", "own-socket-mode-000", "closed-directory"],
)
def test_a_refused_connection_says_what_is_true_never_not_running(st, expected):
    assert refusal_text(HOME, SOCK, st, 4242) == expected
