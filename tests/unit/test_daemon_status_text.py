"""`guildctl daemon status`'s line on whose daemon it is (guildctl.cmd_daemon.sharing_text)."""

import pytest

from guild_common.pb import guild_pb2 as pb
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
