"""RunStates, the one writer of run status (guildd.runstate): each edge's facts in the run dir and
the index, the end of a run as its shim recorded it (or didn't), refused edges, and who is told."""

import asyncio

import pytest

from guild_common import errors, rundir
from guildd import runstate
from guildd.runstate import COMPLETED, ERROR, PENDING, RUNNING, STAGED, TERMINATED, RunStates
from guildd.store import RunRecord, Store
from tests.unit.fakes import InPlaceRuntime

RUN = "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d"


def new_record(run_id=RUN):
    return RunRecord(id=run_id, op_name="train", opref="script:/p '' '' train", status="", label="", created_us=1,
                     started_us=0, stopped_us=0, exit_status=None, pid=0, shim_pid=0, shim_started=0.0,
                     flags_json="{}", tags_json="[]", user="alice", scalar_offset=0)


class World:
    """A temp store and runs dir, and RunStates over them on a loop of its own."""

    def __init__(self, tmp_path):
        self.runs_dir = tmp_path / "runs"
        self.store = Store(tmp_path / "index.db", self.runs_dir)
        self.loop = asyncio.new_event_loop()
        self.states = RunStates(self.store, lambda run_id: self.runs_dir / run_id, InPlaceRuntime(), self.loop)
        self.told = []  # (run id, status) as listeners heard them
        self.states.listen(lambda run_id, status: self.told.append((run_id, status)))

    def run_dir(self, run_id=RUN):
        return self.runs_dir / run_id

    def make(self, *path, run_id=RUN, op=None):
        """A run taken through `path` (its first status creates it); returns its record."""
        (self.run_dir(run_id) / ".guild" / "attrs").mkdir(parents=True, exist_ok=True)
        if op is not None:
            rundir.write_attr(self.run_dir(run_id), "op", op)
        rec = None
        for status in path:
            rec = self.states.apply(run_id, status, new_record(run_id))
        self.settle()
        return rec

    def settle(self):
        """Runs the loop once round: the notices apply() sent from its thread are delivered."""
        self.loop.run_until_complete(asyncio.sleep(0))

    def attr(self, name, run_id=RUN):
        return rundir.read_attr(self.run_dir(run_id), name)

    def close(self):
        self.store.close()
        self.loop.close()


@pytest.fixture
def world(tmp_path):
    w = World(tmp_path)
    yield w
    w.close()


# Each edge: (statuses in order), then what the last leaves. started: "set" (stamped by an edge
# on the way) or None; exit/stopped: what the run dir holds (None: nothing).
EDGE_FACTS = {
    "new staged": ((STAGED,), dict(markers={"STAGED"}, started="set", exit=None, stopped=None)),
    "new pending": ((PENDING,), dict(markers={"PENDING"}, started=None, exit=None, stopped=None)),
    "staged started": ((STAGED, PENDING), dict(markers={"PENDING"}, started="set", exit=None, stopped=None)),
    "pending running": ((PENDING, RUNNING), dict(markers=set(), started="set", exit=None, stopped=None)),
    "pending never started": ((PENDING, ERROR), dict(markers=set(), started=None, exit=1, stopped="set")),
    "pending stopped": ((PENDING, TERMINATED), dict(markers=set(), started=None, exit=-15, stopped="set")),
    "staged stopped": ((STAGED, TERMINATED), dict(markers=set(), started="set", exit=-15, stopped="set")),
}


@pytest.mark.parametrize("path, facts", EDGE_FACTS.values(), ids=EDGE_FACTS.keys())
def test_each_edge_writes_its_facts(world, path, facts):
    rec = world.make(*path)
    assert rec.status == path[-1]
    assert {m for m in ("STAGED", "PENDING") if rundir.has_marker(world.run_dir(), m)} == facts["markers"]
    assert (world.attr("started") is not None) == (facts["started"] == "set")
    assert (rec.started_us != 0) == (facts["started"] == "set")
    assert world.attr("exit_status") == facts["exit"]
    assert rec.exit_status == facts["exit"]
    assert (world.attr("stopped") is not None) == (facts["stopped"] == "set")
    assert store_matches(world, rec)


def store_matches(world, rec):
    return world.store.get(rec.id) == rec


def test_a_run_that_never_started_gets_no_start_time(world):
    # The direct edge pending -> error (a run pending when the daemon stopped): no `started`.
    world.make(PENDING)
    rec = world.loop.run_until_complete(world.states.transition(RUN, ERROR))
    assert rec.status == ERROR and rec.started_us == 0 and rec.exit_status == 1
    assert world.attr("started") is None
    assert rundir.read_status(world.run_dir(), lambda pid: False) == "error"


