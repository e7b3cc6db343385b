"""Batch optimizers (guildd.optimizers) on real scikit-optimize.

Rows cite the Guild doctest they come from as `L<line>` in seeds/guild-repo-docs.txt; rows
marked `ours` pin down a decision where Guild is silent or worse.
"""

import json

import pytest

from guild_common.errors import InvalidArgument
from guild_common.flagfuncs import SearchDim
from guild_common import optdefs
from guild_common.optdefs import Objective, parse_objective
from guildd.optimizers import Search

X = SearchDim("uniform", -2.0, 2.0)


def loss(values):
    return (values["x"] + 0.3) ** 2


@pytest.mark.parametrize(
    "typed, algorithm",
    [
        ("gp", "gp"),
        ("skopt:gp", "gp"),  # L21822
        ("bayesian", "gp"),  # L638
        ("gaussian", "gp"),
        ("forest", "forest"),
        ("skopt:forest", "forest"),
        ("gbrt", "gbrt"),
        ("skopt:gbrt", "gbrt"),
        ("random", "random"),
        ("skopt:random", "random"),  # L21807
    ],
)
def test_algorithm_for(typed, algorithm):
    assert optdefs.algorithm_for(typed) == algorithm


def test_algorithm_for_unknown():
    with pytest.raises(InvalidArgument) as e:
        optdefs.algorithm_for("nope")
    assert str(e.value) == "unknown optimizer 'nope' (optimizers: gp, forest, gbrt, tpe, random)"


def test_opspec():
    # Guild 0.9 names a gp batch `train.py+skopt:gp` (reference §14); L38064.
    assert [optdefs.opspec(a) for a in ("bayesian", "forest", "gbrt", "random")] == [
        "skopt:gp",
        "skopt:forest",
        "skopt:gbrt",
        "skopt:random",
    ]


def test_default_flags():
    # L8056, L8101, L8211, L38064-L38090
    assert optdefs.default_flags("gp") == {
        "acq-func": "gp_hedge",
        "kappa": 1.96,
        "noise": "gaussian",
        "random-starts": 3,
        "xi": 0.05,
    }
    assert optdefs.default_flags("forest") == {"kappa": 1.96, "random-starts": 3, "xi": 0.05}
    assert optdefs.default_flags("skopt:gbrt") == {"kappa": 1.96, "random-starts": 3, "xi": 0.05}
    assert optdefs.default_flags("random") == {}


def test_optimizer_flags_merge():
    # L8059: -Fo kappa=1.5 -Fo xi=0.2; L31320: noise=0.1
    flags = optdefs.optimizer_flags("gp", {"kappa": 1.5, "xi": 0.2, "noise": 0.1, "acq-func": "LCB"})
    assert flags == {"acq-func": "LCB", "kappa": 1.5, "noise": 0.1, "random-starts": 3, "xi": 0.2}
    assert optdefs.optimizer_flags("gbrt", {"random-starts": 0})["random-starts"] == 0


@pytest.mark.parametrize(
    "algorithm, assigns, message",
    [
        ("gp", {"foo": 1}, "unknown flag 'foo' for optimizer gp (flags: acq-func, kappa, noise, random-starts, xi)"),
        ("forest", {"noise": 0.1}, "unknown flag 'noise' for optimizer forest (flags: kappa, random-starts, xi)"),
        ("random", {"kappa": 1}, "unknown flag 'kappa' for optimizer random (flags: none)"),
        ("gp", {"random-starts": -1}, "invalid value -1 for optimizer flag random-starts: expected an integer 0 or more"),
        ("gp", {"random-starts": 2.5}, "invalid value 2.5 for optimizer flag random-starts: expected an integer 0 or more"),
        ("gp", {"random-starts": True}, "invalid value yes for optimizer flag random-starts: expected an integer 0 or more"),
        ("gp", {"acq-func": "XX"}, "invalid value XX for optimizer flag acq-func: expected one of gp_hedge, EI, LCB, PI"),
        ("gp", {"acq-func": "EIps"}, "invalid value EIps for optimizer flag acq-func: expected one of gp_hedge, EI, LCB, PI"),
        ("gp", {"noise": "loud"}, "invalid value loud for optimizer flag noise: expected 'gaussian' or a number 0 or more"),
        ("gp", {"noise": -1}, "invalid value -1 for optimizer flag noise: expected 'gaussian' or a number 0 or more"),
        ("gp", {"kappa": "high"}, "invalid value high for optimizer flag kappa: expected a number"),
        ("gbrt", {"xi": None}, "invalid value null for optimizer flag xi: expected a number"),
    ],
)
def test_optimizer_flags_errors(algorithm, assigns, message):
    with pytest.raises(InvalidArgument) as e:
        optdefs.optimizer_flags(algorithm, assigns)
    assert str(e.value) == message


