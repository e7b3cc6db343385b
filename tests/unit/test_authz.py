"""Who may change what (guildd.authz), as tables of callers, actions and owners."""

import pytest

from guild_common import errors
from guildd import authz
from guildd.authz import Action, Owner, Policy
from guildd.callers import Caller

RUN = "57c8600b1a2b3c4d5e6f7a8b9c0d1e2f"  # refusals name a run by its first 8 chars
OTHER = "9f8e7d6c5b4a39281706f5e4d3c2b1a0"

ALICE = Caller(1001, "alice", 1001, (1001,), "/home/alice", admin=False)
BOB = Caller(1002, "bob", 1002, (1002,), "/home/bob", admin=False)
ROOT = Caller(0, "root", 0, (0,), "/root", admin=True)
CAROL_ADMIN = Caller(1003, "carol", 1003, (1003, 2000), "/home/carol", admin=True)  # in the admin group

ALICES = Owner(1001, "alice")
BOBS = Owner(1002, "bob")

SHARED = Policy(shared=True, admin_group="gpuadmins")
SHARED_NO_GROUP = Policy(shared=True)
PER_USER = Policy(shared=False)


@pytest.mark.parametrize(
    "policy, caller, action, owner, expected",
    [
        pytest.param(SHARED, ALICE, Action.STOP, ALICES, None, id="owner-stops-own-run"),
        pytest.param(SHARED, BOB, Action.STOP, ALICES, "cannot stop run 57c8600b: it belongs to alice (uid 1001)", id="other-user-stop"),
        pytest.param(SHARED, BOB, Action.DELETE, ALICES, "cannot delete run 57c8600b: it belongs to alice (uid 1001)", id="other-user-delete"),
        pytest.param(SHARED, BOB, Action.LABEL, ALICES, "cannot label run 57c8600b: it belongs to alice (uid 1001)", id="other-user-label"),
        pytest.param(SHARED, BOB, Action.PRIORITY, ALICES,
                     "cannot set the priority of run 57c8600b: it belongs to alice (uid 1001)", id="other-user-priority"),
        pytest.param(SHARED, BOB, Action.MOVE, ALICES, "cannot move run 57c8600b: it belongs to alice (uid 1001)", id="other-user-export-move"),
        pytest.param(SHARED, ROOT, Action.PURGE, ALICES, None, id="root-purges-anyones"),
        pytest.param(SHARED, CAROL_ADMIN, Action.RESTART, ALICES, None, id="admin-group-member-restarts-anyones"),
        pytest.param(PER_USER, BOB, Action.STOP, ALICES, None, id="per-user-daemon-allows-everything"),
        pytest.param(SHARED, ALICE, Action.CANCEL, Owner(0, "root"), "cannot cancel run 57c8600b: it belongs to root (uid 0)",
                     id="a-run-dir-roots-is-admins-only"),
        pytest.param(SHARED, ALICE, Action.STOP, Owner(4242, "uid 4242"), "cannot stop run 57c8600b: it belongs to uid 4242",
                     id="owner-without-a-name"),
        pytest.param(SHARED, Caller(1001, "mallory", 1001, (), "/", False), Action.STOP, ALICES, None,
                     id="the-uid-decides-not-the-name"),
    ],
)
def test_refusal_of_one_run(policy, caller, action, owner, expected):
    assert authz.refusal(policy, caller, action, RUN, owner) == expected


@pytest.mark.parametrize(
    "policy, caller, action, expected",
    [
        pytest.param(SHARED, ALICE, Action.QUEUE_SETTINGS,
                     "cannot change queue settings: that needs an administrator (root or a member of gpuadmins)", id="user-sets-queue"),
        pytest.param(SHARED_NO_GROUP, ALICE, Action.QUEUE_SETTINGS,
                     "cannot change queue settings: that needs an administrator (root)", id="no-admin-group"),
        pytest.param(SHARED, BOB, Action.SHUTDOWN, "cannot stop guildd: that needs an administrator (root or a member of gpuadmins)",
                     id="user-stops-daemon"),
        pytest.param(SHARED, ROOT, Action.QUEUE_SETTINGS, None, id="root-sets-queue"),
        pytest.param(SHARED, CAROL_ADMIN, Action.SHUTDOWN, None, id="admin-stops-daemon"),
        pytest.param(PER_USER, ALICE, Action.QUEUE_SETTINGS, None, id="per-user-daemon-its-user-sets-queue"),
        pytest.param(PER_USER, ALICE, Action.SHUTDOWN, None, id="per-user-daemon-its-user-stops-it"),
    ],
)
def test_daemon_wide_actions_need_an_administrator(policy, caller, action, expected):
    assert authz.daemon_refusal(policy, caller, action) == expected


@pytest.mark.parametrize(
    "caller, owners, expected",
    [
        pytest.param(ALICE, {RUN: ALICES, OTHER: ALICES}, None, id="all-own"),
        pytest.param(ALICE, {}, None, id="nothing-selected"),
        pytest.param(ALICE, {RUN: ALICES, OTHER: BOBS},
                     "cannot delete run 9f8e7d6c: it belongs to bob (uid 1002); none of the 2 runs selected was changed",
                     id="one-of-two-refused-refuses-both"),
        pytest.param(ALICE, {RUN: BOBS, OTHER: BOBS, "0" * 32: ALICES},
                     "cannot delete run 57c8600b: it belongs to bob (uid 1002) (and 1 more not yours); "
                     "none of the 3 runs selected was changed",
                     id="several-refused-the-first-named"),
        pytest.param(ALICE, {RUN: BOBS}, "cannot delete run 57c8600b: it belongs to bob (uid 1002)", id="a-single-run"),
        pytest.param(ROOT, {RUN: ALICES, OTHER: BOBS}, None, id="admin-all-allowed"),
    ],
)
def test_a_request_is_checked_whole(caller, owners, expected):
    assert authz.runs_refusal(SHARED, caller, Action.DELETE, owners) == expected


def test_a_refusal_is_permission_denied_with_its_own_exit_code():
    with pytest.raises(errors.PermissionDenied, match="^cannot stop run 57c8600b: it belongs to alice") as e:
        authz.check_runs(SHARED, BOB, Action.STOP, {RUN: ALICES})
    assert e.value.exit_code == 4 and e.value.exit_code != errors.NotFound("x").exit_code
    with pytest.raises(errors.PermissionDenied, match="^cannot change queue settings"):
        authz.check_daemon(SHARED, BOB, Action.QUEUE_SETTINGS)
    authz.check_runs(SHARED, ALICE, Action.STOP, {RUN: ALICES})  # allowed: no error
    authz.check_daemon(SHARED, ROOT, Action.SHUTDOWN)


def test_every_action_reads_as_a_refusal():
    for action in Action:
        line = authz.daemon_refusal(SHARED, ALICE, action) if action.daemon_wide else authz.refusal(SHARED, ALICE, action, RUN, BOBS)
        assert line and line.startswith(f"cannot {action.value}") and "\n" not in line