def test_restart_clears_the_old_end(world):
    world.make(PENDING, RUNNING)
    world.states.end(RUN, stopping=False, exit_status=1)
    rec = world.states.apply(RUN, PENDING)
    assert (rec.status, rec.exit_status, rec.stopped_us) == (PENDING, None, 0)
    assert world.attr("exit_status") is None and world.attr("stopped") is None


def test_staged_to_running_in_one_trip(world):
    world.make(STAGED)
    rec = world.states.apply(RUN, RUNNING, via=PENDING)
    assert rec.status == RUNNING
    assert not rundir.has_marker(world.run_dir(), "STAGED")


REFUSED = {
    "staged cannot run without pending": ((STAGED,), RUNNING, {}),
    "running cannot be staged": ((PENDING, RUNNING), STAGED, {}),
    "ended cannot end again": ((PENDING, ERROR), COMPLETED, {}),
    "new cannot run": ((), RUNNING, {}),
    "via checks both edges": ((PENDING,), RUNNING, {"via": STAGED}),
}


@pytest.mark.parametrize("path, new, kw", REFUSED.values(), ids=REFUSED.keys())
def test_refused_edges_write_nothing(world, path, new, kw):
    before = world.make(*path)
    world.told.clear()
    attrs_before = rundir.read_attrs(world.run_dir())
    with pytest.raises(errors.FailedPrecondition):
        world.states.apply(RUN, new, new_record(), **kw)
    world.settle()
    assert world.store.get(RUN) == before
    assert rundir.read_attrs(world.run_dir()) == attrs_before
    assert world.told == []


def test_preempted_run_requeued_is_pending_with_no_end(world):
    world.make(PENDING, RUNNING)
    rundir.write_attrs(world.run_dir(), {"exit_status": -9, "stopped": 5})
    rec = world.states.apply(RUN, PENDING)
    assert rec.status == PENDING and rec.exit_status is None and not rec.stopped_us
    assert "exit_status" not in rundir.read_attrs(world.run_dir())


def test_listeners_hear_every_transition_in_order(world):
    world.make(PENDING, RUNNING)
    world.states.end(RUN, stopping=False, exit_status=0)
    world.settle()
    assert world.told == [(RUN, PENDING), (RUN, RUNNING), (RUN, COMPLETED)]


def test_a_transition_wakes_the_runs_watchers(world):
    world.make(PENDING)

    async def watch_then_start():
        waiting = asyncio.ensure_future(world.states.wait_change(RUN, timeout=5))
        await asyncio.sleep(0)
        await world.states.transition(RUN, RUNNING)
        await asyncio.wait_for(waiting, 1)  # woken, not timed out

    world.loop.run_until_complete(watch_then_start())


def test_wait_change_times_out_without_a_change(world):
    world.loop.run_until_complete(world.states.wait_change(RUN, timeout=0.01))


# end(): a run's end as its shim recorded it, or as well as it can be told.
# (recorded exit status, stopping, op attr, given exit status) -> (status, exit status, delete)
ENDS = {
    "completed": (0, False, {}, None, (COMPLETED, 0, False)),
    "failed": (2, False, {}, None, (ERROR, 2, False)),
    "signalled": (-15, False, {}, None, (TERMINATED, -15, False)),
    "shim died unrecorded": (None, False, {}, None, (ERROR, 1, False)),
    "shim died while stopping": (None, True, {}, None, (TERMINATED, -15, False)),
    "stoppable op stopped": (-15, True, {"stoppable": True}, None, (COMPLETED, 0, False)),
    "stoppable op not stopped": (-15, False, {"stoppable": True}, None, (TERMINATED, -15, False)),
    "delete on success": (0, False, {"delete-on-success": True}, None, (COMPLETED, 0, True)),
    "delete on success, failed": (1, False, {"delete-on-success": True}, None, (ERROR, 1, False)),
    "no process: given status": (None, False, {}, 0, (COMPLETED, 0, False)),
    "no process: given over recorded": (3, False, {}, -15, (TERMINATED, -15, False)),
}


@pytest.mark.parametrize("recorded, stopping, op, given, expected", ENDS.values(), ids=ENDS.keys())
def test_end(world, recorded, stopping, op, given, expected):
    world.make(PENDING, RUNNING, op=op)
    if recorded is not None:
        rundir.write_attrs(world.run_dir(), {"exit_status": recorded, "stopped": 42})
    rec, delete = world.states.end(RUN, stopping, given)
    assert (rec.status, rec.exit_status, delete) == expected
    assert world.attr("exit_status") == expected[1]
    assert world.attr("stopped") is not None
    assert rec.stopped_us == world.attr("stopped")


