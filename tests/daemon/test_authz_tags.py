"""Tags and comments in a shared daemon: only a run's owner (or an administrator) changes
them, a refusal changes nothing, and each change leaves an audit line; a comment is signed
with the caller's account as the kernel vouches for it. (The shared daemon and its users:
tests/daemon/test_authz_service.py.)"""

import pytest

from guild_common import errors, home as homelib, rundir
from guild_common.pb import guild_pb2 as pb
from tests.daemon.test_authz_service import _sel, _staged, users  # noqa: F401 - the fixture

CHANGES = {
    "tag": (lambda r: ("TagRuns", pb.TagRunsRequest(selection=_sel(r), add=["bobs"])), "tag"),
    "comment": (lambda r: ("CommentRuns", pb.CommentRunsRequest(selection=_sel(r), action=pb.COMMENT_ADD, body="bob")),
                "comment on"),
    "clear comments": (lambda r: ("CommentRuns", pb.CommentRunsRequest(selection=_sel(r), action=pb.COMMENT_CLEAR)),
                       "comment on"),
}


@pytest.mark.parametrize("what", CHANGES)
def test_another_users_run_is_refused_and_left_unchanged(users, tmp_path, what):
    request, verb = CHANGES[what]
    run = _staged(users, tmp_path, users.alice)
    attrs = rundir.attrs_dir(homelib.run_dir(users.home, run.id))
    before = sorted(p.name for p in attrs.iterdir())
    with pytest.raises(errors.PermissionDenied) as e:
        users.bob.call(*request(run.id))
    assert str(e.value) == f"cannot {verb} run {run.id[:8]}: it belongs to alice (uid {users.alice.uid})"
    assert sorted(p.name for p in attrs.iterdir()) == before
    assert f"bob (uid {users.bob.uid})" in users.audit()[-1] and "-> refused" in users.audit()[-1]


def test_the_owner_tags_and_comments_signed_as_herself(users, tmp_path):
    run = _staged(users, tmp_path, users.alice)
    [tagged] = users.alice.call("TagRuns", pb.TagRunsRequest(selection=_sel(run.id), add=["mine"])).runs
    assert list(tagged.tags) == ["mine"]
    users.alice.call("CommentRuns", pb.CommentRunsRequest(selection=_sel(run.id), action=pb.COMMENT_ADD, body="hi"))
    [comment] = users.root.get_run(run.id).comments
    assert (comment.user, comment.body) == ("alice", "hi")
    run_dir = homelib.run_dir(users.home, run.id)
    assert (rundir.attrs_dir(run_dir) / "comments").stat().st_uid == users.alice.uid  # written as its owner
    assert f"alice (uid {users.alice.uid}) CommentRuns runs '{run.id}' add -> ok: {run.id}" in users.audit()[-1]
