"""Expected start times of waiting runs (guildd.eta), as tables of snapshots with a fixed clock."""

import pytest

from guildd import eta
from guildd.eta import Expected, estimate, remaining
from guildd.etahistory import History
from guildd.scheduler import Box, Entry, GpuState, Holding, Request
from guildd.store import RunRecord, Store

GIB = 2**30
MIN = 60_000_000  # µs
NOW = 1_000 * MIN  # the fixed clock


def gpu(index, total=80, free=None):
    return GpuState(index, total * GIB, (total if free is None else free) * GIB)


def hold(run_id, *devices, ran=0, memory=0, queue="", staged=False, user="bob"):
    """A run holding `devices` that started `ran` minutes ago."""
    return Holding(run_id, user, tuple(devices), memory * GIB, queue, NOW - ran * MIN, staged)


def entry(run_id, seq, gpus=0, memory=0, user="alice", **kw):
    return Entry(run_id, user, Request(gpus, (), memory * GIB), seq, **kw)


def took(*minutes, stop_after=0):
    """Expected: earlier runs of the op took these many minutes."""
    return Expected(tuple(int(m * MIN) for m in minutes), int(stop_after * MIN))


def minutes(etas):
    """{run id: minutes from now to its expected start, or None}."""
    return {r: None if t is None else (t - NOW) / MIN for r, t in etas.items()}


@pytest.mark.parametrize(
    "expected, ran, left",
    [
        pytest.param(Expected(), 0, None, id="no history: unknown"),
        pytest.param(took(10), 0, 10, id="one earlier run"),
        pytest.param(took(10, 30, 20), 0, 20, id="median of earlier runs"),
        pytest.param(took(10, 20), 0, 15, id="median of an even count"),
        pytest.param(took(10, 20, 30), 5, 15, id="running: what is left of the median"),
        pytest.param(took(10, 20, 40, 60), 30, 20, id="past the median: the median of the longer runs"),
        pytest.param(took(10, 20), 30, 0, id="past every earlier run: any moment"),
        pytest.param(took(60, stop_after=20), 5, 15, id="stop-after caps it"),
        pytest.param(took(10, stop_after=20), 5, 5, id="stop-after beyond the history"),
        pytest.param(took(stop_after=20), 0, 20, id="stop-after without history: it ends by then"),
        pytest.param(took(stop_after=20), 25, 0, id="past its stop-after"),
    ],
)
def test_remaining(expected, ran, left):
    got = remaining(expected, ran * MIN)
    assert (None if got is None else got / MIN) == left


