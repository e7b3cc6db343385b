"""The run state machine: the edge table and what each transition writes in the run dir."""

import ast
import itertools
import pathlib

import pytest

from guild_common import errors, rundir
from guildd import runstate

ROOT = pathlib.Path(__file__).resolve().parents[2]

STATES = [None, runstate.STAGED, runstate.PENDING, runstate.RUNNING, runstate.COMPLETED, runstate.ERROR, runstate.TERMINATED]
ALL_PAIRS = list(itertools.product(STATES, STATES))
NOW = 1_700_000_000_000_000


def test_states():
    assert runstate.ENDED == {"completed", "error", "terminated"}
    assert runstate.ACTIVE == {"pending", "running"}


@pytest.mark.parametrize("old, new", sorted(runstate.EDGES, key=str))
def test_every_edge_passes(old, new):
    runstate.check_edge(old, new)
    assert runstate.EDGES[(old, new)]  # each edge says why it exists


@pytest.mark.parametrize("old, new", [p for p in ALL_PAIRS if p not in runstate.EDGES])
def test_every_other_pair_fails(old, new):
    with pytest.raises(errors.FailedPrecondition):
        runstate.check_edge(old, new)


@pytest.mark.parametrize(
    "old, new",
    [
        (runstate.RUNNING, runstate.STAGED),
        (runstate.STAGED, runstate.RUNNING),  # must go through pending
        (runstate.COMPLETED, runstate.RUNNING),
        (runstate.COMPLETED, runstate.COMPLETED),
        (None, runstate.RUNNING),
        (runstate.STAGED, runstate.STAGED),
    ],
)
def test_notable_refused_edges(old, new):
    assert (old, new) not in runstate.EDGES
    with pytest.raises(errors.FailedPrecondition) as e:
        runstate.check_edge(old, new)
    assert f"cannot become {new}" in str(e.value)


def test_restart_edges():
    for ended in runstate.ENDED:
        runstate.check_edge(ended, runstate.PENDING)


def test_preempted_run_goes_back_to_pending():
    runstate.check_edge(runstate.RUNNING, runstate.PENDING)
    assert "preempted" in runstate.EDGES[(runstate.RUNNING, runstate.PENDING)]


# apply_to_rundir


@pytest.fixture
def run_dir(tmp_path):
    (tmp_path / ".guild" / "attrs").mkdir(parents=True)
    return tmp_path


def _markers(run_dir):
    return {m for m in ("STAGED", "PENDING") if rundir.has_marker(run_dir, m)}


def test_new_to_staged(run_dir):
    runstate.apply_to_rundir(run_dir, None, runstate.STAGED, NOW)
    assert _markers(run_dir) == {"STAGED"}
    assert rundir.read_status(run_dir, lambda pid: False) == "staged"


def test_new_to_pending(run_dir):
    runstate.apply_to_rundir(run_dir, None, runstate.PENDING, NOW)
    assert _markers(run_dir) == {"PENDING"}


def test_staged_to_pending(run_dir):
    runstate.apply_to_rundir(run_dir, None, runstate.STAGED, NOW)
    runstate.apply_to_rundir(run_dir, runstate.STAGED, runstate.PENDING, NOW)
    assert _markers(run_dir) == {"PENDING"}
    assert rundir.read_status(run_dir, lambda pid: False) == "pending"


def test_pending_to_running(run_dir):
    runstate.apply_to_rundir(run_dir, None, runstate.PENDING, NOW)
    runstate.apply_to_rundir(run_dir, runstate.PENDING, runstate.RUNNING, NOW + 5)
    assert _markers(run_dir) == set()
    assert rundir.read_attr(run_dir, "started") == NOW + 5


def test_staged_to_running_through_pending_in_one_step(run_dir):
    # The queue starting a staged run (RunStates.apply with via=pending) leaves what the two
    # steps would: no marker, the new start time.
    runstate.apply_to_rundir(run_dir, None, runstate.STAGED, NOW)
    runstate.apply_to_rundir(run_dir, runstate.STAGED, runstate.RUNNING, NOW + 5)
    assert _markers(run_dir) == set()
    assert rundir.read_attr(run_dir, "started") == NOW + 5