def test_describe():
    gp = optdefs.optimizer_flags("gp", {})
    assert optdefs.describe("gp", gp) == "gp: acq-func=gp_hedge kappa=1.96 noise=gaussian random-starts=3 xi=0.05"
    assert optdefs.describe("skopt:forest", {"xi": 0.3, "kappa": 1.3}) == "forest: kappa=1.3 xi=0.3"
    assert optdefs.describe("random", {}) == "random"


@pytest.mark.parametrize(
    "minimize, maximize, objective",
    [
        (None, None, Objective("loss")),
        ("loss", None, Objective("loss")),  # L32745
        (None, "foo", Objective("foo", maximize=True)),  # L38083
        (None, "validate#accuracy", Objective("validate#accuracy", maximize=True)),  # L2635
        ("val#loss", None, Objective("val#loss")),
        ("max loss", None, Objective("loss", qualifier="max")),
        ("last loss", None, Objective("loss")),
        ("'a b'", None, Objective("a b")),
        ("", None, Objective("loss")),
    ],
)
def test_parse_objective(minimize, maximize, objective):
    assert parse_objective(minimize, maximize) == objective


@pytest.mark.parametrize(
    "minimize, maximize, message",
    [
        # L32804
        (None, "the quick brown fox", "invalid objective 'the quick brown fox': unexpected token 'quick', line 1, pos 11"),
        ("loss, accuracy", None, "invalid objective 'loss, accuracy': too many columns"),  # L32810
        ("loss", "acc", "--minimize and --maximize cannot both be specified"),  # ours
        ("=lr", None, "invalid objective '=lr': expected a scalar"),  # ours
        ("loss step", None, "invalid objective 'loss step': expected a scalar"),  # ours
    ],
)
def test_parse_objective_errors(minimize, maximize, message):
    with pytest.raises(InvalidArgument) as e:
        parse_objective(minimize, maximize)
    assert str(e.value) == message


@pytest.mark.parametrize("algorithm", optdefs.ALGORITHMS)
def test_no_search_dimensions(algorithm):
    # L7204, L8243
    with pytest.raises(InvalidArgument) as e:
        Search(algorithm, {}, {"z": "a", "x": 1.0, "y": 2}, seed=1)
    assert str(e.value) == (
        "flags for batch (x=1.0, y=2, z=a) do not contain any search dimensions\n"
        "Try specifying a range for one or more flags as NAME=[MIN:MAX]."
    )


@pytest.mark.parametrize(
    "value, message",
    [
        ([], "flag x has an empty list: nothing to search"),
        (SearchDim("uniform", 2.0, 1.0), "invalid range [2.0:1.0] for flag x: MIN must be a number less than MAX"),
        (SearchDim("loguniform", 0.0, 1.0), "invalid range for flag x: loguniform needs MIN above 0"),
        (SearchDim("uniform", -1.0, 1.0, initial=3.0), "initial value 3.0 for flag x is outside its range [-1.0:1.0]"),
        (SearchDim("uniform", 0, 5, initial=2.5, integer=True), "initial value 2.5 for flag x is outside its range [0:5]"),
    ],
)
def test_bad_dimensions(value, message):  # ours: skopt's ValueErrors, said in flag terms
    with pytest.raises(InvalidArgument) as e:
        Search("gp", {}, {"x": value}, seed=1)
    assert str(e.value) == message