CASES = [
    pytest.param(
        [entry("a", 1, gpus=1)], Box(gpus=(gpu(0),), running=(hold("h", 0, ran=5),)),
        {"a": took(10)},
        {"a": None}, id="no history for the run holding the GPU: unknown"),
    pytest.param(
        [entry("a", 1, gpus=1)], Box(gpus=(gpu(0),), running=(hold("h", 0, ran=5),)),
        {"h": took(15)},
        {"a": 10}, id="one GPU busy for 10 more minutes: 10 min (its own duration unknown)"),
    pytest.param(
        [entry("a", 1, gpus=1)], Box(gpus=(gpu(0), gpu(1)), running=(hold("h", 0, ran=5),)),
        {},
        {"a": 0}, id="a free GPU: starts now, history or not"),
    pytest.param(
        [entry("a", 1, gpus=1), entry("b", 2, gpus=1), entry("c", 3, gpus=1)],
        Box(gpus=(gpu(0),), running=(hold("h", 0, ran=5),)),
        {"h": took(15), "a": took(20), "b": took(20), "c": took(20)},
        {"a": 10, "b": 30, "c": 50}, id="two runs ahead"),
    pytest.param(
        [entry("a", 1, gpus=1), entry("b", 2, gpus=1), entry("c", 3, gpus=1)],
        Box(gpus=(gpu(0),), running=(hold("h", 0, ran=5),)),
        {"h": took(15), "b": took(20), "c": took(20)},
        {"a": 10, "b": None, "c": None}, id="a run ahead without history: those behind it unknown"),
    pytest.param(
        [entry("a", 1, gpus=1), entry("b", 2, gpus=1)],
        Box(gpus=(gpu(0), gpu(1)), running=(hold("h0", 0, ran=5), hold("h1", 1, ran=1))),
        {"h0": took(15), "h1": took(21), "a": took(60), "b": took(60)},
        {"a": 10, "b": 20}, id="each waits for the next GPU to free"),
    pytest.param(
        [entry("a", 1, gpus=1)], Box(gpus=(gpu(0),), running=(hold("h", 0, ran=30),)),
        {"h": took(10, 20)},
        {"a": 0}, id="a run past its expected end: starts now"),
    pytest.param(
        [entry("a", 1, gpus=1)], Box(gpus=(gpu(0),), running=(hold("h", 0, ran=30),)),
        {"h": took(10, 20, 40, 60)},
        {"a": 20}, id="a run past the median: the longer runs say when"),
    pytest.param(
        [entry("a", 1, gpus=1), entry("b", 2, gpus=1)], Box(gpus=(gpu(0),), running=(hold("h", 0, ran=5),)),
        {"h": took(60, stop_after=20), "a": took(stop_after=7)},
        {"a": 15, "b": 22}, id="stop-after caps it"),
    pytest.param(
        [entry("a", 1, gpus=1, memory=30), entry("b", 2, gpus=1, memory=30)],
        Box(gpus=(gpu(0, free=40),), running=(hold("h", 0, ran=5, memory=40),)),
        {"h": took(15), "a": took(60)},
        {"a": 0, "b": 10}, id="memory requests sharing a GPU"),
    pytest.param(
        [entry("a", 1, gpus=1, memory=30)],
        Box(gpus=(gpu(0, free=20),), running=(hold("h", 0, ran=5),)),
        {"h": took(15)},
        {"a": 10}, id="memory freed when the exclusive run on the GPU ends"),
    pytest.param(
        [entry("a", 1, gpus=1), entry("b", 2, gpus=1, front=True)],
        Box(gpus=(gpu(0), gpu(1)), paused=True, running=(hold("h", 0, ran=5),)),
        {"h": took(15)},
        {"a": None, "b": 0}, id="paused processing: staged runs unknown, a run started explicitly not"),
    pytest.param(
        [entry("big", 1, gpus=2), entry("small", 2, gpus=1)],
        Box(gpus=(gpu(0), gpu(1)), running=(hold("h0", 0, ran=5), hold("h1", 1, ran=5))),
        {"h0": took(15), "h1": took(35), "big": took(60), "small": took(5)},
        {"big": 30, "small": 90}, id="reservations: a small run doesn't take the GPU a big one waits for"),
    pytest.param(
        [entry("big", 1, gpus=2), entry("small", 2, gpus=1)],
        Box(gpus=(gpu(0), gpu(1), gpu(2)), running=(hold("h0", 0, ran=5), hold("h1", 1, ran=5))),
        {"h0": took(15), "h1": took(35), "big": took(60), "small": took(5)},
        {"big": 10, "small": 30}, id="reservations: backfill on the other GPUs"),
    pytest.param(
        [entry("a", 1), entry("b", 2)],
        Box(gpus=(gpu(0),), cpu_slots=1, running=(hold("h", ran=5, staged=True),)),
        {"h": took(15), "a": took(20)},
        {"a": 10, "b": 30}, id="CPU-only runs wait for a CPU slot"),
    pytest.param(
        [entry("a", 1), entry("b", 2)], Box(gpus=(gpu(0),)),
        {},
        {"a": 0, "b": 0}, id="CPU-only runs without a limit start now"),
    pytest.param(
        [entry("a", 1, gpus=1, queue="q"), entry("b", 2, gpus=1)],
        Box(gpus=(gpu(0), gpu(1)), queue_limits={"q": 1}, running=(hold("h", queue="q", ran=5, staged=True),)),
        {"h": took(15)},
        {"a": 10, "b": 0}, id="a named queue's limit"),
    pytest.param(
        [entry("a", 1, gpus=1), entry("b", 2, after=("a",))],
        Box(gpus=(gpu(0),), running=(hold("h", 0, ran=5),), statuses={"a": "staged"}),
        {"h": took(15), "a": took(20)},
        {"a": 10, "b": 30}, id="after a run in the queue: when it ends"),
    pytest.param(
        [entry("b", 2, after=("x",))], Box(statuses={"x": "running"}),
        {"x": took(20)},
        {"b": 15}, id="after a run running outside the queue"),
    pytest.param(
        [entry("b", 2, after=("x",))], Box(statuses={"x": "error"}),
        {},
        {"b": None}, id="after a failed run: cancelled, no start"),
    pytest.param(
        [entry("a", 1)], Box(blocking=("x",)),
        {"x": took(20)},
        {"a": 15}, id="wait-for-running: when the other runs end"),
    pytest.param(
        [entry("a", 1, gpus=1, user="alice"), entry("b", 2, gpus=1, user="bob")],
        Box(gpus=(gpu(0), gpu(1)), user_gpu_cap=1, running=(hold("h", 0, ran=5, user="alice"),)),
        {"h": took(15)},
        {"a": 10, "b": 0}, id="the per-user GPU cap"),
]


