"""The loops that drive a parent run's children (guildd.pipeline, guildd.batches) on a fake
`children.Parents`: children are made as records in a temp index (with real RunStates, Runtime
and Drivers), and the test ends each one as its process would."""

import asyncio
import json
import os
from typing import Any, Callable, Optional, Sequence

import pytest

from guild_common import errors, home as homelib, rundir
from guild_common.pb import guild_pb2 as pb
from guildd import batches, batchspec, children, pipeline
from guildd.children import Parents
from guildd.premade import Premade
from guildd.drivers import Drivers, ShimDriver
from guildd.runstate import COMPLETED, ERROR, PENDING, RUNNING, STAGED, TERMINATED, RunStates
from guildd.store import RunRecord, Store
from tests.unit.test_launcher import TrackedRuntime, spec

USER = "alice"
WAIT = 10  # seconds a test waits at most for the loop's next child or end before failing
BROKEN = "broken"  # an op whose run cannot start


def new_record(run_id: str, run_spec: pb.RunSpec) -> RunRecord:
    return RunRecord(id=run_id, op_name=run_spec.op_name, opref=run_spec.opref, status="", label="",
                     created_us=rundir.now_us(), started_us=0, stopped_us=0, exit_status=None, pid=0, shim_pid=0,
                     shim_started=0.0, flags_json=run_spec.flags_json or "{}", tags_json="[]", user=USER, scalar_offset=0)


class World:
    """Parents over a temp GUILD_HOME: `start_run` makes a running child (staged, if asked)
    stoppable through its driver; `end_child` plays its process's end."""

    def __init__(self, home: Any) -> None:
        self.home = home
        self.runtime = TrackedRuntime()
        self.store = Store(homelib.index_path(home), homelib.runs_dir(home))
        self.states = RunStates(self.store, self.run_dir, self.runtime, asyncio.get_running_loop())
        self.drivers = Drivers()
        self.children: list[RunRecord] = []  # in the order started
        self.started: asyncio.Queue[RunRecord] = asyncio.Queue()
        self.stopped: list[str] = []  # runs stop_runs was asked to stop
        self._signalled: set[str] = set()
        self.parent_ended: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.parents = Parents(
            runtime=self.runtime, store=self.store, states=self.states, drivers=self.drivers, run_dir=self.run_dir,
            follow=lambda run_id, offset: None, start_run=self.start_run, start_made=self.start_made,
            premake=self.premake, discard=self.discard, stop_runs=self.stop_runs, end=self.end, scalars=self.scalars,
        )
        self.premade: list[str] = []  # dirs made ahead, by name
        self.used: list[Optional[str]] = []  # the premade dir each child was made in (None: none)
        self.discarded: list[str] = []

    def run_dir(self, run_id: str) -> Any:
        return homelib.run_dir(self.home, run_id)

    def _make(self, run_id: str, run_spec: pb.RunSpec, status: str) -> RunRecord:
        rundir.attrs_dir(self.run_dir(run_id)).mkdir(parents=True)
        rundir.output_path(self.run_dir(run_id)).touch()
        return self.states.apply(run_id, status, new_record(run_id, run_spec))

    async def parent(self) -> str:
        """A new pending parent run."""
        run_id = rundir.new_run_id()
        await self.runtime.io(self._make, run_id, pb.RunSpec(op_name="parent", opref="op parent"), PENDING)
        return run_id

    async def premake(self, run_spec: pb.RunSpec, user: str) -> Any:
        made = Premade(f"premade-{len(self.premade) + 1}", "", b"")
        self.premade.append(made.run_id)
        return made

    async def discard(self, made: Any) -> None:
        self.discarded.append(made.run_id)

    async def start_run(self, run_spec: pb.RunSpec, stage: bool, user: str, made: Any = None) -> RunRecord:
        self.used.append(made and made.run_id)
        if run_spec.op_name == BROKEN:
            raise errors.FailedPrecondition("cannot start run: no such command")
        run_id = rundir.new_run_id()
        rec = await self.runtime.io(self._make, run_id, run_spec, STAGED if stage else PENDING)
        if not stage:
            rec = await self.states.transition(run_id, RUNNING)
            self.drivers.add(ShimDriver(run_id, self._signal))
        self.children.append(rec)
        self.started.put_nowait(rec)
        return rec

    async def start_made(self, run_id: str, run_spec: pb.RunSpec, user: str) -> None:
        """A child made pending and never started (a killed daemon's) starts; others are left."""
        rec = await self.runtime.io(self.store.get, run_id)
        if rec is not None and rec.status == PENDING:
            rec = await self.states.transition(run_id, RUNNING)
            self.drivers.add(ShimDriver(run_id, self._signal))
            self.started.put_nowait(rec)

    def _signal(self, run_id: str) -> bool:
        """The child's shim is asked to stop: its process ends killed by the signal (once)."""
        if run_id not in self._signalled:
            self._signalled.add(run_id)
            self.runtime.spawn(self.end_child(run_id, -15), name=f"stopped-{run_id[:8]}")
        return True

    async def end_child(self, run_id: str, exit_status: int) -> None:
        driver = self.drivers.get(run_id)
        await self.runtime.io(self.states.end, run_id, bool(driver and driver.stopping), exit_status)
        self.drivers.pop(run_id)

    async def stop_runs(self, specs: Sequence[str]) -> list[str]:
        self.stopped.extend(specs)
        return [s for s in specs if self.drivers.stop(s)]

    async def end(self, run_id: str, exit_status: int) -> None:
        await self.runtime.io(self.states.end, run_id, False, exit_status)
        self.parent_ended.set_result(exit_status)

    async def scalars(self, run_id: str) -> list:
        return []

    async def next_child(self) -> Optional[RunRecord]:
        """The next child the loop starts, or None when the parent ends first."""
        get = asyncio.ensure_future(self.started.get())
        done, _ = await asyncio.wait({get, self.parent_ended}, timeout=WAIT, return_when=asyncio.FIRST_COMPLETED)
        if get in done:
            return get.result()
        get.cancel()
        assert done, "the loop neither started a child nor ended"
        return None

    async def parent_end(self, run_id: str) -> RunRecord:
        await asyncio.wait_for(asyncio.shield(self.parent_ended), WAIT)
        await self.runtime.settle()
        rec = await self.runtime.io(self.store.get, run_id)
        assert rec is not None
        return rec

    def output(self, run_id: str) -> str:
        return rundir.output_path(self.run_dir(run_id)).read_text()

    async def close(self) -> None:
        await self.runtime.close_tasks()
        self.runtime.io_submit(self.store.close).result()
        self.runtime.shutdown()


