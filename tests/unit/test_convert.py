"""Messages <-> plain values (guildd.convert): records out as messages, requests in as
values, and the values a request can't have refused."""

import json

import pytest

from guild_common import errors
from guild_common.pb import guild_pb2 as pb
from guildd import compare as comparelib, convert, queue
from guildd.selection import Criteria
from guildd.store import RunRecord, Summary

RUN = "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d"


def record(**kw):
    fields = dict(
        id=RUN, op_name="train.py", opref="script:/p '' '' train.py", status="completed", label="best",
        created_us=1, started_us=2, stopped_us=3, exit_status=0, pid=0, shim_pid=0, shim_started=0.0,
        flags_json='{"x": 1}', tags_json='["a", "b"]', user="alice", scalar_offset=0, marked=True, digest="d1",
    )
    fields.update(kw)
    return RunRecord(**fields)


def fields(msg, *names):
    return {name: getattr(msg, name) for name in names}


RUN_MESSAGES = {
    "a completed run": (
        dict(), dict(),
        dict(id=RUN, op_name="train.py", status="completed", label="best", started_us=2, stopped_us=3, exit_status=0,
             has_exit_status=True, pid=0, run_dir="/h/runs/" + RUN, flags_json='{"x": 1}', user="alice",
             opref="script:/p '' '' train.py", marked=True, deleted=False, sourcecode_digest="d1"),
    ),
    "no exit status yet": (dict(status="running", exit_status=None), dict(pid=42),
                           dict(status="running", exit_status=0, has_exit_status=False, pid=42)),
    "a failed run": (dict(status="error", exit_status=1), dict(), dict(exit_status=1, has_exit_status=True)),
    "a deleted run": (dict(deleted=True), dict(run_dir="/h/trash/runs/" + RUN), dict(deleted=True, run_dir="/h/trash/runs/" + RUN)),
}


@pytest.mark.parametrize("case", RUN_MESSAGES)
def test_run_message(case):
    rec_fields, args, expected = RUN_MESSAGES[case]
    args = {"run_dir": "/h/runs/" + RUN, **args}
    msg = convert.run_message(record(**rec_fields), **args)
    assert fields(msg, *expected) == expected
    assert list(msg.tags) == ["a", "b"]


def test_run_message_carries_scalar_summaries():
    s = Summary("loss", 1.0, 0, 0.25, 3, 0.25, 3, 1.0, 0, 2.5, 4)
    (msg,) = convert.run_message(record(), "/r", scalars=[s]).scalars
    assert fields(msg, "tag", "first", "first_step", "last", "last_step", "min", "min_step", "max", "max_step", "total",
                  "count") == dict(tag="loss", first=1.0, first_step=0, last=0.25, last_step=3, min=0.25, min_step=3,
                                   max=1.0, max_step=0, total=2.5, count=4)


def test_a_purged_run_is_named_only():
    msg = convert.purged_message(record())
    assert (msg.id, msg.op_name, msg.status, msg.label, msg.run_dir) == (RUN, "train.py", "completed", "best", "")


CRITERIA = {
    "an empty filter selects all": (pb.RunFilter(), False, Criteria()),
    "an empty filter with batches excluded": (pb.RunFilter(), True, Criteria(exclude_batch=True)),
    "statuses and labels": (pb.RunFilter(statuses=["completed"], not_statuses=["error"], labels=["a"]), False,
                            Criteria(statuses=("completed",), not_statuses=("error",), labels=("a",))),
    "marks and times": (pb.RunFilter(marked=True, unlabeled=True, started_after_us=5, started_before_us=9), False,
                        Criteria(marked=True, unlabeled=True, started_after_us=5, started_before_us=9)),
    "ops, tags, digests, expression, trash": (
        pb.RunFilter(ops=["train"], tags=["t"], digests=["d"], expr="loss < 1", deleted=True, unmarked=True), False,
        Criteria(ops=("train",), tags=("t",), digests=("d",), expr="loss < 1", deleted=True, unmarked=True)),
    "include_batch overrides the exclusion": (pb.RunFilter(include_batch=True), True, Criteria()),
    "an archive alone is all runs": (pb.RunFilter(archive="/a"), True, Criteria(exclude_batch=True)),
}


@pytest.mark.parametrize("case", CRITERIA)
def test_criteria(case):
    run_filter, exclude_batch, expected = CRITERIA[case]
    assert convert.criteria(run_filter, exclude_batch) == expected


ORDERS = {
    "latest first": (pb.ListRunsRequest(), None),
    "by min": (pb.ListRunsRequest(min="loss"), ("loss", False)),
    "by max": (pb.CompareRunsRequest(max="acc"), ("acc", True)),
}


@pytest.mark.parametrize("case", ORDERS)
def test_order(case):
    request, expected = ORDERS[case]
    assert convert.order(request) == expected


def test_order_refuses_min_and_max():
    with pytest.raises(errors.InvalidArgument, match="cannot both"):
        convert.order(pb.ListRunsRequest(min="a", max="b"))


@pytest.mark.parametrize("action, name", [(pb.LABEL_SET, "set"), (pb.LABEL_PREPEND, "prepend"), (pb.LABEL_APPEND, "append"),
                                          (pb.LABEL_REMOVE, "remove"), (pb.LABEL_CLEAR, "clear")])
