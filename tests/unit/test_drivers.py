"""Run drivers (guildd.drivers): the registry from run id to what drives the run, and how each
driver stops its run: a shim through the executor, a pipeline through its current step, a
batch through its trials."""

import asyncio

import pytest

from guild_common.pb import guild_pb2 as pb
from guildd import batches
from guildd.children import Parents
from guildd.drivers import Drivers, PipelineDriver, ShimDriver

PIPE, STEP, SHIM, BATCH = "pipe", "step", "shim", "batch"


class FakeExecutor:
    """Executor.signal over a set of watched runs; records what it signalled."""

    def __init__(self, *watched):
        self.watched = set(watched)
        self.signalled = []

    def signal(self, run_id):
        if run_id not in self.watched:
            return False
        self.signalled.append(run_id)
        return True


class FakeRuntime:
    def __init__(self):
        self.spawned = []

    def spawn(self, coro, name):
        self.spawned.append(name)
        return asyncio.ensure_future(coro)


def run(coro):
    return asyncio.run(coro)


async def world(*watched):
    """A registry with a shim-driven run of each id in `watched` (all signalable)."""
    executor = FakeExecutor(*watched)
    drivers = Drivers()
    for run_id in watched:
        drivers.add(ShimDriver(run_id, executor.signal))
    return drivers, executor


def test_registry_add_get_contains_pop():
    async def go():
        drivers, _ = await world(SHIM)
        driver = drivers.get(SHIM)
        assert SHIM in drivers and driver.run_id == SHIM
        assert not driver.ended.done()
        assert drivers.pop(SHIM) is driver
        assert SHIM not in drivers and drivers.get(SHIM) is None
        assert driver.ended.done()  # popped: the driver is done with its run
        assert drivers.pop(SHIM) is None

    run(go())


def test_remove_takes_out_only_the_driver_registered():
    async def go():
        drivers, executor = await world(SHIM)
        old = drivers.get(SHIM)
        new = ShimDriver(SHIM, executor.signal)
        drivers.add(new)  # a later driver of the same run (restarted)
        drivers.remove(old)
        assert drivers.get(SHIM) is new and old.ended.done()
        drivers.remove(new)
        assert SHIM not in drivers and new.ended.done()

    run(go())


# (watched by the executor, what is stopped) -> (stop's answer, signalled, stopping)
SHIM_STOPS = {
    "running shim": ((SHIM,), SHIM, (True, [SHIM], True)),
    "shim already gone": ((), SHIM, (False, [], False)),
}


@pytest.mark.parametrize("watched, target, expected", SHIM_STOPS.values(), ids=SHIM_STOPS.keys())
def test_shim_driver_stop(watched, target, expected):
    async def go():
        executor = FakeExecutor(*watched)
        drivers = Drivers()
        drivers.add(ShimDriver(target, executor.signal))
        answer = drivers.stop(target)
        return answer, executor.signalled, drivers.get(target).stopping

    assert run(go()) == expected


def test_stop_of_a_run_with_no_driver_is_false():
    async def go():
        drivers, executor = await world()
        return drivers.stop("nobody"), executor.signalled

    assert run(go()) == (False, [])


# (the pipeline's current step, or None) -> (stop's answer, signalled, stopping)
PIPELINE_STOPS = {
    "between steps": (None, (True, [], True)),
    "step running": (STEP, (True, [STEP], True)),
    "step with no driver (queued)": ("queued", (True, [], True)),
}


@pytest.mark.parametrize("step, expected", PIPELINE_STOPS.values(), ids=PIPELINE_STOPS.keys())
def test_pipeline_driver_stops_its_step_and_no_further_ones(step, expected):
    async def go():
        drivers, executor = await world(STEP)
        pipeline = PipelineDriver(PIPE, drivers)
        pipeline.step = step
        drivers.add(pipeline)
        answer = drivers.stop(PIPE)
        return answer, executor.signalled, pipeline.stopping

    assert run(go()) == expected


def test_a_step_stopped_by_its_pipeline_is_stopping():
    # Its end is then read as a stop (a stoppable step completes).
    async def go():
        drivers, _ = await world(STEP)
        pipeline = PipelineDriver(PIPE, drivers)
        pipeline.step = STEP
        drivers.add(pipeline)
        drivers.stop(PIPE)
        return drivers.get(STEP).stopping

    assert run(go()) is True


def test_batch_driver_stops_its_trials():
    async def go():
        drivers, executor = await world("t1", "t2")
        runtime = FakeRuntime()
        stopped = []

        async def stop_runs(specs):
            stopped.extend(specs)
            return [drivers.stop(s) for s in specs]

        parents = Parents(
            runtime=runtime, store=None, states=None, drivers=drivers, run_dir=lambda run_id: f"/runs/{run_id}",
            follow=None, start_run=None, start_made=None, premake=None, discard=None, stop_runs=stop_runs, end=None, scalars=None,
        )
        batch = batches.Batch(parents, BATCH, pb.BatchSpec(kind="random", max_trials=3), pb.RunSpec(), 0, "alice")
        batch.running = {"t1": {"x": 1}, "t2": {"x": 2}}
        drivers.add(batch)
        answer = drivers.stop(BATCH)
        await asyncio.sleep(0.01)  # the spawned stop_trials runs
        return answer, batch.stopping, runtime.spawned, stopped, executor.signalled

    answer, stopping, spawned, stopped, signalled = run(go())
    assert answer and stopping
    assert spawned == [f"stop-batch-{BATCH[:8]}"]
    assert stopped == ["t1", "t2"] and signalled == ["t1", "t2"]