@pytest.fixture
def world(tmp_path):
    """Runs `scenario(world)` on a fresh loop, with the world built on it."""
    homelib.runs_dir(tmp_path).mkdir(parents=True)

    def run(scenario: Any) -> Any:
        async def main() -> Any:
            w = World(tmp_path)
            try:
                return await scenario(w)
            finally:
                await w.close()

        return asyncio.run(main())

    return run


def steps(*names: str) -> list[pb.StepSpec]:
    """Pipeline steps, each running op `<name>-op` (or BROKEN, which cannot start)."""
    return [pb.StepSpec(name=name, spec=spec(op_name=BROKEN if name == BROKEN else f"{name}-op")) for name in names]


# (steps, exit status of each step started, in order) ->
#   (steps started, the pipeline's status and exit status, a line in its output)
PIPELINES = [
    pytest.param(("a", "b", "c"), [0, 0, 0], (["a", "b", "c"], COMPLETED, 0, "INFO: [guild] running c: c-op"),
                 id="steps run in order: completed"),
    pytest.param(("a", "b", "c"), [0, 2], (["a", "b"], ERROR, 1, "ERROR: [guild] step b ({b}) ended with status error"),
                 id="a failed step stops it: error naming the step"),
    pytest.param(("a", "b"), [-15], (["a"], TERMINATED, -15, "ERROR: [guild] step a ({a}) ended with status terminated"),
                 id="a step stopped from outside: terminated"),
    pytest.param(("a", BROKEN, "c"), [0], (["a"], ERROR, 1, f"ERROR: [guild] step {BROKEN} could not start: cannot start run"),
                 id="a step that cannot start: error naming it"),
]


