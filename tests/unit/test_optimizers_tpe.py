"""Optuna's TPE as a batch search (guildd.tpe) on real Optuna, seeded; its names and flags
(guild_common.optdefs); and when the batch loop asks ahead (guildd.askahead)."""

import math

import pytest

from guild_common import optdefs
from guild_common.errors import InvalidArgument
from guild_common.flagfuncs import SearchDim
from guildd import askahead
from guildd.optimizers import new_search
from guildd.tpe import TPESearch

X = SearchDim("uniform", -2.0, 2.0)


def tutorial(values):
    x = values["x"]
    return math.sin(5 * x) * (1 - math.tanh(x**2))


@pytest.mark.parametrize("typed", ["tpe", "optuna:tpe"])
def test_tpe_names(typed):
    assert optdefs.algorithm_for(typed) == "tpe"
    assert optdefs.opspec(typed) == "optuna:tpe"  # the batch run is `train.py+optuna:tpe`


def test_tpe_default_flags_and_description():
    flags = optdefs.default_flags("tpe")
    assert flags == {"constant-liar": True, "multivariate": True, "n-ei-candidates": 24, "n-startup-trials": 10}
    assert optdefs.describe("tpe", flags) == "tpe: constant-liar=yes multivariate=yes n-ei-candidates=24 n-startup-trials=10"
    assert optdefs.random_starts("tpe", flags) == 10
    assert optdefs.random_starts("gp", optdefs.default_flags("gp")) == 3
    assert optdefs.random_starts("random", {}) == 0


@pytest.mark.parametrize(
    "assigns, message",
    [
        ({"gamma": 0.2}, "unknown flag 'gamma' for optimizer tpe (flags: constant-liar, multivariate, n-ei-candidates, n-startup-trials)"),
        ({"random-starts": 3}, "unknown flag 'random-starts' for optimizer tpe (flags: constant-liar, multivariate, n-ei-candidates, n-startup-trials)"),
        ({"n-startup-trials": -1}, "invalid value -1 for optimizer flag n-startup-trials: expected an integer 0 or more"),
        ({"n-startup-trials": 2.5}, "invalid value 2.5 for optimizer flag n-startup-trials: expected an integer 0 or more"),
        ({"n-ei-candidates": 0}, "invalid value 0 for optimizer flag n-ei-candidates: expected an integer 1 or more"),
        ({"multivariate": "sometimes"}, "invalid value sometimes for optimizer flag multivariate: expected true or false"),
        ({"constant-liar": 1}, "invalid value 1 for optimizer flag constant-liar: expected true or false"),
    ],
)
def test_tpe_flag_errors(assigns, message):
    with pytest.raises(InvalidArgument) as e:
        optdefs.optimizer_flags("tpe", assigns)
    assert str(e.value) == message


def test_new_search_picks_the_library():
    assert isinstance(new_search("tpe", {}, {"x": X}, seed=1), TPESearch)
    assert not isinstance(new_search("gp", {}, {"x": X}, seed=1), TPESearch)


def test_values_in_space_and_types():
    values = {
        "lr": SearchDim("loguniform", 1e-4, 1e-1),
        "layers": SearchDim("uniform", 1, 8, integer=True),
        "act": ["relu", 1, None, True],
        "x": X,
        "fixed": "keep",
    }
    s = TPESearch("tpe", {"n-startup-trials": 3}, values, seed=3)
    for i in range(8):
        (v,) = s.ask()
        assert 1e-4 <= v["lr"] <= 1e-1 and isinstance(v["lr"], float)
        assert 1 <= v["layers"] <= 8 and type(v["layers"]) is int
        assert any(v["act"] is c or (v["act"] == c and type(v["act"]) is type(c)) for c in values["act"])
        assert -2.0 <= v["x"] <= 2.0 and v["fixed"] == "keep"
        assert s.tell(v, float(i))
    assert s.told == 8
    assert s.dimensions == ("act", "layers", "lr", "x")


