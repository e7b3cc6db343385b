"""guildctl.api's and guildctl.ipy's pure parts: filters as the CLI's RunFilter, runs as
Python values, compare rows, output lines, and the notebook runner built from a function."""

import inspect
import json
import subprocess
import sys

import pytest

from guild_common import errors, opmain
from guild_common.pb import guild_pb2 as pb
from guildctl import api, api_runs, ipy, runops


@pytest.mark.parametrize(
    "given, expected",
    [
        ({}, pb.RunFilter()),
        ({"ops": "train"}, pb.RunFilter(ops=["train"])),
        ({"labels": ["a", "b"], "tags": "t"}, pb.RunFilter(labels=["a", "b"], tags=["t"])),
        ({"completed": True, "error": False}, pb.RunFilter(statuses=["completed"], not_statuses=["error"])),
        ({"marked": True, "unlabeled": True}, pb.RunFilter(marked=True, unlabeled=True)),
        ({"expr": "loss < 0.3"}, pb.RunFilter(expr="loss < 0.3")),
        ({"started": "ce"}, pb.RunFilter(statuses=["completed", "error"])),  # Guild 0.9's status chars, as -S
    ],
)
def test_run_filter_is_the_clis(given, expected):
    assert api_runs.run_filter(**given) == expected


def test_run_filter_time_range_and_deleted():
    f = api_runs.run_filter(deleted=True, started="last hour")
    assert f.deleted and f.started_after_us > 0


def test_unknown_filter_names_the_known_ones():
    with pytest.raises(errors.InvalidArgument, match=r"unknown run filter 'colour' \(filters: ops, labels"):
        api_runs.run_filter(colour="red")


def _run_msg(**kw):
    fields = dict(id="a" * 32, op_name="train.py", status="completed", label="x=1", started_us=1_700_000_000_000_000,
                  run_dir="/h/runs/" + "a" * 32, flags_json=json.dumps({"x": 1}), user="alice")
    fields.update(kw)
    return pb.Run(**fields)


def test_run_from_message():
    msg = _run_msg(scalars=[pb.ScalarSummary(tag="loss", last=0.5, last_step=2)], has_exit_status=True, tags=["t"])
    run = api.Run.from_msg(msg)
    assert (run.id, run.short_id, run.op, run.status, run.label) == ("a" * 32, "aaaaaaaa", "train.py", "completed", "x=1")
    assert run.flags == {"x": 1} and run.scalars == {"loss": 0.5} and run.tags == ("t",)
    assert run.exit_status == 0 and run.stopped is None and run.started.year == 2023 and not run.marked


def test_dataframe_rows_put_flags_then_scalars():
    run = api.Run.from_msg(_run_msg(scalars=[pb.ScalarSummary(tag="loss", last=0.5), pb.ScalarSummary(tag="x", last=2.0)]))
    (row,) = api_runs.dataframe_rows([run])
    assert list(row) == ["id", "op", "started", "stopped", "status", "label", "x", "loss", "scalar:x"]
    assert (row["x"], row["loss"], row["scalar:x"]) == (1, 0.5, 2.0)


def test_compare_rows():
    resp = pb.CompareRunsResponse(
        columns=[pb.CompareColumn(header="run", kind="core"), pb.CompareColumn(header="operation", kind="core"),
                 pb.CompareColumn(header="x", kind="flag"), pb.CompareColumn(header="loss", kind="scalar")],
        rows=[pb.CompareRow(cells=[pb.Cell(text="aaaaaaaa"), pb.Cell(text="train.py [marked]"),
                                   pb.Cell(number=0.1), pb.Cell()])],
    )
    assert api_runs.compare_rows(resp) == [{"run": "aaaaaaaa", "operation": "train.py", "x": 0.1, "loss": None}]


def test_output_lines_join_chunks_and_keep_a_last_partial_line():
    events = [pb.WatchRunResponse(run=pb.Run()), pb.WatchRunResponse(output=b"a: 1\nb"),
              pb.WatchRunResponse(stderr=b": 2\nTrace"), pb.WatchRunResponse(output=b"back"),
              pb.WatchRunResponse(ended=pb.Run(status="error"))]
    assert list(api_runs.output_lines(events)) == ["a: 1", "b: 2", "Traceback"]