def test_pending_to_error_without_an_exit_status(run_dir):
    # A dependency not met: as in Guild 0.9 no exit_status, and the run still reads as error.
    runstate.apply_to_rundir(run_dir, None, runstate.PENDING, NOW)
    runstate.apply_to_rundir(run_dir, runstate.PENDING, runstate.ERROR, NOW + 1, exit_status=False)
    assert _markers(run_dir) == set()
    assert rundir.read_attr(run_dir, "exit_status") is None
    assert rundir.read_status(run_dir, lambda pid: False) == "error"


def test_restart_clears_old_end(run_dir):
    rundir.write_attrs(run_dir, {"exit_status": 1, "stopped": NOW, "started": NOW - 10, "flags": {"x": 1}})
    runstate.apply_to_rundir(run_dir, runstate.ERROR, runstate.PENDING, NOW + 1)
    assert _markers(run_dir) == {"PENDING"}
    attrs = rundir.read_attrs(run_dir)
    assert "exit_status" not in attrs
    assert "stopped" not in attrs
    assert attrs["flags"] == {"x": 1}


def test_requeue_clears_the_end_the_shim_recorded(run_dir):
    """A preempted run's shim records its process's end; requeued, the run is pending again,
    its files and start time kept."""
    rundir.write_attrs(run_dir, {"exit_status": -15, "stopped": NOW, "started": NOW - 10})
    runstate.apply_to_rundir(run_dir, runstate.RUNNING, runstate.PENDING, NOW + 1)
    assert _markers(run_dir) == {"PENDING"}
    attrs = rundir.read_attrs(run_dir)
    assert "exit_status" not in attrs and "stopped" not in attrs
    assert attrs["started"] == NOW - 10


@pytest.mark.parametrize("old", [runstate.STAGED, runstate.PENDING])
def test_stop_before_start_is_terminated(run_dir, old):
    runstate.apply_to_rundir(run_dir, None, old, NOW)
    runstate.apply_to_rundir(run_dir, old, runstate.TERMINATED, NOW + 7)
    assert _markers(run_dir) == set()
    assert rundir.read_attr(run_dir, "exit_status") == -15
    assert rundir.read_attr(run_dir, "stopped") == NOW + 7
    assert rundir.read_status(run_dir, lambda pid: False) == "terminated"


def test_pending_to_error_records_exit_status(run_dir):
    runstate.apply_to_rundir(run_dir, None, runstate.PENDING, NOW)
    runstate.apply_to_rundir(run_dir, runstate.PENDING, runstate.ERROR, NOW + 1)
    assert rundir.read_attr(run_dir, "exit_status") == 1
    assert rundir.read_status(run_dir, lambda pid: False) == "error"


def test_running_to_ended_leaves_shim_record(run_dir):
    # The shim records exit_status and stopped; the transition doesn't overwrite them.
    runstate.apply_to_rundir(run_dir, runstate.PENDING, runstate.RUNNING, NOW)
    rundir.write_attrs(run_dir, {"exit_status": 0, "stopped": NOW + 100})
    runstate.apply_to_rundir(run_dir, runstate.RUNNING, runstate.COMPLETED, NOW + 200)
    assert rundir.read_attr(run_dir, "exit_status") == 0
    assert rundir.read_attr(run_dir, "stopped") == NOW + 100


# written once


def _calls_to(tree, attr):
    """(enclosing function names, lineno) of each `x.<attr>(...)` or `<attr>(...)` call."""
    found = []

    def visit(node, stack):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            stack = stack + [node.name]
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name == attr:
                found.append((tuple(stack), node.lineno))
        for child in ast.iter_child_nodes(node):
            visit(child, stack)

    visit(tree, [])
    return found


def test_apply_to_rundir_called_only_from_runstates_apply():
    # RunStates.apply makes every transition's writes (RunStates.transition, and the start and
    # end paths that do theirs in one trip to the I/O thread).
    callers = []
    for package in ("common", "guildd", "guildctl"):
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            for stack, lineno in _calls_to(tree, "apply_to_rundir"):
                callers.append((path.relative_to(ROOT).as_posix(), stack, lineno))
    assert [(path, stack[:1]) for path, stack, _ in callers] == [("guildd/runstate.py", ("apply",))], callers


def test_status_markers_written_only_by_runstate():
    # Run-time status facts (STAGED/PENDING markers) are written by the state machine alone.
    writers = set()
    for package in ("common", "guildd", "guildctl"):
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            if _calls_to(tree, "set_marker"):
                writers.add(path.relative_to(ROOT).as_posix())
    assert writers - {"common/rundir.py"} == {"guildd/runstate.py"}