# A Ray run's shim ended while its job was pending (never seen running): (recorded exit
# status, stopping) -> (status, started stamped).
PENDING_ENDS = {
    "job ran and succeeded unseen": (0, False, (COMPLETED, True)),
    "job failed while pending": (1, False, (ERROR, False)),
    "job's command failed unseen": (3, False, (ERROR, False)),
    "stopped while pending": (-15, True, (TERMINATED, False)),
    "follower died unrecorded": (None, False, (ERROR, False)),
}


@pytest.mark.parametrize("recorded, stopping, expected", PENDING_ENDS.values(), ids=PENDING_ENDS.keys())
def test_a_ray_run_ending_while_pending_keeps_its_shims_end(world, recorded, stopping, expected):
    world.make(PENDING, op={"executor": "ray:http://h:8265"})
    if recorded is not None:
        rundir.write_attrs(world.run_dir(), {"exit_status": recorded, "stopped": 42})
    world.told.clear()
    rec, _ = world.states.end(RUN, stopping)
    world.settle()
    status, started = expected
    assert (rec.status, bool(rec.started_us), bool(world.attr("started"))) == (status, started, started)
    assert rec.exit_status == world.attr("exit_status") == (1 if recorded is None else recorded)
    if recorded is not None:
        assert rec.stopped_us == world.attr("stopped") == 42  # the shim's, not overwritten
    assert rundir.read_status(world.run_dir(), lambda pid: False) == status
    assert world.told == [(RUN, status)]  # one notice: the end


def test_begin_makes_a_pending_ray_run_running_once(world):
    world.make(PENDING)
    rec = world.states.begin(RUN)
    assert rec.status == RUNNING and rec.started_us and world.attr("started")
    assert not rundir.has_marker(world.run_dir(), "PENDING")
    assert world.states.begin(RUN) is None  # running already: nothing more


def test_begin_after_the_end_changes_nothing(world):
    # The job seen running only after its shim's end was recorded: the end stands.
    world.make(PENDING, TERMINATED)
    assert world.states.begin(RUN) is None
    assert world.store.get(RUN).status == TERMINATED


FAILS = {
    "running": ((PENDING, RUNNING), (ERROR, 1)),
    "pending": ((PENDING,), (ERROR, 1)),
    "staged": ((STAGED,), (ERROR, 1)),
}


@pytest.mark.parametrize("path, expected", FAILS.values(), ids=FAILS.keys())
def test_fail_ends_an_active_run_as_an_error(world, path, expected):
    world.make(*path)
    rec = world.states.fail(RUN)
    assert (rec.status, rec.exit_status) == expected
    assert rundir.read_status(world.run_dir(), lambda pid: False) == "error"


def test_fail_leaves_an_ended_run_as_it_is(world):
    world.make(PENDING, TERMINATED)
    assert world.states.fail(RUN) is None
    assert world.store.get(RUN).status == TERMINATED


def test_a_run_whose_dir_was_removed_by_hand_is_forgotten_not_ended(world):
    # `rm -rf` of a running run's dir: its end recorded would make the dir again, holding
    # only attrs, and list an empty error run.
    import shutil

    world.make(PENDING, RUNNING)
    shutil.rmtree(world.run_dir())
    with pytest.raises(errors.NotFound, match="removed by hand"):
        world.states.end(RUN, False)
    assert world.store.get(RUN) is None and not world.run_dir().exists()


def test_fail_forgets_a_run_whose_dir_was_removed(world):
    import shutil

    world.make(PENDING, RUNNING)
    shutil.rmtree(world.run_dir())
    assert world.states.fail(RUN) is None
    assert world.store.get(RUN) is None and not world.run_dir().exists()


def test_only_runstate_writes_end_facts():
    # exit_status / stopped are written by RunStates and the table (and by the shim, of its own
    # child): a grep of guildd finds no other writer.
    import pathlib
    import re

    root = pathlib.Path(runstate.__file__).parent
    pattern = re.compile(r"write_end\(|write_attrs?\([^)]*[\"'](exit_status|stopped)[\"']")
    writers = {p.name for p in root.glob("*.py") if pattern.search(p.read_text())}
    assert writers <= {"runstate.py", "shim.py"}, writers


def test_reconcile_ends_a_run_pending_at_restart_through_the_direct_edge(world):
    # A run pending when the daemon stopped (no shim, not queued) never started: it ends as an
    # error with no start time, not through running.
    from types import SimpleNamespace

    from guildd import reconcile

    world.make(PENDING)
    world.told.clear()
    launcher = SimpleNamespace(runtime=InPlaceRuntime(), run_dir=world.run_dir, states=world.states)
    world.loop.run_until_complete(reconcile._reconcile_run(launcher, world.store.get(RUN)))
    world.settle()
    rec = world.store.get(RUN)
    assert (rec.status, rec.exit_status, rec.started_us) == (ERROR, 1, 0)
    assert world.attr("started") is None
    assert world.told == [(RUN, ERROR)]