@pytest.mark.parametrize("names, exits, expected", PIPELINES)
def test_a_pipeline_runs_its_steps(world, names, exits, expected):
    started, status, exit_status, line = expected

    async def go(w):
        parent = await w.parent()
        rec = await pipeline.start(w.parents, parent, steps(*names), USER)
        assert rec.status == RUNNING and parent in w.drivers
        for child_exit in exits:
            child = await w.next_child()
            await w.end_child(child.id, child_exit)
        rec = await w.parent_end(parent)
        assert [c.op_name for c in w.children] == [f"{n}-op" for n in started]
        assert (rec.status, rec.exit_status) == (status, exit_status)
        assert parent not in w.drivers
        short = {name: c.id[:8] for name, c in zip(started, w.children)}
        assert line.format(**short) in w.output(parent)
        for name, child in zip(started, w.children):
            assert os.readlink(os.path.join(w.run_dir(parent), name)) == os.path.join("..", child.id)

    world(go)


async def until(condition: Callable[[], bool], timeout: float = WAIT) -> None:
    """Lets the loops run until `condition` holds (failing after `timeout` seconds)."""
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.001)

    await asyncio.wait_for(poll(), timeout)


def test_stopping_a_pipeline_stops_its_step_and_starts_no_more(world):
    async def go(w):
        parent = await w.parent()
        await pipeline.start(w.parents, parent, steps("a", "b"), USER)
        step = await w.next_child()
        driver = w.drivers.get(parent)
        await until(lambda: driver.step == step.id)  # the loop waits for its step
        assert w.drivers.stop(parent)
        rec = await w.parent_end(parent)
        assert (rec.status, rec.exit_status) == (TERMINATED, -15)
        assert [c.id for c in w.children] == [step.id]
        assert (await w.runtime.io(w.store.get, step.id)).status == TERMINATED

    world(go)


GRID = [{"x": 1}, {"x": 2}, {"x": 3}]


def grid(parallel: int = 0, fail_on_trial_error: bool = False) -> pb.BatchSpec:
    return pb.BatchSpec(kind="grid", trials_json=json.dumps(GRID), parallel=parallel, fail_on_trial_error=fail_on_trial_error)


async def start_batch(w: World, batch_spec: pb.BatchSpec) -> str:
    """A pending batch run started as the launcher starts one (Launcher.run_batch)."""
    parent = await w.parent()
    await w.states.transition(parent, RUNNING)
    batch = batches.Batch(w.parents, parent, batch_spec, spec(), 0, USER)
    w.drivers.add(batch)
    w.runtime.spawn(batch.run(), name=f"batch-{parent[:8]}")
    return parent


# (batch spec, exit status of each trial started; trials running at once before the test
# ends them) -> (trials started, the batch's status and exit status, a line in its output)
BATCHES = [
    pytest.param(grid(), [0, 0, 0], 1, (3, COMPLETED, 0, "INFO: [guild] trial {2} completed"),
                 id="one at a time: every trial, completed"),
    pytest.param(grid(parallel=3), [0, 0, 0], 3, (3, COMPLETED, 0, "INFO: [guild] trial {0} completed"),
                 id="parallel: every trial at once, completed"),
    pytest.param(grid(), [0, 1, 0], 1, (3, COMPLETED, 0, "ERROR: [guild] trial {1} exited with an error"),
                 id="a failed trial: the rest run, completed"),
    pytest.param(grid(fail_on_trial_error=True), [1], 1, (1, ERROR, 1, "stopping batch because a trial failed"),
                 id="fail on trial error: no further trials, error"),
]


@pytest.mark.parametrize("batch_spec, exits, at_once, expected", BATCHES)
def test_a_grid_batch_runs_its_trials(world, batch_spec, exits, at_once, expected):
    started, status, exit_status, line = expected

    async def go(w):
        parent = await start_batch(w, batch_spec)
        pending = list(exits)
        while pending:
            running = [await w.next_child() for _ in range(min(at_once, len(pending)))]
            for child in running:
                await w.end_child(child.id, pending.pop(0))
        rec = await w.parent_end(parent)
        assert [json.loads(c.flags_json) for c in w.children] == GRID[:started]
        assert (rec.status, rec.exit_status) == (status, exit_status)
        assert parent not in w.drivers
        assert line.format(*[c.id for c in w.children]) in w.output(parent)
        assert batchspec.trial_ids(w.run_dir(parent)) == [c.id for c in w.children]

    world(go)