@pytest.mark.parametrize(
    "flags, expected",
    [
        ({"x": 0.1, "n": 3, "s": "hello world"}, ["x=0.1", "n=3", "s=hello world"]),
        ({"grid": [1, 2]}, ["grid=[1, 2]"]),
        ({"b": True, "text": "1"}, ["b=yes", "text='1'"]),  # a string stays a string
        ({"lr": ipy.uniform(0, 1)}, ["lr=uniform[0:1]"]),
    ],
)
def test_flag_assigns_decode_back_to_the_values(flags, expected):
    assert runops.flag_assigns(flags) == expected


def test_run_options_refuse_bad_values():
    with pytest.raises(errors.InvalidArgument, match="invalid parallel -1"):
        api.RunOptions(parallel=-1).new_run()
    with pytest.raises(errors.InvalidArgument, match="--stop-after"):
        api.RunOptions(stop_after="soon").new_run()
    opts = api.RunOptions(tags="best", after="1a2b", stop_after="2m", gpus=2, opt_flags={"random-starts": 3}).new_run()
    assert opts.tags == ("best",) and list(opts.queue.after) == ["1a2b"] and opts.stop_after == 120.0
    assert opts.gpus == "2" and opts.batch.opt_flags == ("random-starts=3",)


def train(lr, epochs=3, name="m", fast=False):
    print("loss: %f" % (lr * epochs))
    return {"name": name, "fast": fast}


@pytest.mark.parametrize(
    "args, kw, expected",
    [
        ((0.1,), {}, {"lr": 0.1}),
        ((), {"lr": [0.1, 0.2], "epochs": 5}, {"lr": [0.1, 0.2], "epochs": 5}),
        ((), {"lr": slice(0.1, 0.5)}, {"lr": "uniform[0.1:0.5]"}),
    ],
)
def test_bind_flags(args, kw, expected):
    assert ipy.bind_flags(train, ipy.flag_params(train), args, kw) == expected


@pytest.mark.parametrize(
    "args, kw, message",
    [
        ((), {"lr": 1, "depth": 2}, "unsupported flag 'depth': train() has no such parameter (flags: lr, epochs, name, fast)"),
        ((), {}, "missing flag 'lr': train() has no default for it"),
        ((1, 2, 3, 4, 5), {}, "train() takes 4 flag(s), 5 positional value(s) given"),
        ((1,), {"lr": 2}, "flag 'lr' given twice"),
    ],
)
def test_bind_flags_refuses(args, kw, message):
    with pytest.raises(errors.InvalidArgument) as e:
        ipy.bind_flags(train, ipy.flag_params(train), args, kw)
    assert str(e.value).startswith(message)


def test_flag_defs_type_the_defaults():
    defs = ipy.flag_defs(ipy.flag_params(train))
    assert {n: (d.default, d.type, d.required) for n, d in defs.items()} == {
        "lr": (None, None, True), "epochs": (3, "number", False), "name": ("m", "string", False), "fast": (False, "boolean", False),
    }


def test_lambdas_and_builtins_are_refused():
    with pytest.raises(errors.InvalidArgument, match="defined with def"):
        ipy.flag_params(lambda x=1: x)
    with pytest.raises(errors.InvalidArgument, match="defined with def"):
        ipy.flag_params(print)


def uses_json(n=2):
    return json.dumps({"n": n})


def test_runner_takes_the_module_imports_the_function_uses():
    source = ipy.runner_source(uses_json, ipy.flag_params(uses_json))
    assert "import json" in source and "import pytest" not in source and "import subprocess" not in source


def test_runner_runs_with_the_flag_values_as_opmain_sets_them(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(ipy.runner_source(train, ipy.flag_params(train)))
    r = subprocess.run([sys.executable, opmain.__file__, "train.py", "--lr", "0.5", "--fast", "yes"],
                       cwd=tmp_path, env={"FLAGS_DEST": "globals"}, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "loss: 1.500000\n"
    assert json.loads((tmp_path / ipy.RESULT_FILE).read_text()) == {"name": "m", "fast": True}


def test_unknown_ipy_option():
    with pytest.raises(errors.InvalidArgument, match="unknown option '_colour'"):
        ipy.run(train, 1, _colour="red")


def test_module_functions_carry_the_session_methods_docs():
    assert api.run.__doc__ == api.Session.run.__doc__
    assert inspect.signature(api.runs).parameters  # callable with the Session's arguments
