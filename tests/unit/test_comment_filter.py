"""Guild's `--comment VAL` run filter (guildd.selection): a comment's body, user or host
contains VAL, in any case; over the index, which tag_runs and comment_runs keep current."""

import pytest

from guild_common import home as homelib
from guildd import annotations, selection
from guildd.annotations import CommentChange
from tests.unit.test_manage import home, make_run, store  # noqa: F401 - fixtures

C = {"body": "Looks Good", "user": "alice", "host": "box1", "time": 1}

MATCHES = {
    "body, any case": ([C], ["looks g"], True),
    "user": ([C], ["ALICE"], True),
    "host": ([C], ["box"], True),
    "any of several": ([C], ["nope", "good"], True),
    "no such text": ([C], ["bad"], False),
    "the time is not text to match": ([C], ["1"], True),  # box1
    "no comments": ([], ["x"], False),
}


@pytest.mark.parametrize("comments, texts, expected", MATCHES.values(), ids=MATCHES.keys())
def test_comments_match(comments, texts, expected):
    assert selection.comments_match(comments, texts) is expected


def test_the_filter_selects_by_comment_from_the_index(home, store, make_run):
    first, second, _third = make_run(0), make_run(1), make_run(2, comments=[C])
    annotations.comment_runs(store, home, [first], CommentChange(annotations.ADD, "needs work", user="bob", host="h"))
    annotations.comment_runs(store, home, [second], CommentChange(annotations.ADD, "good run", user="bob", host="h"))
    recs, total = store.select(selection.Criteria(comments=("GOOD",)))
    assert sorted(r.id for r in recs) == sorted([second.id, homelib.runs_dir(home).joinpath(_third.id).name])
    assert total == 2
    assert [r.id for r in store.select(selection.Criteria(comments=("work",)), limit=1)[0]] == [first.id]
