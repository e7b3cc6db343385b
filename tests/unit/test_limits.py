"""Limits on the text a request stores in the index (guild_common.limits), and the daemon's
edge that applies them to every request (guildd.rpc.LIMITED), as tables."""

import json
import re

import pytest

from guild_common import limits
from guild_common.pb import guild_pb2 as pb
from guildd import rpc

L = limits

TOO_LONG_CASES = [
    ("the label", "", L.MAX_LABEL, None),
    ("the label", "x" * L.MAX_LABEL, L.MAX_LABEL, None),
    ("the label", "x" * (L.MAX_LABEL + 1), L.MAX_LABEL, "the label is too long: 1,001 characters (the limit is 1,000)"),
    ("the op name", "é" * 300, L.MAX_OP_NAME, "the op name is too long: 300 characters (the limit is 256)"),
]


@pytest.mark.parametrize("field, text, limit, expected", TOO_LONG_CASES)
def test_too_long(field, text, limit, expected):
    assert L.too_long(field, text, limit) == expected


TAGS_CASES = [
    ([], None),
    (["a", "b" * L.MAX_TAG], None),
    (["a", "b" * (L.MAX_TAG + 1)], "a tag is too long: 201 characters (the limit is 200)"),
    (["t"] * (L.MAX_TAGS + 1), "too many tags: 101 (the limit is 100)"),
]


@pytest.mark.parametrize("tags, expected", TAGS_CASES)
def test_tags_problem(tags, expected):
    assert L.tags_problem("tags", tags) == expected


FLAGS_CASES = [
    ({}, None),
    ({"lr": 0.1, "s": "x" * 1000, "l": [1, 2, 3]}, None),
    ({"s": "x" * (L.MAX_FLAG_VALUE - 2)}, None),  # the value as JSON: its two quotes count
    ({"s": "x" * (L.MAX_FLAG_VALUE - 1)}, "flag 's' has a value too long: 65,537 bytes (the limit is 65,536)"),
    ({"s": "é" * L.MAX_FLAG_VALUE}, "flag 's' has a value too long: 131,074 bytes (the limit is 65,536)"),
    ({"n" * 300: 1}, "a flag name is too long: 300 characters (the limit is 256)"),
    ({f"f{i}": "x" * 60_000 for i in range(20)},
     "flag values are too big together: 1,200,090 bytes (the limit is 1,048,576)"),
]


@pytest.mark.parametrize("flags, expected", FLAGS_CASES)
def test_flags_problem(flags, expected):
    assert L.flags_problem(flags) == expected
    assert L.flags_json_problem(json.dumps(flags)) == expected


@pytest.mark.parametrize("text", ["", "not json", "[1, 2]", "[" * 5000])
def test_flags_json_that_is_not_an_object_is_left_to_its_reader(text):
    assert L.flags_json_problem(text) is None


CAPPED_CASES = [
    ("", 5, ""),
    ("abcde", 5, "abcde"),
    ("abcdef", 5, "abcd\u2026"),
    ("abc", 1, "\u2026"),
]


@pytest.mark.parametrize("text, limit, expected", CAPPED_CASES)
def test_capped(text, limit, expected):
    assert L.capped(text, limit) == expected
    assert len(L.capped(text, limit)) <= limit


BIG = "x" * 1_000_000

EDGE_CASES = [
    ("StartRun", pb.StartRunRequest(spec=pb.RunSpec(op_name="train", label="l", tags=["a"], flags_json='{"lr": 0.1}')), None),
    ("StartRun", pb.StartRunRequest(spec=pb.RunSpec(op_name=BIG)), "the op name is too long"),
    ("StartRun", pb.StartRunRequest(spec=pb.RunSpec(label=BIG)), "the label is too long"),
    ("StartRun", pb.StartRunRequest(spec=pb.RunSpec(tags=["ok", BIG])), "a tag is too long"),
    ("StartRun", pb.StartRunRequest(spec=pb.RunSpec(flags_json=json.dumps({"x": BIG}))), "flag 'x' has a value too long"),
    ("StartRun", pb.StartRunRequest(spec=pb.RunSpec(steps=[pb.StepSpec(name="s", spec=pb.RunSpec(label=BIG))])),
     "the label is too long"),
    ("StartRun", pb.StartRunRequest(spec=pb.RunSpec(steps=[pb.StepSpec(name=BIG)])), "a step name is too long"),
    ("StartBatch", pb.StartBatchRequest(batch_op_name=BIG), "the batch op name is too long"),
    ("StartBatch", pb.StartBatchRequest(label=BIG), "the label is too long"),
    ("StartBatch", pb.StartBatchRequest(proto=pb.RunSpec(op_name=BIG)), "the op name is too long"),
    ("StartProtoRun", pb.StartProtoRunRequest(tags=[BIG]), "a tag is too long"),
    ("StartProtoRun", pb.StartProtoRunRequest(flags_json=json.dumps({"x": BIG})), "flag 'x' has a value too long"),
    ("RestartRun", pb.RestartRunRequest(label=BIG), "the label is too long"),
    ("LabelRuns", pb.LabelRunsRequest(value=BIG), "the label is too long"),
    ("LabelRuns", pb.LabelRunsRequest(value="short"), None),
    ("TagRuns", pb.TagRunsRequest(add=[BIG]), "a tag is too long"),
    ("TagRuns", pb.TagRunsRequest(remove=[BIG]), None),  # removing a tag stores nothing
    ("CommentRuns", pb.CommentRunsRequest(body=BIG), "the comment is too long: 1,000,000 characters (the limit is 10,000)"),
    ("ListRuns", pb.ListRunsRequest(runs=[BIG]), None),  # not stored: the seam bounds its echo instead
]


@pytest.mark.parametrize("name, request_, expected", EDGE_CASES)
def test_the_daemon_edge_checks_every_request_that_stores_text(name, request_, expected):
    if expected is None:
        rpc.check_limits(name, request_)
    else:
        with pytest.raises(rpc.errors.InvalidArgument, match=re.escape(expected)):
            rpc.check_limits(name, request_)


def test_every_limited_request_is_an_rpc():
    assert set(rpc.LIMITED) <= set(pb.DESCRIPTOR.services_by_name["Guild"].methods_by_name)