PREEMPTION = [
    pytest.param(
        [entry("urgent", 1, gpus=1, priority=5), entry("later", 2, gpus=1)],
        Box(gpus=(gpu(0),), running=(Holding("h", "bob", (0,), started_us=NOW - 5 * MIN, preemptible=True),)),
        {"h": took(65), "urgent": took(20), "later": took(20)},
        {"urgent": 0.5, "later": 20.5}, id="a preemptible run is stopped for a higher priority: the grace period"),
    pytest.param(
        [entry("urgent", 1, gpus=1, priority=5)],
        Box(gpus=(gpu(0),), running=(Holding("h", "bob", (0,), started_us=NOW - 5 * MIN, preemptible=False),)),
        {"h": took(65)},
        {"urgent": 60}, id="a run that is not preemptible: its end"),
    pytest.param(
        [entry("urgent", 1, gpus=1, priority=5)],
        Box(gpus=(gpu(0),), running=(Holding("h", "bob", (0,), started_us=NOW - 5 * MIN, preemptible=True),),
            preempting=("h",), kept={0: "urgent"}),
        {"h": took(65)},
        {"urgent": 0.5}, id="a run being stopped for it: within the grace period"),
]


@pytest.mark.parametrize("entries, box, expected, starts", PREEMPTION)
def test_estimate_with_preemption(entries, box, expected, starts):
    assert minutes(estimate(entries, box, expected, NOW, grace_us=MIN // 2)) == starts


@pytest.mark.parametrize("entries, box, expected, starts", CASES)
def test_estimate(entries, box, expected, starts):
    assert minutes(estimate(entries, box, expected, NOW, started={"x": NOW - 5 * MIN})) == starts


def test_kept_gpus_free_for_others_once_their_run_started():
    """GPUs preemption keeps for a run are kept only until it starts."""
    box = Box(gpus=(gpu(0),), running=(hold("h", 0, ran=5),), kept={0: "a"})
    etas = estimate([entry("a", 1, gpus=1), entry("b", 2, gpus=1)], box,
                    {"h": took(15), "a": took(20)}, NOW)
    assert minutes(etas) == {"a": 10, "b": 30}


def test_the_ids_an_estimate_needs():
    box = Box(running=(hold("h", 0),), blocking=("x",), statuses={"y": "running", "z": "completed"})
    assert eta.entry_ids([entry("a", 1)], box) == {"a", "h", "x", "y"}


def test_every_run_of_a_long_queue_gets_an_estimate():
    """Every run of a long queue gets a start, in the scheduler's order (the cost: bench/eta.py)."""
    n = 200
    box = Box(gpus=tuple(gpu(i) for i in range(4)), running=tuple(hold(f"h{i}", i, ran=i) for i in range(4)))
    entries = [entry(f"e{k:04d}", k, gpus=1 + (k % 4 == 0)) for k in range(n)]
    expected = {r: took(10 + k % 7) for k, r in enumerate([e.run_id for e in entries] + [f"h{i}" for i in range(4)])}
    etas = estimate(entries, box, expected, NOW)
    assert all(etas[e.run_id] is not None for e in entries)
    assert etas["e0000"] <= etas[f"e{n - 1:04d}"]


def test_history_from_the_index(tmp_path):
    """The durations an estimate goes by: the latest completed runs of each run's operation,
    read again only after the TTL; the starts of the runs outside the queue that others wait for."""
    store = Store(tmp_path / "index.db", tmp_path / "runs")
    rows = [("d1", "train", "completed", 10, 20), ("d2", "train", "completed", 30, 50), ("d3", "train", "completed", 60, 90),
            ("d4", "train", "error", 0, 5), ("d5", "eval", "completed", 0, 7), ("w", "train", "staged", 0, 0),
            ("x", "other", "running", 95, 0), ("y", "eval", "staged", 0, 0)]
    for run_id, op, status, started, stopped in rows:
        store.insert(RunRecord(run_id, op_name=op, status=status, started_us=started * MIN, stopped_us=stopped * MIN))
    clock = [0.0]
    history = History(store, last=2, ttl=5, clock=lambda: clock[0])
    expected, started = history.expected({"w", "x", "y"}, {"w": 30.0}, {"x"})
    assert expected == {"w": took(30, 20, stop_after=0.5), "x": Expected(), "y": Expected()}  # d5 never started
    assert started == {"x": 95 * MIN}
    store.insert(RunRecord("d6", op_name="train", status="completed", started_us=100 * MIN, stopped_us=101 * MIN))
    assert history.expected({"w"}, {}, ())[0]["w"].history == (30 * MIN, 20 * MIN)  # cached
    clock[0] = 6
    assert history.expected({"w"}, {}, ())[0]["w"].history == (1 * MIN, 30 * MIN)
