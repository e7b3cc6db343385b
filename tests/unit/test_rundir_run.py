"""What `guildctl run --run-dir` refuses, as pure decisions (the runs themselves: e2e)."""

import pytest

from guild_common.pb import guild_pb2 as pb
from guildctl import rundir_run


@pytest.mark.parametrize(
    "given, refused",
    [
        ({}, None),
        ({"stage": False, "gpus": False, "queue": None}, None),
        ({"stage": True}, "--stage"),
        ({"background": True}, "--background"),
        ({"start": "1"}, "--start"),
        ({"restart": "1"}, "--restart"),
        ({"proto": "1"}, "--proto"),
        ({"needed": True}, "--needed"),
        ({"gpus": True}, "--gpus"),
        ({"gpu_memory": "20G"}, "--gpu-memory"),
        ({"queue": pb.QueueOptions(priority=1)}, "--priority, --queue and --after"),
        ({"batch": True}, "batch options"),
    ],
)
def test_options_that_need_the_daemon_are_refused(given, refused):
    why = rundir_run.option_refusal(given)
    if refused is None:
        assert why is None
    else:
        assert why.startswith(refused) and "--run-dir" in why


@pytest.mark.parametrize(
    "spec, resources, batch, refused",
    [
        (pb.RunSpec(op_name="train"), pb.ResourceRequest(), None, None),
        (pb.RunSpec(op_name="train", requires_json="[]"), pb.ResourceRequest(no_gpus=True), None, None),
        (pb.RunSpec(op_name="train"), pb.ResourceRequest(), object(), "a batch"),
        (pb.RunSpec(op_name="all", steps=[pb.StepSpec()]), pb.ResourceRequest(), None, "'all' is a pipeline"),
        (pb.RunSpec(op_name="prep", requires_json='[{"file": "x"}]'), pb.ResourceRequest(), None, "'prep' has dependencies"),
        (pb.RunSpec(op_name="train"), pb.ResourceRequest(gpus=2), None, "'train' asks for GPUs"),
        (pb.RunSpec(op_name="train"), pb.ResourceRequest(devices=[1]), None, "'train' asks for GPUs"),
    ],
)
def test_runs_only_the_daemon_can_make_are_refused(spec, resources, batch, refused):
    why = rundir_run.spec_refusal(spec, resources, batch)
    assert (why is None) if refused is None else why.startswith(refused)


def test_dirs_that_cant_hold_the_run(tmp_path):
    home = tmp_path / "home"
    (tmp_path / "file").write_text("x")
    (tmp_path / "used").mkdir()
    assert rundir_run.dir_refusal(str(tmp_path / "new"), str(home)) is None
    assert rundir_run.dir_refusal(str(tmp_path / "used"), str(home)) is None  # reused, as Guild does
    assert "is not a directory" in rundir_run.dir_refusal(str(tmp_path / "file"), str(home))
    assert "run store" in rundir_run.dir_refusal(str(home / "runs" / "x"), str(home))
    assert "run store" in rundir_run.dir_refusal(str(home / "runs"), str(home))
    assert rundir_run.dir_refusal(str(home / "elsewhere"), str(home)) is None