# (batch spec, exit status of each trial started, trials at once) ->
#   (the dir made ahead each trial was made in (None: made as usual), those discarded)
PREMADE = [
    pytest.param(grid(), [0, 0, 0], 1, ([None, "premade-1", "premade-2"], []),
                 id="one at a time: each next trial's dir made as the last one ends"),
    pytest.param(grid(parallel=3), [0, 0, 0], 3, ([None, None, None], []),
                 id="all at once: none left to make ahead"),
    pytest.param(grid(fail_on_trial_error=True), [1], 1, ([None], ["premade-1"]),
                 id="a failed trial stops the batch: the dir made ahead is discarded"),
]


@pytest.mark.parametrize("batch_spec, exits, at_once, expected", PREMADE)
def test_a_batch_makes_its_next_trials_dir_ahead(world, batch_spec, exits, at_once, expected):
    used, discarded = expected

    async def go(w):
        parent = await start_batch(w, batch_spec)
        pending = list(exits)
        while pending:
            running = [await w.next_child() for _ in range(min(at_once, len(pending)))]
            for child in running:
                await w.end_child(child.id, pending.pop(0))
        await w.parent_end(parent)
        assert (w.used, w.discarded) == (used, discarded)

    world(go)


def test_stopping_a_batch_stops_its_trials_and_starts_no_more(world):
    async def go(w):
        parent = await start_batch(w, grid(parallel=2))
        running = [await w.next_child(), await w.next_child()]
        assert w.drivers.stop(parent)
        rec = await w.parent_end(parent)
        assert (rec.status, rec.exit_status) == (TERMINATED, -15)
        assert set(w.stopped) == {c.id for c in running}
        assert len(w.children) == 2
        for child in running:
            assert (await w.runtime.io(w.store.get, child.id)).status == TERMINATED
            assert f"INFO: [guild] trial {child.id} was stopped" in w.output(parent)

    world(go)


def test_a_pipeline_stopped_while_its_step_starts_stops_that_step(world):
    async def go(w):
        parent = await w.parent()
        await pipeline.start(w.parents, parent, steps("a", "b"), USER)
        step = await w.next_child()  # made, not yet linked nor known to the pipeline's driver
        driver = w.drivers.get(parent)
        assert w.drivers.stop(parent)
        await until(lambda: driver.step == step.id)
        await until(lambda: w.store.get(step.id).status == TERMINATED)

    world(go)


async def stop_batch_while_its_first_trial_starts(w: World) -> str:
    """A parallel grid batch stopped once its first trial is made, before the batch links
    and watches it; returns the batch's id once it has ended."""
    parent = await start_batch(w, grid(parallel=3))
    await w.next_child()
    assert w.drivers.stop(parent)
    await w.parent_end(parent)
    return parent


def test_a_batch_stopped_while_a_trial_starts_ends_every_trial_it_made(world):
    async def go(w):
        parent = await stop_batch_while_its_first_trial_starts(w)
        rec = await w.runtime.io(w.store.get, parent)
        assert (rec.status, rec.exit_status) == (TERMINATED, -15)
        for child in w.children:
            assert (await w.runtime.io(w.store.get, child.id)).status == TERMINATED

    world(go)


def test_a_batch_stopped_while_a_trial_starts_makes_no_more(world):
    async def go(w):
        await stop_batch_while_its_first_trial_starts(w)
        return len(w.children)

    assert world(go) == 1


def test_a_parent_records_how_much_of_each_childs_output_it_holds(tmp_path):
    # A daemon that resumes a pipeline after a restart copies from there: what a step printed
    # while no daemon ran is not lost.
    parent, first, second = (tmp_path / n for n in ("parent", "c1", "c2"))
    for d in (parent, first, second):
        (d / ".guild").mkdir(parents=True)
    (first / ".guild" / "output").write_bytes(b"a\nb\n")
    (second / ".guild" / "output").write_bytes(b"x\n")
    assert children.copied(parent, "c1") is None
    assert children._copy_new_output(first, parent, 0) == 4
    assert children._copy_new_output(second, parent, 0) == 2
    with open(first / ".guild" / "output", "ab") as f:
        f.write(b"c\n")  # printed while no daemon copied it
    assert (children.copied(parent, "c1"), children.copied(parent, "c2")) == (4, 2)
    assert children._copy_new_output(first, parent, children.copied(parent, "c1")) == 6
    assert (parent / ".guild" / "output").read_bytes() == b"a\nb\nx\nc\n"


