"""guildd.speculate: a sequential search's next point asked before its trial ends, the same
point it would have asked after the result."""

import asyncio
import concurrent.futures
import os
import signal
import warnings

import pytest

from guild_common import optdefs
from guild_common.flagfuncs import search_dim
from guildd import optimizers, speculate
from guildd.runtime import Runtime
from guildd.store import float32

LAST = optdefs.parse_objective("loss")

APPLIES = [
    ("gp past its random starts, one trial at a time", ("gp", False, 1, LAST), True),
    ("forest and gbrt too", ("forest", False, 0, LAST), True),
    ("a random start needs no result", ("gp", True, 1, LAST), False),
    ("trials side by side ask with a liar instead", ("gp", False, 2, LAST), False),
    ("tpe asks ahead (guildd.askahead)", ("tpe", False, 1, LAST), False),
    ("an objective other than the last value", ("gp", False, 1, optdefs.parse_objective("min loss")), False),
]


@pytest.mark.parametrize("args, expected", [c[1:] for c in APPLIES], ids=[c[0] for c in APPLIES])
def test_applies(args, expected):
    assert speculate.applies(*args) is expected


DECIDE = [
    ("the value it ended with", (0.25, 0.25), True),
    ("a later value logged after the ask", (0.25, 0.2), False),
    ("no speculation", (None, 0.25), False),
    ("no objective", (0.25, None), False),
    ("not a number", (float("nan"), float("nan")), False),
]


@pytest.mark.parametrize("args, expected", [c[1:] for c in DECIDE], ids=[c[0] for c in DECIDE])
def test_decide(args, expected):
    assert speculate.decide(*args) is expected


def _search(told):
    search = optimizers.new_search("gp", {}, {"x": search_dim("[-2.0:2.0]", "x")}, seed=7)
    for i in range(told):
        point = search.ask()[0]
        search.tell(point, (point["x"] - 0.3) ** 2 + 0.01 * i)
    return search


@pytest.fixture(scope="module")
def runtime():
    runtime = Runtime()  # its compute process asks, as the daemon's does
    yield runtime
    runtime.shutdown()


def _speculated(runtime, search, running, heard, objective):
    async def go():
        spec = speculate.Speculation(search, running, float32, runtime.compute)
        for value in heard:
            spec.heard(value)
            await asyncio.sleep(0)
        await spec.settle()
        taken = spec.result_for(objective)
        if taken is None:
            return None
        point, told = taken
        return await told, point

    return asyncio.run(go())


def _kept() -> int:
    """In the compute process: how many speculations it keeps a search for."""
    return len(speculate._BASES) + len(speculate._READY) + len(speculate._TOLD)


def test_the_speculated_point_is_the_one_the_search_asks_after_the_result(runtime):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        real, copy_of = _search(4), _search(4)
        running, running_too = real.ask()[0], copy_of.ask()[0]
        assert running == running_too
        taken = _speculated(runtime, copy_of, running_too, [0.5, 0.125], 0.125)
        assert taken is not None
        search, point = taken
        real.tell(running, 0.125)
        # The same point, up to rounding: the compute process's arrays may sit at other
        # alignments, and numpy's sums then round in another order (last digits; the
        # optimizers' stopping points can move by ~1e-6 of the range).
        assert point["x"] == pytest.approx(real.ask()[0]["x"], abs=1e-3)
        assert search.told == real.told
        assert search.ask()[0]["x"] == pytest.approx(real.ask()[0]["x"], abs=1e-3)  # and so on after it


def test_a_value_logged_after_the_ask_is_not_taken(runtime):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search = _search(4)
        running = search.ask()[0]
        told = search.told
        assert _speculated(runtime, search, running, [0.5], 0.4) is None
        assert search.told == told  # the search itself was never told anything


@pytest.mark.parametrize("heard, objective", [([0.5], 0.5), ([0.5], 0.4)], ids=["taken", "not taken"])
def test_the_compute_process_forgets_each_speculation(runtime, heard, objective):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search = _search(4)
        _speculated(runtime, search, search.ask()[0], heard, objective)
        assert asyncio.run(_compute(runtime, _kept)) == 0


async def _compute(runtime, fn):
    return await runtime.compute(fn)


def test_a_compute_process_that_died_is_replaced(runtime):
    # Killed (out of memory, by hand): the ask in flight fails (the batch then asks as usual)
    # and the next one gets a new process.
    async def pid():
        return await runtime.compute(os.getpid)

    first = asyncio.run(pid())
    os.kill(first, signal.SIGKILL)
    pids = []
    for _ in range(3):
        try:
            pids.append(asyncio.run(pid()))
            break
        except concurrent.futures.BrokenExecutor:
            continue
    assert pids and pids[0] not in (first, os.getpid())


def test_a_compute_process_that_cannot_be_started_leaves_the_batch_to_ask_itself():
    def broken(fn, *args):
        raise concurrent.futures.BrokenExecutor("cannot start a process")

    async def go():
        spec = speculate.Speculation(_search(4), {"x": 0.0}, float32, broken)
        spec.heard(0.5)
        await spec.settle()
        return spec.result_for(0.5)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert asyncio.run(go()) is None
