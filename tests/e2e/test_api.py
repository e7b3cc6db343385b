"""guildctl.api and guildctl.ipy end to end: Python code starting, listing, comparing,
selecting, managing and watching runs through a real guildd, and notebook functions run as
recorded runs (grid, random search, an exception)."""

import os
import pathlib

import pytest

from guildctl import api, ipy
from tests.conftest import SLOW
from tests.e2e.conftest import serve_module, write

TRAIN = """
x = 0.1
epochs = 2
for step in range(epochs):
    print("step: %d" % step)
    print("loss: %f" % ((x - 0.3) ** 2 + 0.1 / (step + 1)))
"""


@pytest.fixture(scope="module")
def g(tmp_path_factory):
    yield from serve_module(tmp_path_factory, "api")


@pytest.fixture(scope="module")
def s(g):
    """The module-level API pointed at the test daemon (ipy uses it too)."""
    session = api.connect(g.home, autostart=False)
    yield session
    session.close()


@pytest.fixture(scope="module")
def proj(g):
    p = pathlib.Path(g.project) / "proj"
    write(p, {"train.py": TRAIN, "slow.py": SLOW})
    return p


def _loss(x, epochs=2):
    return round((x - 0.3) ** 2 + 0.1 / epochs, 6)


def test_run_waits_and_returns_the_run(s, proj, capsys):
    run = api.run("train.py", x=0.5, cwd=proj, label="first")
    assert run.status == "completed" and run.exit_status == 0
    assert run.op == "train.py" and run.label == "first"
    assert run.flags == {"x": 0.5, "epochs": 2}
    assert run.scalars["loss"] == pytest.approx(_loss(0.5))
    assert run.started <= run.stopped
    assert pathlib.Path(run.run_dir, ".guild", "output").is_file()
    assert "loss: " in capsys.readouterr().out  # the output is printed while waiting


def test_unknown_flag_is_a_clear_error_and_starts_nothing(s, proj):
    before = len(api.runs())
    with pytest.raises(api.InvalidArgument) as e:
        api.run("train.py", nope=1, cwd=proj)
    assert str(e.value).startswith("unsupported flag 'nope'")
    assert isinstance(e.value, api.GuildError)
    assert len(api.runs()) == before


def test_errors_are_one_tree(s, proj):
    with pytest.raises(api.NotFound):
        api.run("missing.py", cwd=proj)
    with pytest.raises(api.NotFound):
        api.select("deadbeef" + "0" * 24)
    with pytest.raises(api.InvalidArgument, match="unknown run filter 'colour'"):
        api.runs(colour="red")


def test_runs_filters_compare_and_select(s, proj):
    low = api.run("train.py", x=0.3, cwd=proj, quiet=True, label="sweep low")
    high = api.run("train.py", x=0.9, cwd=proj, quiet=True, label="sweep high")
    sweep = api.runs(labels="sweep")
    assert [r.id for r in sweep] == [high.id, low.id]  # latest first
    assert [r.id for r in api.runs(labels="sweep", expr="x > 0.5")] == [high.id]
    assert all(r.status == "completed" for r in api.runs(completed=True))
    assert api.runs(error=True) == []
    assert len(api.runs(limit=1)) == 1

    rows = api.compare([low.id, high.id])
    by_run = {row["run"]: row for row in rows}
    assert by_run[low.id[:8]]["x"] == 0.3 and by_run[high.id[:8]]["x"] == 0.9
    assert by_run[high.id[:8]]["loss"] == pytest.approx(_loss(0.9))
    assert by_run[low.id[:8]]["operation"] == "train.py"

    assert api.select(min="loss", labels="sweep").id == low.id
    assert api.select(max="loss", labels="sweep").id == high.id
    assert [r.id for r in api.select(all=True, labels="sweep")] == [high.id, low.id]


def test_label_tag_mark_and_delete(s, proj):
    run = api.run("train.py", cwd=proj, quiet=True)
    assert [r.label for r in api.label(run, set="base")] == ["base"]
    assert api.tag(run.id, add=["best", "v1"])[0].tags == ("best", "v1")
    assert [r.id for r in api.runs(tags="best")] == [run.id]
    assert api.tag(run.id, remove="v1", sync_labels=True)[0].tags == ("best",)
    assert api.tag(run, clear=True)[0].tags == ()
    with pytest.raises(api.FailedPrecondition, match="has no tag 'never'"):
        api.tag(run, remove="never")
    assert api.mark(run)[0].marked
    assert [r.id for r in api.runs(marked=True)] == [run.id]
    assert not api.mark(clear=True)[0].marked
    with pytest.raises(api.InvalidArgument, match="one of set"):
        api.label(run)
    with pytest.raises(api.InvalidArgument, match="needs runs"):
        api.delete()
    assert api.delete(run) == [run.id]
    assert run.id not in [r.id for r in api.runs()]
    assert [r.id for r in api.runs(deleted=True)] == [run.id]


def test_background_watch_and_stop(s, proj):
    run = api.run("train.py", x=0.3, cwd=proj, background=True)
    assert list(api.watch(run.id)) == ["step: 0", "loss: 0.100000", "step: 1", "loss: 0.050000"]

    slow = api.run("slow.py", steps=1000, cwd=proj, background=True)
    lines = api.watch(slow.id)
    assert next(lines) == "step: 0"  # it is running
    assert next(api.watch()) == "step: 0"  # the latest running run
    assert api.stop(slow.id) == [slow.id]
    assert api.get(slow).status == "terminated"


