"""Pruner flags (common.prunedefs, pure: table tests) and the pruning study
(guildd.pruning) against real Optuna with synthetic learning curves."""

import math
import random

import pytest

from guild_common import errors, guildfile_ops, optdefs, prunedefs
from guildd import pruning

FLAG_CASES = {
    "median defaults": ("median", {}, {"warmup-steps": 0, "startup-trials": 5, "interval-steps": 1}),
    "median warmup": ("median", {"warmup-steps": 3}, {"warmup-steps": 3, "startup-trials": 5, "interval-steps": 1}),
    "asha defaults": ("asha", {}, {"min-resource": 1, "reduction-factor": 4, "min-early-stopping-rate": 0}),
    "asha auto min": ("asha", {"min-resource": "auto"}, {"min-resource": "auto", "reduction-factor": 4, "min-early-stopping-rate": 0}),
    "hyperband max": ("hyperband", {"max-resource": 30}, {"min-resource": 1, "max-resource": 30, "reduction-factor": 3}),
    "hyperband defaults": ("hyperband", {}, {"min-resource": 1, "max-resource": "auto", "reduction-factor": 3}),
}


@pytest.mark.parametrize("pruner, given, expected", FLAG_CASES.values(), ids=FLAG_CASES.keys())
def test_pruner_flags(pruner, given, expected):
    assert prunedefs.pruner_flags(pruner, given) == expected


BAD_CASES = {
    "unknown pruner": ("nope", {}, "unknown pruner 'nope': expected one of median, asha, hyperband"),
    "unknown flag": ("median", {"min-resource": 2}, "unknown flag 'min-resource' for pruner median (flags: interval-steps, startup-trials, warmup-steps)"),
    "a string": ("median", {"warmup-steps": "abc"}, "invalid value abc for pruner flag warmup-steps: expected an integer 0 or more"),
    "a float": ("asha", {"reduction-factor": 2.5}, "invalid value 2.5 for pruner flag reduction-factor: expected an integer 2 or more"),
    "a bool": ("median", {"startup-trials": True}, "invalid value yes for pruner flag startup-trials: expected an integer 0 or more"),
    "too small": ("median", {"interval-steps": 0}, "invalid value 0 for pruner flag interval-steps: expected an integer 1 or more"),
    "auto not taken": ("hyperband", {"min-resource": "auto"}, "invalid value auto for pruner flag min-resource: expected an integer 1 or more"),
    "negative": ("asha", {"min-resource": -1}, "invalid value -1 for pruner flag min-resource: expected an integer 1 or more or 'auto'"),
}


@pytest.mark.parametrize("pruner, given, message", BAD_CASES.values(), ids=BAD_CASES.keys())
def test_bad_pruner_flags(pruner, given, message):
    with pytest.raises(errors.InvalidArgument) as e:
        prunedefs.pruner_flags(pruner, given)
    assert str(e.value) == message


ASSIGN_CASES = {
    "int": (["warmup-steps=3"], {"warmup-steps": 3}),
    "auto": (["max-resource=auto"], {"max-resource": "auto"}),
    "several": (["a=1", "b=x"], {"a": 1, "b": "x"}),
    "none": ([], {}),
}


@pytest.mark.parametrize("args, expected", ASSIGN_CASES.values(), ids=ASSIGN_CASES.keys())
def test_parse_assigns(args, expected):
    assert prunedefs.parse_assigns(args) == expected


@pytest.mark.parametrize("arg", ["warmup-steps", "=3"])
def test_parse_assigns_refuses(arg):
    with pytest.raises(errors.InvalidArgument, match="expected NAME=VAL"):
        prunedefs.parse_assigns([arg])


OBJECTIVE_CASES = {
    "last": ("loss", None, None),
    "prefixed": ("val#loss", None, None),
    "max": (None, "max acc", "--prune needs an objective with a value at each step: 'max acc' is known only when a trial ends (use --maximize acc)"),
    "min": ("min loss", None, "--prune needs an objective with a value at each step: 'min loss' is known only when a trial ends (use --minimize loss)"),
}


@pytest.mark.parametrize("minimize, maximize, message", OBJECTIVE_CASES.values(), ids=OBJECTIVE_CASES.keys())
def test_check_objective(minimize, maximize, message):
    objective = optdefs.parse_objective(minimize, maximize)
    if message is None:
        prunedefs.check_objective(objective)
    else:
        with pytest.raises(errors.InvalidArgument) as e:
            prunedefs.check_objective(objective)
        assert str(e.value) == message


def test_optuna_kwargs_and_describe():
    flags = prunedefs.pruner_flags("asha", {"min-resource": 2})
    assert prunedefs.optuna_kwargs("asha", flags) == {"min_resource": 2, "reduction_factor": 4, "min_early_stopping_rate": 0}
    assert prunedefs.describe("asha", flags) == "asha: min-early-stopping-rate=0 min-resource=2 reduction-factor=4"


GUILDFILE_CASES = {
    "absent": (None, None),
    "a name": ("median", ("median", {})),
    "a mapping": ({"pruner": "asha", "min-resource": 2}, ("asha", {"min-resource": 2})),
}


@pytest.mark.parametrize("data, expected", GUILDFILE_CASES.values(), ids=GUILDFILE_CASES.keys())
def test_guildfile_prune(data, expected):
    assert guildfile_ops.prune(data, "guild.yml") == expected