def test_seeded_search_is_reproducible():
    def run(seed):
        s = TPESearch("tpe", {"n-startup-trials": 2}, {"x": X}, seed=seed)
        xs = []
        for _ in range(6):
            (v,) = s.ask()
            xs.append(v["x"])
            s.tell(v, tutorial(v))
        return xs

    assert run(5) == run(5)
    assert run(5) != run(6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tpe_finds_the_tutorial_minimum(seed):
    s = TPESearch("tpe", {}, {"x": X}, seed=seed)
    best = None
    for _ in range(40):
        (v,) = s.ask()
        y = tutorial(v)
        s.tell(v, y)
        best = v if best is None or y < tutorial(best) else best
    assert abs(best["x"] - (-0.3)) < 0.15  # the minimum at x = -0.3


def test_random_start_counts_told_and_pending():
    s = TPESearch("tpe", {"n-startup-trials": 2}, {"x": X}, seed=1)
    assert s.random_start
    a, b = s.ask(2)
    assert not s.random_start  # two start-up points are out
    s.tell(a, 1.0)
    s.tell(b, None)  # failed: no longer pending, not told
    assert s.told == 1 and s.random_start


def test_tell_refuses_what_it_cannot_use():
    s = TPESearch("tpe", {}, {"x": X, "c": ["a", "b"]}, seed=1)
    assert not s.tell({"x": 3.0, "c": "a"}, 1.0)  # outside [-2, 2]
    assert not s.tell({"x": 0.0, "c": "z"}, 1.0)  # not a choice
    assert not s.tell({"c": "a"}, 1.0)  # no x
    assert not s.tell({"x": 0.0, "c": "a"}, None)
    assert not s.tell({"x": 0.0, "c": "a"}, float("nan"))
    assert s.told == 0
    assert s.tell({"x": 0.0, "c": "a"}, 1.0) and s.told == 1


def test_restart_learns_from_earlier_trials():
    # A restarted batch tells the trials it did not ask: they become finished trials, so TPE
    # models them at once (no start-up trials left) and asks near the best of them.
    earlier = [{"x": -2.0 + 0.2 * i} for i in range(21)]
    s = TPESearch("tpe", {"n-startup-trials": 10}, {"x": X}, seed=4)
    for v in earlier:
        assert s.tell(v, (v["x"] - 1.5) ** 2)
    assert s.told == 21 and not s.random_start
    asked = [s.ask()[0]["x"] for _ in range(5)]
    assert sum(abs(x - 1.5) < 0.5 for x in asked) >= 4


def test_maximize():
    s = TPESearch("tpe", {"n-startup-trials": 5}, {"x": X}, seed=2, objective_maximize=True)
    for _ in range(30):
        (v,) = s.ask()
        s.tell(v, -((v["x"] - 1.0) ** 2))
    assert abs(s.ask()[0]["x"] - 1.0) < 0.5


def test_initial_value_asked_first():
    s = TPESearch("tpe", {}, {"x": SearchDim("uniform", -2.0, 2.0, initial=0.5)}, seed=1)
    assert s.ask()[0]["x"] == 0.5
    assert s.ask()[0]["x"] != 0.5


def test_parallel_asks_are_distinct():
    s = TPESearch("tpe", {"n-startup-trials": 3}, {"x": X}, seed=9)
    for v in s.ask(3):
        s.tell(v, tutorial(v))
    xs = [v["x"] for v in s.ask(4)]
    assert len(set(xs)) == 4


def test_no_dimensions():
    with pytest.raises(InvalidArgument, match="do not contain any search dimensions"):
        TPESearch("tpe", {}, {"x": 1}, seed=1)


def state(**kw):
    base = dict(optimizer=True, needs_results=False, parallel=1, running=1, made=3, target=10, asked=False)
    return askahead.LoopState(**{**base, **kw})


@pytest.mark.parametrize(
    "case, loop, expected",
    [
        ("sequential, trial running: ask the next", state(), True),
        ("already asked ahead", state(asked=True), False),
        ("grid or random batch: nothing to ask", state(optimizer=False), False),
        ("a gp model past its random starts waits for the result", state(needs_results=True), False),
        ("... in parallel too", state(needs_results=True, parallel=4, running=4), False),
        ("last trial made", state(made=10), False),
        ("one more to make", state(made=9), True),
        ("slot free: the loop asks at once", state(running=0), False),
        ("parallel, all busy", state(parallel=4, running=4), True),
        ("parallel, one slot free", state(parallel=4, running=3), False),
        ("parallel 0 means 1", state(parallel=0, running=1), True),
        ("stopping", state(stopping=True), False),
        ("a trial failed with --fail-on-trial-error", state(failed=True), False),
    ],
)
def test_ask_ahead(case, loop, expected):
    assert askahead.ask_ahead(loop) is expected, case