def test_to_dataframe(s, proj):
    pandas = pytest.importorskip("pandas", reason="to_dataframe() needs pandas, which guildctl doesn't install")
    frame = api.runs(ops="train.py", completed=True).to_dataframe()
    assert isinstance(frame, pandas.DataFrame)
    assert {"id", "op", "status", "x", "loss"} <= set(frame.columns)


def add(a, b=2):
    print("sum: %s" % (a + b))
    return {"sum": a + b}


def noted(lr=0.1):
    print("loss: %f" % lr)  # returns None


def test_notebook_function_is_a_recorded_run(s, proj):
    run, result = ipy.run(add, 1, b=5, _label="nb", _quiet=True)
    assert run.status == "completed" and run.op == "add()" and run.label == "nb"
    assert run.flags == {"a": 1, "b": 5}
    assert run.scalars["sum"] == 6
    assert result == {"sum": 6}
    assert "add()" in [r["operation"] for r in api.compare(run.id)]

    plain, nothing = ipy.run(noted, lr=0.2, _quiet=True)
    assert plain.status == "completed" and nothing is None and plain.scalars == {"loss": pytest.approx(0.2)}


def scaled(x=1.0, scale=2):
    import math

    print("loss: %f" % math.fabs(x * scale))


def test_notebook_grid(s, proj):
    batch, result = ipy.run(scaled, x=[1.0, 2.0, 3.0], _quiet=True)
    assert batch.op == "scaled()+" and result is None
    trials = api.runs(ops="scaled()", completed=True)
    trials = [t for t in trials if t.op == "scaled()"]
    assert sorted(t.flags["x"] for t in trials) == [1.0, 2.0, 3.0]
    assert sorted(t.scalars["loss"] for t in trials) == [2.0, 4.0, 6.0]


def searched(lr=0.1):
    print("loss: %f" % lr)


def test_notebook_random_search(s, proj):
    ipy.run(searched, lr=ipy.uniform(0.01, 0.5), _max_trials=3, _random_seed=7, _quiet=True)
    trials = [t for t in api.runs(ops="searched()") if t.op == "searched()"]
    assert len(trials) == 3
    assert all(0.01 <= t.flags["lr"] <= 0.5 and t.status == "completed" for t in trials)


def fails(n=1):
    raise ValueError("bad n: %d" % n)


def test_notebook_exception_is_status_error(s, proj):
    run, result = ipy.run(fails, _quiet=True)
    assert run.status == "error" and result is None
    assert "ValueError: bad n: 1" in list(api.watch(run.id))


def test_notebook_bad_flags(s, proj):
    with pytest.raises(api.InvalidArgument, match="unsupported flag 'c': add\\(\\) has no such parameter"):
        ipy.run(add, 1, c=2)
    with pytest.raises(api.InvalidArgument, match="missing flag 'a'"):
        ipy.run(add)
    with pytest.raises(api.InvalidArgument, match="unknown option '_colour'"):
        ipy.run(add, 1, _colour="red")


def test_stage(s, proj):
    staged = api.run("train.py", cwd=proj, stage=True)
    assert staged.status == "staged"
    assert [r.id for r in api.runs(staged=True)] == [staged.id]
    assert api.delete(staged, permanent=True) == [staged.id]


def test_needed_returns_the_run_that_exists(s, proj):
    first = api.run("train.py", x=0.77, cwd=proj, quiet=True)
    again = api.run("train.py", x=0.77, cwd=proj, quiet=True, needed=True)
    assert again.id == first.id
    assert api.run("train.py", x=0.78, cwd=proj, quiet=True, needed=True).id != first.id


def test_batch_label_and_trial_labels(s, proj):
    batch = api.run("train.py", x=[0.41, 0.42], cwd=proj, quiet=True, label="trial", batch_label="the batch", keep_batch=True)
    assert batch.op == "train.py+" and batch.label == "the batch"
    trials = api.runs(labels="trial", expr="x < 0.43 and x > 0.40")
    assert sorted(t.flags["x"] for t in trials) == [0.41, 0.42]


def test_default_cwd(s, proj):
    old = os.getcwd()
    os.chdir(proj)
    try:
        run = api.run("train.py", quiet=True)
    finally:
        os.chdir(old)
    assert run.status == "completed"


# run()'s pruning, preemption and Ray options, refused as `guildctl run` refuses them: one
# line, nothing created (their runs are tested from the CLI: test_pruning, test_preemption, test_ray)
REFUSED_OPTIONS = [
    pytest.param(dict(x=[0.1, 0.2], prune="nope"), "unknown pruner 'nope'", id="an unknown pruner"),
    pytest.param(dict(x=[0.1, 0.2], prune="median", prune_flags={"warmup-steps": "many"}), "warmup-steps",
                 id="a pruner flag of the wrong type"),
    pytest.param(dict(preemptible=True), "--preemptible", id="preemptible, asking for no GPUs"),
    pytest.param(dict(x=[0.1, 0.2], preemptible_trials=True), "--preemptible-trials", id="preemptible trials, asking for no GPUs"),
    pytest.param(dict(cpus=2), "--cpus", id="CPUs asked of no Ray cluster"),
    pytest.param(dict(executor="slurm"), "executor", id="an unknown executor"),
]


@pytest.mark.parametrize("options, says", REFUSED_OPTIONS)
def test_bad_pruning_preemption_and_ray_options_are_refused_and_start_nothing(s, proj, options, says):
    before = len(api.runs())
    with pytest.raises(api.InvalidArgument) as e:
        api.run("train.py", cwd=proj, quiet=True, **options)
    assert says in str(e.value) and "\n" not in str(e.value)
    assert len(api.runs()) == before