@pytest.mark.parametrize("data", [{"min-resource": 2}, 3, ["median"]])
def test_guildfile_prune_refuses(data):
    with pytest.raises(errors.InvalidArgument, match="invalid prune value"):
        guildfile_ops.prune(data, "guild.yml")


CURVE_CASES = {
    "matching key": ([("loss", 1.0, 0), ("acc", 0.5, 0), ("loss", 0.5, 1)], "loss", [(0, 1.0), (1, 0.5)]),
    "prefixed objective matches a bare tag": ([("loss", 1.0, 2)], "val#loss", [(2, 1.0)]),
    "prefixed key kept apart": ([("val#loss", 1.0, 2), ("loss", 3.0, 2)], "val#loss", [(2, 1.0), (2, 3.0)]),
    "non-finite dropped": ([("loss", math.nan, 0), ("loss", math.inf, 1), ("loss", 2.0, 2)], "loss", [(2, 2.0)]),
}


@pytest.mark.parametrize("scalars, key, expected", CURVE_CASES.values(), ids=CURVE_CASES.keys())
def test_curve(scalars, key, expected):
    assert pruning.curve(scalars, optdefs.Objective(key)) == expected


def loss_curve(asymptote, steps=10, rng=None):
    """Exponential decay from 1.0 toward `asymptote`, with a little noise."""
    rng = rng or random.Random(0)
    return [(s, asymptote + (1.0 - asymptote) * math.exp(-0.4 * s) + rng.gauss(0, 0.005)) for s in range(steps)]


def run_trial(study, key, points):
    """Reports a trial's curve as a batch does; the step it was pruned at, or None."""
    study.begin(key)
    for step, value in points:
        if study.report(key, step, value):
            study.end(key, None, pruned=True)
            return step
    study.end(key, points[-1][1])
    return None


@pytest.mark.parametrize("pruner, flags", [("median", {"startup-trials": 2, "warmup-steps": 2}), ("asha", {}), ("hyperband", {"max-resource": 10})])
def test_clearly_worse_trials_are_pruned(pruner, flags):
    study = pruning.Pruning(pruner, prunedefs.pruner_flags(pruner, flags), maximize=False)
    rng = random.Random(1)
    good = [run_trial(study, f"good{i}", loss_curve(0.1 + 0.01 * i, rng=rng)) for i in range(4)]
    bad = [run_trial(study, f"bad{i}", loss_curve(0.8, rng=rng)) for i in range(4)]
    assert good[0] is None  # the first trial has nothing to lose to
    assert sum(step is not None and step < 9 for step in bad) >= 3  # stopped before their last step


def test_median_waits_for_warmup_and_startup_trials():
    study = pruning.Pruning("median", prunedefs.pruner_flags("median", {"startup-trials": 2, "warmup-steps": 4}), maximize=False)
    assert run_trial(study, "a", loss_curve(0.1)) is None
    assert run_trial(study, "b", loss_curve(0.9)) is None  # one completed trial: still starting up
    run_trial(study, "c", loss_curve(0.1))
    assert run_trial(study, "d", loss_curve(0.9)) == 4  # not before the warm-up steps


def test_maximize_prunes_the_low_ones():
    study = pruning.Pruning("median", prunedefs.pruner_flags("median", {"startup-trials": 1}), maximize=True)
    run_trial(study, "a", [(s, 1.0 - v) for s, v in loss_curve(0.1)])
    assert run_trial(study, "b", [(s, 1.0 - v) for s, v in loss_curve(0.1)]) is None
    assert run_trial(study, "c", [(s, 1.0 - v) for s, v in loss_curve(0.9)]) is not None


def test_repeated_steps_are_ignored_and_last_is_kept():
    study = pruning.Pruning("median", prunedefs.pruner_flags("median", {}), maximize=False)
    study.begin("a")
    study.report("a", 0, 1.0)
    study.report("a", 1, 0.5)
    assert study.report("a", 1, 9.0) is False
    assert study.report("a", 0, 9.0) is False
    assert study.last("a") == (1, 0.5)


def test_a_replay_rebuilds_what_the_pruner_knew():
    """A restarted daemon replays the trials' histories: the same decision as before."""
    flags = prunedefs.pruner_flags("median", {"startup-trials": 2})
    curves = {"a": loss_curve(0.1), "b": loss_curve(0.15), "c": loss_curve(0.12)}
    live = pruning.Pruning("median", flags, maximize=False)
    for key, points in curves.items():
        run_trial(live, key, points)
    rebuilt = pruning.Pruning("median", flags, maximize=False)
    for key, points in curves.items():
        assert rebuilt.replay(key, points) is None
        rebuilt.end(key, points[-1][1])
    worse = loss_curve(0.9)
    assert run_trial(rebuilt, "d", worse) == run_trial(live, "d", worse) is not None


def test_failed_trials_set_no_bar():
    study = pruning.Pruning("median", prunedefs.pruner_flags("median", {"startup-trials": 1}), maximize=False)
    study.begin("failed")
    for step, value in loss_curve(0.0):
        study.report("failed", step, value)
    study.end("failed", None)
    assert run_trial(study, "b", loss_curve(0.9)) is None  # no completed trial to lose to
