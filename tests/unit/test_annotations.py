"""Runs' tags and comments (guildd.annotations): the pure rules as tables, then tag_runs and
comment_runs on a temp GUILD_HOME, where a refused request must leave every run as it was."""

import pytest

from guild_common import errors, rundir
from guildd import annotations, manage
from guildd.annotations import CommentChange, TagChange
from tests.unit.test_manage import home, make_run, store  # noqa: F401 - fixtures

RUN = "a" * 32

NEW_TAGS = {
    "add": (["a"], TagChange(add=("b", "c")), ["a", "b", "c"]),
    "add what is there already": (["a"], TagChange(add=("a", "b")), ["a", "b"]),
    "remove": (["a", "b"], TagChange(remove=("a",)), ["b"]),
    "clear": (["a", "b"], TagChange(clear=True), []),
    "clear, then add": (["a"], TagChange(add=("b",), clear=True), ["b"]),
    "remove and add": (["a", "b"], TagChange(add=("c",), remove=("a",)), ["b", "c"]),
}


@pytest.mark.parametrize("old, change, expected", NEW_TAGS.values(), ids=NEW_TAGS.keys())
def test_new_tags(old, change, expected):
    assert annotations.new_tags(RUN, old, change) == expected


def test_removing_a_tag_the_run_lacks_is_refused_naming_it():
    with pytest.raises(errors.FailedPrecondition, match=r"^run aaaaaaaa has no tag 'zz' \(its tags: 'a'\)$"):
        annotations.new_tags(RUN, ["a"], TagChange(remove=("a", "zz")))


@pytest.mark.parametrize("change, message", [
    (TagChange(), "nothing to do"),
    (TagChange(add=(" ",)), "a tag cannot be empty"),
    (TagChange(remove=("",)), "a tag cannot be empty"),
])
def test_a_request_that_asks_nothing_or_names_an_empty_tag(change, message):
    with pytest.raises(errors.InvalidArgument, match=message):
        annotations.check_tag_change(change)


SYNCED = {
    "added tags go in front": ("x y", ["a"], TagChange(add=("t", "u")), "t u x y"),
    "a tag in the label already stays once": ("t y", [], TagChange(add=("t",)), "t y"),
    "removed tags leave the label": ("t x t", ["t"], TagChange(remove=("t",)), "x"),
    "clearing takes every old tag out": ("a x b", ["a", "b"], TagChange(clear=True), "x"),
}


@pytest.mark.parametrize("label, old, change, expected", SYNCED.values(), ids=SYNCED.keys())
def test_synced_label(label, old, change, expected):
    assert annotations.synced_label(label, old, change) == expected


def _comment(body, time_us=1):
    return {"body": body, "host": "h", "time": time_us, "user": "alice"}


def test_new_comments_add_delete_clear():
    add = CommentChange(annotations.ADD, "hi", user="alice", host="h", time_us=5)
    one = annotations.new_comments(RUN, [], add)
    assert one == [_comment("hi", 5)]
    two = annotations.new_comments(RUN, one, CommentChange(annotations.ADD, "yo", user="bob", host="g", time_us=6))
    assert [c["body"] for c in two] == ["hi", "yo"]
    assert annotations.new_comments(RUN, two, CommentChange(annotations.DELETE, index=1)) == two[1:]
    assert annotations.new_comments(RUN, two, CommentChange(annotations.CLEAR)) == []


@pytest.mark.parametrize("old, change, error, message", [
    ([], CommentChange(annotations.ADD, "  "), errors.InvalidArgument, "^a comment cannot be empty$"),
    ([_comment("x")], CommentChange(annotations.DELETE, index=2), errors.FailedPrecondition,
     r"^run aaaaaaaa has no comment 2 \(it has 1\)$"),
    ([], CommentChange(annotations.DELETE, index=1), errors.FailedPrecondition, r"has no comment 1 \(it has none\)"),
])
def test_bad_comment_changes(old, change, error, message):
    with pytest.raises(error, match=message):
        annotations.new_comments(RUN, old, change)


@pytest.mark.parametrize("value, expected", [
    (None, []), ("text", []), ([_comment("a"), "junk"], [_comment("a")]),
])
def test_a_damaged_comments_attr_reads_as_what_it_holds(value, expected):
    assert annotations.comments_of(value) == expected


# In the run dir and the index


def test_tags_change_in_the_run_dir_and_the_index_and_the_label_stays(home, store, make_run):
    rec = make_run(label="a b", tags=["a"])
    [changed] = annotations.tag_runs(store, home, [rec], TagChange(add=("x",), remove=("a",)))
    assert changed.tags == ["x"] and changed.label == "a b"
    run_dir = manage.location(home, rec)
    assert rundir.read_attr(run_dir, "tags") == ["x"]
    assert rundir.read_attr(run_dir, "label") == "a b"


def test_sync_labels_changes_the_label_too(home, store, make_run):
    rec = make_run(label="a b", tags=["a"])
    [changed] = annotations.tag_runs(store, home, [rec], TagChange(add=("x",), remove=("a",), sync_labels=True))
    assert changed.label == "x b"
    assert rundir.read_attr(manage.location(home, rec), "label") == "x b"


def test_a_tag_one_run_lacks_changes_no_run(home, store, make_run):
    first, second = make_run(0, tags=["a"]), make_run(1, tags=["b"])
    with pytest.raises(errors.FailedPrecondition, match=f"run {second.id[:8]} has no tag 'a'"):
        annotations.tag_runs(store, home, [first, second], TagChange(remove=("a",)))
    assert rundir.read_attr(manage.location(home, first), "tags") == ["a"]
    assert store.get(first.id).tags == ["a"]


def test_comments_are_written_as_guild_keeps_them(home, store, make_run):
    rec = make_run()
    change = CommentChange(annotations.ADD, "looks good", user="alice", host="box", time_us=1_796_000_000_000_000)
    annotations.comment_runs(store, home, [rec], change)
    text = (rundir.attrs_dir(manage.location(home, rec)) / "comments").read_text()
    assert rundir.read_attr(manage.location(home, rec), "comments") == [
        {"body": "looks good", "host": "box", "time": 1_796_000_000_000_000, "user": "alice"}
    ]
    assert text.startswith("- body: looks good\n")


def test_a_comment_index_one_run_lacks_changes_no_run(home, store, make_run):
    first = make_run(0, comments=[_comment("x"), _comment("y")])
    second = make_run(1, comments=[_comment("z")])
    with pytest.raises(errors.FailedPrecondition, match=f"run {second.id[:8]} has no comment 2"):
        annotations.comment_runs(store, home, [first, second], CommentChange(annotations.DELETE, index=2))
    assert len(rundir.read_attr(manage.location(home, first), "comments")) == 2


@pytest.mark.parametrize("call, verb", [
    (lambda s, h, r: annotations.comment_runs(s, h, r, CommentChange(annotations.ADD, "hi")), "comment on"),
    (lambda s, h, r: annotations.tag_runs(s, h, r, TagChange(add=("t",))), "tag"),
])
def test_a_run_in_the_trash_is_refused(home, store, make_run, call, verb):
    rec = make_run()
    manage.delete_runs(store, home, [rec], permanent=False)
    trashed = store.get(rec.id)
    with pytest.raises(errors.FailedPrecondition, match=f"^cannot {verb} run {rec.id[:8]}: it is deleted"):
        call(store, home, [trashed])
    attrs = rundir.attrs_dir(manage.location(home, trashed))
    assert not (attrs / "comments").exists() and rundir.read_attr(attrs.parent.parent, "tags") is None
