"""The queue's plain parts (guildd.queue): a run's resource request as the scheduler and the
queue file hold it, the GPUs a run's environment names, the scheduler's view of the GPUs, and
the queue file; fair share's usage across a restart."""

import asyncio
import concurrent.futures
import copy
import errno
import math
from types import SimpleNamespace

import pytest

from guild_common import errors, rundir
from guildd import fairshare, queue, resources
from guildd.scheduler import Entry, GpuState, Holding, Request, order
from tests.unit.fakes import InPlaceRuntime

GIB = 2**30
RUN = "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d"

REQUESTS = {
    "a count": (queue.Resources(gpus=2), Request(2, (), 0)),
    "devices count themselves, whatever the count says": (
        queue.Resources(gpus=1, devices=(3, 1)), Request(2, (3, 1), 0)),
    "memory on a GPU": (queue.Resources(gpus=1, gpu_memory=8 * GIB), Request(1, (), 8 * GIB)),
    "nothing asked": (queue.Resources(), Request(0, (), 0)),
    "--no-gpus asks for none": (queue.Resources(no_gpus=True), Request(0, (), 0)),
}


@pytest.mark.parametrize("resources, expected", REQUESTS.values(), ids=REQUESTS.keys())
def test_request_for(resources, expected):
    assert queue.request_for(resources) == expected


FROM_JSON = {
    "all of it": ({"gpus": 2, "devices": [0, 3], "gpu_memory": GIB, "no_gpus": False},
                  queue.Resources(gpus=2, devices=(0, 3), gpu_memory=GIB)),
    "no request at all": (None, queue.Resources()),
    "numbers written as text": ({"gpus": "2", "devices": ["1"], "gpu_memory": "5"},
                                queue.Resources(gpus=2, devices=(1,), gpu_memory=5)),
    "--no-gpus": ({"no_gpus": True}, queue.Resources(no_gpus=True)),
}


@pytest.mark.parametrize("data, expected", FROM_JSON.values(), ids=FROM_JSON.keys())
def test_request_from_json(data, expected):
    assert queue.request_from_json(data) == expected


def test_a_request_reads_back_as_written():
    resources = queue.Resources(gpus=2, devices=(4, 2), gpu_memory=3 * GIB, no_gpus=False)
    assert queue.request_from_json(queue.request_to_json(resources)) == resources