def made(run_id: str, op: str = "train", flags: Optional[dict] = None, user: str = USER, created: int = 100) -> RunRecord:
    return RunRecord(id=run_id, op_name=op, opref="", status=RUNNING, label="", created_us=created, started_us=0,
                     stopped_us=0, exit_status=None, pid=0, shim_pid=0, shim_started=0.0,
                     flags_json=json.dumps({"x": 1} if flags is None else flags), tags_json="[]", user=user, scalar_offset=0)


STARTING = children.Starting("trial-2", "train", {"x": 1}, USER, 100)

# (runs in the index, ids the parent links already) -> the child the parent made as STARTING
MADE_CHILD = [
    pytest.param([made("a")], set(), "a", id="the one run made since with its op, flags and user"),
    pytest.param([made("a", created=101), made("b", created=100)], set(), "b", id="the first made since"),
    pytest.param([made("a")], {"a"}, None, id="linked already: another child"),
    pytest.param([made("a", created=99)], set(), None, id="made before: not it"),
    pytest.param([made("a", op="other")], set(), None, id="another op"),
    pytest.param([made("a", flags={"x": 2})], set(), None, id="other flags"),
    pytest.param([made("a", user="bob")], set(), None, id="another user's run"),
    pytest.param([], set(), None, id="killed before it was made: none"),
]


@pytest.mark.parametrize("records, taken, expected", MADE_CHILD)
def test_the_child_a_killed_daemon_made_is_found(records, taken, expected):
    assert children.made_child(records, STARTING, taken) == expected


# A dir made ahead (guildd.premade): STARTING names it, its flags unknown then.
PREMADE_STARTING = children.Starting("trial-2", "train", {}, USER, 100, run_id="p")
MADE_IN_PREMADE = [
    pytest.param([made("a"), made("p", flags={"x": 5}, created=50)], set(), "p", id="the run made in the dir it names"),
    pytest.param([made("a")], set(), None, id="that dir never became a run: none, not another like it"),
    pytest.param([made("p")], {"p"}, None, id="linked already"),
]


@pytest.mark.parametrize("records, taken, expected", MADE_IN_PREMADE)
def test_the_child_made_in_a_premade_dir_is_found_by_its_id(records, taken, expected):
    assert children.made_child(records, PREMADE_STARTING, taken) == expected


def test_a_batch_names_the_dir_it_made_ahead_before_it_makes_a_trial_there(world):
    async def go(w):
        parent = await start_batch(w, grid())
        await w.end_child((await w.next_child()).id, 0)
        await w.next_child()  # trial 2, made in premade-1
        starting = children.read_starting(w.run_dir(parent))
        assert (starting.name, starting.run_id) == ("trial-2", "premade-1")
        await w.end_child(w.children[-1].id, 0)
        await w.end_child((await w.next_child()).id, 0)
        await w.parent_end(parent)

    world(go)


async def made_but_not_linked(w: World, parent: str, name: str, run_spec: pb.RunSpec) -> RunRecord:
    """A child made as start_child makes it, by a daemon killed before it linked it."""
    starting = children.Starting(name, run_spec.op_name, json.loads(run_spec.flags_json or "{}"), USER, rundir.now_us())
    await w.runtime.io(children._write_starting, w.run_dir(parent), starting)
    await w.start_run(run_spec, False, USER)
    return await w.started.get()


async def made_not_started(w: World, parent: str, name: str, run_spec: pb.RunSpec) -> RunRecord:
    """A child made as start_child makes it, by a daemon killed before it started it."""
    starting = children.Starting(name, run_spec.op_name, json.loads(run_spec.flags_json or "{}"), USER, rundir.now_us())
    await w.runtime.io(children._write_starting, w.run_dir(parent), starting)
    rec = await w.runtime.io(w._make, rundir.new_run_id(), run_spec, PENDING)
    w.children.append(rec)
    return rec


def test_a_resumed_pipeline_starts_the_step_a_killed_daemon_made_but_did_not_start(world):
    async def go(w):
        parent = await w.parent()
        rec = await w.states.transition(parent, RUNNING)
        pipe_steps = steps("a", "b")
        first = await made_not_started(w, parent, "a", pipe_steps[0].spec)
        pipeline.resume(w.parents, rec, pipe_steps)
        assert (await w.next_child()).id == first.id  # linked, then started: not made again
        assert children.linked(w.run_dir(parent), "a") == first.id
        await w.end_child(first.id, 0)
        second = await w.next_child()
        await w.end_child(second.id, 0)
        assert (await w.parent_end(parent)).status == COMPLETED
        assert [c.op_name for c in w.children] == ["a-op", "b-op"]

    world(go)


