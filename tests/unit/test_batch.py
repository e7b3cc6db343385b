"""guildctl's reading of a batch: which kind the flags make, the trials it previews, and the
confirmation Guild's tutorial shows (seeds/guild-hpo-tutorial.txt)."""

import types

import pytest

from guild_common import errors
from guildctl import batch

OP = types.SimpleNamespace(name="train.py", flag_defs={"x": None, "noise": None})


def plan(values, user=None, files=(), cwd=".", **opts):
    return batch.plan(OP, values, user or {}, list(files), batch.Options(**opts), cwd)


def test_plain_values_are_not_a_batch():
    assert plan({"x": 0.1, "noise": 0.1}) is None


def test_lists_and_sequences_make_a_grid():
    p = plan({"x": "linspace[-0.6:0.6:4]", "noise": 0.1})
    assert p.kind == "grid" and [t["x"] for t in p.trials] == [-0.6, -0.2, 0.2, 0.6]
    assert batch.confirm_lines("train.py", p) == [
        "You are about to run train.py as a batch (4 trials)",
        "  noise: 0.1",
        "  x: [-0.6, -0.2, 0.2, 0.6]",
    ]
    assert batch.op_suffix(p.kind) == "+"


def test_a_larger_grid_is_sampled_to_max_trials_reproducibly():
    a = plan({"x": [1, 2, 3, 4, 5, 6], "noise": 0.1}, max_trials=3, random_seed=7)
    b = plan({"x": [1, 2, 3, 4, 5, 6], "noise": 0.1}, max_trials=3, random_seed=7)
    assert len(a.trials) == 3 and a.trials == b.trials


def test_a_range_makes_random_search_with_20_trials_by_default():
    p = plan({"x": "[-2.0:2.0]", "noise": 0.1})
    assert (p.kind, p.max_trials, len(p.trials)) == ("random", 20, 20)
    assert all(-2.0 <= t["x"] <= 2.0 for t in p.trials)
    p = plan({"x": "[-2.0:2.0]", "noise": 0.1}, max_trials=5)
    assert batch.confirm_lines("train.py", p) == [
        "You are about to run train.py with random search (max 5 trials)",
        "  noise: 0.1",
        "  x: [-2.0:2.0]",
    ]
    assert batch.op_suffix(p.kind) == "+skopt:random"  # Guild 0.9 names it so


def test_gp_confirmation_lists_optimizer_flags_as_the_tutorial_shows():
    p = plan({"x": "[-2.0:2.0]", "noise": 0.1}, optimizer="gp", max_trials=10)
    assert batch.confirm_lines("train.py", p) == [
        "You are about to run train.py with 'skopt:gp' optimizer (max 10 trials, minimize loss)",
        "  noise: 0.1",
        "  x: [-2.0:2.0]",
        "Optimizer flags:",
        "  acq-func: gp_hedge",
        "  kappa: 1.96",
        "  noise: gaussian",
        "  random-starts: 3",
        "  xi: 0.05",
    ]
    p = plan({"x": "[-2.0:2.0]"}, optimizer="skopt:gbrt", maximize="acc", opt_flags=("random-starts=5",))
    assert p.kind == "gbrt" and p.opt_flags["random-starts"] == 5 and p.objective.maximize
    assert "(max 20 trials, maximize acc)" in batch.confirm_lines("train.py", p)[0]


@pytest.mark.parametrize(
    "values, opts, message",
    [
        ({"x": "[-2.0:2.0]"}, {"optimizer": "nope"}, "unknown optimizer 'nope'"),
        ({"x": "[1,2]"}, {"max_trials": 0}, "invalid --max-trials 0"),
        ({"x": "[-2:2]"}, {"optimizer": "gp", "opt_flags": ("foo=1",)}, "unknown flag 'foo' for optimizer gp"),
        ({"x": "[-2:2]"}, {"optimizer": "gp", "minimize": "the quick brown fox"}, "invalid objective"),
        ({"x": "uniform[3:1]"}, {}, "MIN (3) must be less than MAX (1)"),
        ({"x": 1}, {"opt_flags": ("kappa=1",)}, "needs an optimizer"),
    ],
)
def test_bad_batches(values, opts, message):
    with pytest.raises(errors.InvalidArgument, match=__import__("re").escape(message)):
        plan(values, **opts)


def test_batch_files_with_a_column_that_is_not_a_flag_are_refused(tmp_path):
    (tmp_path / "trials.csv").write_text("x,foo\n1,2\n3,4\n")
    with pytest.raises(errors.InvalidArgument, match="column 'foo' is not a flag of train.py"):
        plan({"x": 0.1, "noise": 0.1}, files=["trials.csv"], cwd=str(tmp_path))
    (tmp_path / "ok.csv").write_text("x\n1\n3\n")
    p = plan({"x": 0.1, "noise": 0.1}, files=["ok.csv"], cwd=str(tmp_path))
    assert [t["x"] for t in p.trials] == [1, 3] and all(t["noise"] == 0.1 for t in p.trials)


def test_print_and_save_trials(tmp_path, capsys):
    p = plan({"x": [1, 2], "noise": 0.1})
    batch.print_trials(p)
    assert capsys.readouterr().out.splitlines() == ["#  noise  x", "1  0.1    1", "2  0.1    2"]
    batch.save_trials(p, str(tmp_path / "t.csv"))
    assert (tmp_path / "t.csv").read_text().splitlines() == ["noise,x", "0.1,1", "0.1,2"]
    with pytest.raises(errors.InvalidArgument, match="does not support printing trials"):
        batch.print_trials(plan({"x": "[0:1.0]"}, optimizer="gp"))