GPU_ENV = {
    "granted devices, in PCI bus order": (False, (2, 0), {"CUDA_VISIBLE_DEVICES": "2,0", "GUILD_GPUS": "2,0",
                                                          "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}),
    "--no-gpus hides them all": (True, (), {"CUDA_VISIBLE_DEVICES": "", "GUILD_GPUS": ""}),
    "no request: the run sees every GPU": (False, (), {}),
}


@pytest.mark.parametrize("no_gpus, devices, expected", GPU_ENV.values(), ids=GPU_ENV.keys())
def test_gpu_env(no_gpus, devices, expected):
    assert queue.gpu_env(no_gpus, devices) == expected


def proc(pid, memory, run_id="", user="bob"):
    return SimpleNamespace(pid=pid, user=user, used_memory=memory * GIB, run_id=run_id, foreign=not run_id)


def gpu(index, *processes, total=80, free=60):
    return SimpleNamespace(index=index, memory_total=total * GIB, memory_free=free * GIB, processes=processes)


def held(run_id, *devices):
    return Holding(run_id, "alice", devices, 0, "", 0, False)


GPU_STATES = {
    "an idle GPU": ((gpu(0),), (), GpuState(0, 80 * GIB, 60 * GIB, 0, ())),
    "a foreign process holds its memory": (
        (gpu(0, proc(42, 5), proc(43, 3, user="")),), (),
        GpuState(0, 80 * GIB, 60 * GIB, 8 * GIB, ("pid 42 (bob)", "pid 43 (unknown user)")),
    ),
    "our run on the GPU it was granted holds nothing more": (
        (gpu(1, proc(42, 5, run_id=RUN)),), (held(RUN, 1),), GpuState(1, 80 * GIB, 60 * GIB, 0, ()),
    ),
    "our run on a GPU it wasn't granted holds it like a foreign process": (
        (gpu(1, proc(42, 5, run_id=RUN)),), (held(RUN, 0),),
        GpuState(1, 80 * GIB, 60 * GIB, 5 * GIB, ("run 1a2b3c4d (no GPU request)",)),
    ),
}


@pytest.mark.parametrize("gpus, holdings, expected", GPU_STATES.values(), ids=GPU_STATES.keys())
def test_gpu_states(gpus, holdings, expected):
    assert resources.gpu_states(SimpleNamespace(gpus=gpus), holdings) == (expected,)


@pytest.fixture
def run_dir(tmp_path):
    rundir.attrs_dir(tmp_path).mkdir(parents=True)
    return tmp_path


def test_queue_file_reads_back_as_written(run_dir):
    data = {"user": "alice", "request": {"gpus": 1}, "priority": 2, "after": ["r1"]}
    queue.write_file(run_dir, data)
    assert queue.read_file(run_dir) == data
    assert sorted(p.name for p in rundir.guild_dir(run_dir).iterdir()) == ["attrs", queue.QUEUE_FILE]


@pytest.mark.parametrize("content", [pytest.param(None, id="no file"), pytest.param("{not json", id="damaged")])
def test_a_missing_or_damaged_queue_file_reads_as_none(run_dir, content):
    if content is not None:
        (rundir.guild_dir(run_dir) / queue.QUEUE_FILE).write_text(content)
    assert queue.read_file(run_dir) is None


# Fair share's usage, across a restart (a new Queue on the same home)

HOUR_US = 3600 * 10**6


class _Runtime(InPlaceRuntime):
    def io_submit(self, fn, *args):
        future = concurrent.futures.Future()
        future.set_result(fn(*args))
        return future


class _States:
    """The run states a queue reads at start: `running` run ids, their dirs under `runs`."""

    def __init__(self, runs, running=()):
        self.runs, self.running = runs, running

    def listen(self, _callback):
        pass

    def run_dir(self, run_id):
        return self.runs / run_id

    def store(self):
        records = [SimpleNamespace(id=run_id, status="running") for run_id in self.running]
        return SimpleNamespace(list=lambda statuses: (records, None))


def _queue(home, states, half_life=3600.0):
    return queue.Queue(_Runtime(), states.store(), states, home, None, None, lambda: False, half_life=half_life)


def _running_run(states, run_id, user, devices, started_us):
    """A run the queue started and that still runs: its queue file records its grant."""
    run_dir = states.run_dir(run_id)
    rundir.attrs_dir(run_dir).mkdir(parents=True)
    queue.write_file(run_dir, {"user": user, "request": {"gpus": len(devices)},
                               "granted": {"devices": list(devices), "gpu_memory": 0, "started_us": started_us}})


def test_usage_survives_a_restart(tmp_path):
    # alice's 8-GPU run ran for the last hour and ended; bob's 1-GPU run runs since an hour ago.
    now = rundir.now_us()
    states = _States(tmp_path / "runs", running=["bobs"])
    _running_run(states, "bobs", "bob", (0,), now - HOUR_US)
    first = _queue(tmp_path, states)
    asyncio.run(first.load())
    first.holdings["alices"] = Holding("alices", "alice", tuple(range(8)), 0, "", now - HOUR_US, False)
    first.release("alices")
    before = first.usage()

    restarted = _queue(tmp_path, states)
    asyncio.run(restarted.load())
    after = restarted.usage()
    # Each GPU-hour counts half an hour's worth less at its start: 8 GPUs for a half-life ~ 8 x 2597 GPU-s.
    assert before["alice"] == pytest.approx(8 * 3600 / math.log(2) / 2, rel=1e-3)
    assert after == pytest.approx(before, rel=1e-3)  # bob's run is not charged twice for its first hour
    # So the restarted daemon still puts bob's waiting run ahead of alice's, though bob holds a GPU.
    entries = [Entry("a", "alice", Request(1), 1), Entry("b", "bob", Request(1), 2)]
    assert [e.run_id for e in order(entries, restarted.box())] == ["b", "a"]


def test_a_damaged_usage_file_starts_from_no_usage(tmp_path, caplog):
    (tmp_path / fairshare.USAGE_FILE).write_text("{not json")
    restarted = _queue(tmp_path, _States(tmp_path / "runs"))
    asyncio.run(restarted.load())
    assert restarted.usage() == {}
    assert "ignoring" in caplog.text


def test_settings_a_full_disk_refuses_are_not_taken(tmp_path, monkeypatch):
    q = _queue(tmp_path, _States(tmp_path / "runs"))
    asyncio.run(q.load())
    before = copy.deepcopy(q.settings)

    def no_room(path, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(queue.rundir, "write_atomic", no_room)
    with pytest.raises(errors.ResourcesUnavailable, match="cannot change the queue's settings: no space left on device"):
        q.configure(paused=False, cpu_slots=1)
    assert q.settings == before