def test_a_resumed_batch_starts_the_trial_a_killed_daemon_made_but_did_not_start(world):
    async def go(w):
        parent = await w.parent()
        await w.states.transition(parent, RUNNING)
        trial = spec()
        trial.flags_json = json.dumps(GRID[0])
        first = await made_not_started(w, parent, "trial-1", trial)
        batch = batches.Batch(w.parents, parent, grid(), spec(), 0, USER)
        w.drivers.add(batch)
        w.runtime.spawn(batch.run(), name=f"batch-{parent[:8]}")
        assert (await w.next_child()).id == first.id
        await w.end_child(first.id, 0)
        for _ in GRID[1:]:
            await w.end_child((await w.next_child()).id, 0)
        assert (await w.parent_end(parent)).status == COMPLETED
        assert [json.loads(c.flags_json) for c in w.children] == GRID  # trial 1 made once, and it ran
        assert batchspec.trial_ids(w.run_dir(parent)) == [c.id for c in w.children]

    world(go)


def test_a_resumed_pipeline_links_the_step_a_killed_daemon_made_and_runs_it_once(world):
    async def go(w):
        parent = await w.parent()
        rec = await w.states.transition(parent, RUNNING)
        pipe_steps = steps("a", "b")
        first = await made_but_not_linked(w, parent, "a", pipe_steps[0].spec)
        pipeline.resume(w.parents, rec, pipe_steps)
        await until(lambda: children.linked(w.run_dir(parent), "a") == first.id)
        await w.end_child(first.id, 0)
        second = await w.next_child()
        await w.end_child(second.id, 0)
        assert (await w.parent_end(parent)).status == COMPLETED
        assert [c.op_name for c in w.children] == ["a-op", "b-op"]  # step a made once

    world(go)


def test_a_resumed_batch_links_the_trial_a_killed_daemon_made_and_makes_the_rest(world):
    async def go(w):
        parent = await start_batch_resumed(w)
        first = w.children[0]
        await until(lambda: batchspec.trial_ids(w.run_dir(parent)) == [first.id])
        await w.end_child(first.id, 0)
        for _ in GRID[1:]:
            await w.end_child((await w.next_child()).id, 0)
        assert (await w.parent_end(parent)).status == COMPLETED
        assert [json.loads(c.flags_json) for c in w.children] == GRID  # trial 1 made once
        assert batchspec.trial_ids(w.run_dir(parent)) == [c.id for c in w.children]

    world(go)


async def start_batch_resumed(w: World) -> str:
    """A grid batch whose first trial a killed daemon made but did not link, resumed."""
    parent = await w.parent()
    await w.states.transition(parent, RUNNING)
    trial = spec()
    trial.flags_json = json.dumps(GRID[0])
    await made_but_not_linked(w, parent, "trial-1", trial)
    batch = batches.Batch(w.parents, parent, grid(), spec(), 0, USER)
    w.drivers.add(batch)
    w.runtime.spawn(batch.run(), name=f"batch-{parent[:8]}")
    return parent


def test_a_resumed_pipeline_copies_what_its_step_printed_before_any_copy(world):
    # The daemon was killed after the step started, before the pipeline's first copy of its
    # output (no COPIED_FILE entry): all of it is copied, none skipped.
    async def go(w):
        parent = await w.parent()
        rec = await w.states.transition(parent, RUNNING)
        pipe_steps = steps("a")
        step = await made_but_not_linked(w, parent, "a", pipe_steps[0].spec)
        await w.runtime.io(children.link, w.run_dir(parent), "a", step.id)
        rundir.output_path(w.run_dir(step.id)).write_text("line 0\nline 1\n")
        pipeline.resume(w.parents, rec, pipe_steps)
        await until(lambda: w.drivers.get(parent) is not None and w.drivers.get(parent).step == step.id)
        await w.end_child(step.id, 0)
        assert (await w.parent_end(parent)).status == COMPLETED
        assert w.output(parent).endswith("line 0\nline 1\n")

    world(go)