def test_dimensions_sorted_by_name():
    # L32267: skopt dims are sorted by flag name; ask keeps the batch's flag order.
    values = {"z": [1, 2], "noise": 0.1, "b": SearchDim("uniform", 0.0, 1.0), "a": X}
    search = Search("random", {}, values, seed=1)
    assert search.dimensions == ("a", "b", "z")
    [trial] = search.ask()
    assert list(trial) == ["z", "noise", "b", "a"]
    assert trial["noise"] == 0.1


def test_value_types_and_bounds():
    values = {
        "i": SearchDim("uniform", 1, 5, integer=True),
        "lr": SearchDim("loguniform", 1e-5, 1e-1),
        "n": SearchDim("loguniform", 1, 1000, integer=True),
        "c": [1, "a", None, True, 2.5, "a"],
        "fixed": "yes",
    }
    trials = Search("random", {}, values, seed=3).ask(30)
    for t in trials:
        assert type(t["i"]) is int and 1 <= t["i"] <= 5
        assert type(t["lr"]) is float and 1e-5 <= t["lr"] <= 1e-1
        assert type(t["n"]) is int and 1 <= t["n"] <= 1000
        assert t["fixed"] == "yes"
    assert {repr(t["c"]) for t in trials} == {"1", "'a'", "None", "True", "2.5"}
    assert sum(t["lr"] < 1e-3 for t in trials) > 10  # log prior: half the samples below 1e-3
    json.dumps(trials)


def test_initial_values_asked_first():
    # L8000: `[-2.0:2.0:0.1]` tries 0.1 first, then random; every dim with an initial joins in.
    values = {"x": SearchDim("uniform", -2.0, 2.0, initial=0.1), "i": SearchDim("uniform", 0, 9, 4, True), "c": ["a", "b"]}
    for algorithm in ("gp", "random"):
        search = Search(algorithm, {}, values, seed=1)
        first, second = search.ask(2)
        assert (first["x"], first["i"]) == (0.1, 4) and first["c"] in ("a", "b")
        assert second["x"] != 0.1
        assert search.ask()[0]["x"] != 0.1


def test_initial_value_skipped_after_earlier_trials():  # ours: earlier trials already started it
    search = Search("gp", {}, {"x": SearchDim("uniform", -2.0, 2.0, initial=0.1)}, seed=1)
    search.tell({"x": 1.0}, 1.69)
    assert search.ask()[0]["x"] != 0.1


@pytest.mark.parametrize("seed", range(5))
def test_gp_finds_minimum(seed):
    # The tutorial's expectation (guild-hpo-tutorial.txt): gp closes in on x = -0.3.
    search = Search("gp", {}, {"x": X, "noise": 0.1}, seed=seed)
    for _ in range(20):
        [trial] = search.ask()
        search.tell(trial, loss(trial))
        if abs(trial["x"] + 0.3) < 0.15:
            break
    assert abs(trial["x"] + 0.3) < 0.15


def test_maximize_flips_the_sign():
    search = Search("gp", {}, {"x": X}, seed=2, objective_maximize=True)
    for _ in range(20):
        [trial] = search.ask()
        search.tell(trial, -loss(trial))
        if abs(trial["x"] + 0.3) < 0.15:
            break
    assert abs(trial["x"] + 0.3) < 0.15


@pytest.mark.parametrize("algorithm", ["forest", "gbrt"])
def test_tree_models(algorithm):
    # gbrt needs this module's mending of skopt 0.10.2 for current scikit-learn and numpy.
    search = Search(algorithm, {"random-starts": 2}, {"x": X}, seed=1)
    for _ in range(4):
        [trial] = search.ask()
        search.tell(trial, loss(trial))
    assert not search.random_start
    assert len({round(t["x"], 9) for t in search.ask(3)}) == 3