def test_label_action(action, name):
    assert convert.label_action(action) == name


@pytest.mark.parametrize("action", [pb.LABEL_ACTION_UNSPECIFIED, 99])
def test_label_action_missing_or_unknown_is_refused(action):
    with pytest.raises(errors.InvalidArgument, match="label action missing"):
        convert.label_action(action)


QUEUE_SETTINGS = {
    "nothing set leaves all as it is": (
        pb.ConfigureQueueRequest(),
        dict(paused=None, queue_limits={}, user_gpu_cap=None, cpu_slots=None,
             processing=dict(run_once=False, gpus=[], wait_for_running=False))),
    "zero values set are kept": (
        pb.ConfigureQueueRequest(paused=False, user_gpu_cap=0, cpu_slots=0),
        dict(paused=False, queue_limits={}, user_gpu_cap=0, cpu_slots=0,
             processing=dict(run_once=False, gpus=[], wait_for_running=False))),
    "limits and processing": (
        pb.ConfigureQueueRequest(queue_limits={"big": 2}, processing=pb.QueueProcessing(run_once=True, gpus=[0, 3])),
        dict(paused=None, queue_limits={"big": 2}, user_gpu_cap=None, cpu_slots=None,
             processing=dict(run_once=True, gpus=[0, 3], wait_for_running=False))),
}


@pytest.mark.parametrize("case", QUEUE_SETTINGS)
def test_queue_settings(case):
    request, expected = QUEUE_SETTINGS[case]
    assert convert.queue_settings(request) == expected


CELLS = {
    "none": (None, None),
    "a bool before an int": (True, "boolean"),
    "an int": (3, "integer"),
    "a float": (0.5, "number"),
    "text": ("abc", "text"),
    "anything else as text": ([1], "text"),
}


@pytest.mark.parametrize("case", CELLS)
def test_cell(case):
    value, kind = CELLS[case]
    cell = convert.cell(value)
    assert cell.WhichOneof("value") == kind
    if kind:
        assert getattr(cell, kind) == (str(value) if kind == "text" else value)


def test_compare_message():
    cols = [comparelib.Column("run", "core", name="run"), comparelib.Column("loss", "scalar")]
    msg = convert.compare_message(cols, [(RUN, [RUN[:8], 0.5]), (RUN, [RUN[:8], None])])
    assert [(c.header, c.kind) for c in msg.columns] == [("run", "core"), ("loss", "scalar")]
    assert [[c.WhichOneof("value") for c in row.cells] for row in msg.rows] == [["text", "number"], ["text", None]]


@pytest.mark.parametrize("cmd, line", [(["python", "t.py", "--x=a b"], "python t.py '--x=a b'"), (None, ""), ("python", "")])
def test_command_line(cmd, line):
    assert convert.command_line(cmd) == line


def test_details_show_what_runs_info_shows():
    attrs = {"cmd": ["python", "t.py"], "env": {"A": 1}, "deps": {"data": {"paths": ["d"]}}, "vcs_commit": "git:abc",
             "op": {}, "platform": {}, "pip_freeze": [], "run_params": {}, "host": "h", "exit_status": 0}
    msg = convert.add_details(convert.run_message(record(), "/r"), attrs)
    assert (msg.command, dict(msg.env), msg.vcs_commit, getattr(msg, "from")) == ("python t.py", {"A": "1"}, "git:abc", "/p")
    assert json.loads(msg.deps_json) == {"data": {"paths": ["d"]}}
    assert json.loads(msg.attrs_json) == {"vcs_commit": "git:abc", "host": "h", "exit_status": 0}
    assert "cmd" in attrs  # the caller's attrs are left as they were


def test_transfers_files_and_disk_usage():
    assert [(t.run_id, t.result, t.reason) for t in convert.transfer_messages([(RUN, "skipped", "exists")])] == [
        (RUN, "skipped", "exists")]
    assert [(f.path, f.is_dir, f.is_link, f.size) for f in convert.file_messages([("a/b", False, True, 7)])] == [
        ("a/b", False, True, 7)]
    usage = convert.disk_usage_message([("runs", "/h/runs", 10)]).usage
    assert [(u.name, u.path, u.bytes) for u in usage] == [("runs", "/h/runs", 10)]


def test_a_requests_resources_and_queue_options_as_values():
    msg = pb.ResourceRequest(gpus=1, devices=[3, 1], gpu_memory=5, no_gpus=True)
    assert convert.run_resources(msg) == queue.Resources(gpus=1, devices=(3, 1), gpu_memory=5, no_gpus=True)
    assert convert.run_resources(pb.ResourceRequest()) == queue.Resources()
    wants = convert.queue_wants(pb.QueueOptions(priority=2, queue="big", after=["1a2b", "3c"]))
    assert wants == queue.Wants(priority=2, queue="big", after=("1a2b", "3c"))


def test_a_restart_replaces_the_runs_resources_only_when_set():
    resources = pb.ResourceRequest(gpus=2)
    assert convert.restart(pb.RestartRunRequest(run="1", resources=resources)).resources is None
    assert convert.restart(pb.RestartRunRequest(run="1", resources=resources, set_resources=True)).resources == (
        queue.Resources(gpus=2))