def test_random_starts_count_told_and_pending():
    search = Search("gp", {"random-starts": 2}, {"x": X}, seed=1)
    assert search.random_start
    first = search.ask()[0]
    assert search.random_start  # one of two random starts out
    search.tell(first, loss(first))
    second = search.ask()[0]
    assert not search.random_start  # the second random start is running
    search.tell(second, loss(second))
    assert (search.told, search.random_start) == (2, False)


def test_trial_without_objective_is_no_longer_pending():
    search = Search("gp", {"random-starts": 1}, {"x": X}, seed=1)
    [trial] = search.ask()
    assert not search.random_start
    assert not search.tell(trial, None)  # the trial failed: its random start is to do again
    assert (search.told, search.random_start) == (0, True)


def test_random_starts_zero_starts_at_random():
    # The tutorial's restart with -Fo random-starts=0: model-based once there are results.
    search = Search("gp", {"random-starts": 0}, {"x": X}, seed=1)
    assert search.random_start
    search.tell({"x": 1.0}, 1.69)
    assert not search.random_start
    assert -2.0 <= search.ask()[0]["x"] <= 2.0


def test_tell_skips_what_it_cannot_use():
    search = Search("gp", {}, {"x": X, "c": ["a", "b"], "i": SearchDim("uniform", 0, 3, integer=True)}, seed=1)
    assert search.tell({"x": 0.5, "c": "a", "i": 1}, 0.64)
    assert search.tell({"x": 1, "c": "b", "i": 2.0}, 1)  # an int real, an integral float
    assert not search.tell({"x": 0.5, "c": "a", "i": 1}, None)  # no objective logged
    assert not search.tell({"x": 0.5, "c": "a", "i": 1}, float("nan"))
    assert not search.tell({"x": 3.0, "c": "a", "i": 1}, 0.1)  # an earlier batch's bounds
    assert not search.tell({"x": 0.5, "c": "z", "i": 1}, 0.1)
    assert not search.tell({"x": 0.5, "c": "a", "i": 1.5}, 0.1)
    assert not search.tell({"x": 0.5, "c": "a"}, 0.1)
    assert search.told == 2


def test_random_is_reproducible():
    values = {"x": X, "c": ["a", "b", "c"]}
    first = Search("random", {}, values, seed=7).ask(5)
    assert first == Search("random", {}, values, seed=7).ask(5)
    assert first != Search("random", {}, values, seed=8).ask(5)
    assert all(-2.0 <= t["x"] <= 2.0 for t in first)
    search = Search("random", {}, values, seed=7)
    assert search.tell(first[0], 1.0) and search.told == 1 and not search.random_start


def test_gp_is_reproducible():
    def run(seed):
        search = Search("gp", {"random-starts": 1}, {"x": X}, seed=seed)
        for _ in range(2):
            [trial] = search.ask()
            search.tell(trial, loss(trial))
        return search.ask(2)

    assert run(5) == run(5)


def test_ask_many_gives_distinct_points():
    search = Search("gp", {}, {"x": X}, seed=1)
    assert len({t["x"] for t in search.ask(4)}) == 4


def test_parallel_asks_use_constant_liar():
    search = Search("gp", {"random-starts": 2}, {"x": X}, seed=4)
    for _ in range(4):
        [trial] = search.ask()
        search.tell(trial, loss(trial))
    batch = search.ask(4)
    xs = [t["x"] for t in batch]
    assert min(abs(a - b) for i, a in enumerate(xs) for b in xs[i + 1 :]) > 1e-6
    # One of them finishes; the next ask keeps away from the three still pending.
    search.tell(batch[0], loss(batch[0]))
    [later] = search.ask()
    assert all(abs(later["x"] - x) > 1e-6 for x in xs[1:])
