"""Which runs the queue stops for a waiting run of higher priority (guildd.preemption, through
guildd.scheduler.plan), as a table of snapshots and the preemptions they lead to."""

import pytest

from guildd.preemption import Preempt
from guildd.scheduler import Box, Entry, GpuState, Holding, Request, Start, Wait, explain, plan

GIB = 2**30


def gpu(index, total=80, foreign=(), foreign_memory=0):
    return GpuState(index, total * GIB, (total - foreign_memory) * GIB, foreign_memory * GIB, tuple(foreign))


def gpus(n):
    return tuple(gpu(i) for i in range(n))


def hold(run_id, *devices, priority=0, preemptible=True, memory=0, started=0, user="bob", queue=""):
    return Holding(run_id, user, tuple(devices), memory * GIB, queue, started, False, priority, preemptible)


def want(run_id, gpus=1, devices=(), memory=0, priority=10, user="alice", seq=1, **kw):
    count = len(devices) if devices else gpus
    return Entry(run_id, user, Request(count, tuple(devices), memory * GIB), seq, priority, front=kw.pop("front", True), **kw)


def preemptions(entries, box):
    """[(for whom, victims in order, kept GPUs)] from plan()."""
    return [(d.run_id, d.victims, d.devices) for d in plan(entries, box) if isinstance(d, Preempt)]


CASES = {
    "no preemptible runs: nothing stopped": (
        [want("u")], Box(gpus=gpus(1), running=(hold("a", 0, preemptible=False),)),
        [],
    ),
    "a lower-priority preemptible holder of the only GPU is stopped": (
        [want("u")], Box(gpus=gpus(1), running=(hold("a", 0),)),
        [("u", ("a",), (0,))],
    ),
    "no preemption for equal priority": (
        [want("u", priority=0)], Box(gpus=gpus(1), running=(hold("a", 0, priority=0),)),
        [],
    ),
    "no preemption of a higher priority": (
        [want("u", priority=5)], Box(gpus=gpus(1), running=(hold("a", 0, priority=7),)),
        [],
    ),
    "a non-preemptible holder is never chosen": (
        [want("u")], Box(gpus=gpus(2), running=(hold("a", 0, preemptible=False), hold("b", 1, preemptible=False))),
        [],
    ),
    "only the preemptible one of two holders": (
        [want("u")], Box(gpus=gpus(2), running=(hold("a", 0, preemptible=False), hold("b", 1))),
        [("u", ("b",), (1,))],
    ),
    "a free GPU plus one victim: the fewest stopped": (
        [want("u", gpus=2)], Box(gpus=gpus(3), running=(hold("a", 0, started=1), hold("b", 1, started=2))),
        [("u", ("b",), (1, 2))],
    ),
    "fewest victims: one run on two GPUs rather than two on one each": (
        [want("u", gpus=2)], Box(gpus=gpus(4), running=(hold("a", 0, priority=-5), hold("b", 1, priority=-5),
                                                        hold("c", 2, 3, priority=1))),
        [("u", ("c",), (2, 3))],
    ),
    "lowest priority first": (
        [want("u")], Box(gpus=gpus(3), running=(hold("a", 0, priority=3), hold("b", 1, priority=1), hold("c", 2, priority=2))),
        [("u", ("b",), (1,))],
    ),
    "at equal priority, the most recently started (least work lost)": (
        [want("u")], Box(gpus=gpus(2), running=(hold("old", 0, started=100), hold("new", 1, started=900))),
        [("u", ("new",), (1,))],
    ),
    "explicit devices: only the holder of those": (
        [want("u", devices=(0,))], Box(gpus=gpus(2), running=(hold("a", 0, started=1), hold("b", 1, started=9))),
        [("u", ("a",), (0,))],
    ),
    "memory request: one memory holder leaves enough": (
        [want("u", memory=40)],
        Box(gpus=gpus(1), running=(hold("a", 0, memory=30, priority=1), hold("b", 0, memory=30, priority=2))),
        [("u", ("a",), (0,))],
    ),
    "memory request: a non-preemptible exclusive holder blocks its GPU": (
        [want("u", memory=10)], Box(gpus=gpus(1), running=(hold("a", 0, preemptible=False),)),
        [],
    ),
    "memory request: foreign memory counts": (
        [want("u", memory=50)], Box(gpus=(gpu(0, foreign=("pid 1 (x)",), foreign_memory=40),), running=(hold("a", 0, memory=30),)),
        [],
    ),
    "exclusive request: a GPU with a foreign process is never freed": (
        [want("u")], Box(gpus=(gpu(0, foreign=("pid 1 (x)",), foreign_memory=1),), running=(hold("a", 0, memory=10),)),
        [],
    ),
    "not enough even with every victim: nothing stopped": (
        [want("u", gpus=3)], Box(gpus=gpus(3), running=(hold("a", 0), hold("b", 1), hold("c", 2, preemptible=False))),
        [],
    ),
    "paused processing: a staged run preempts nothing": (
        [want("u", front=False)], Box(gpus=gpus(1), running=(hold("a", 0),), paused=True),
        [],
    ),
    "paused processing: a run started explicitly still preempts": (
        [want("u", front=True)], Box(gpus=gpus(1), running=(hold("a", 0),), paused=True),
        [("u", ("a",), (0,))],
    ),
    "user cap: a user at the cap preempts nothing": (
        [want("u")], Box(gpus=gpus(2), running=(hold("mine", 0, user="alice", preemptible=False), hold("a", 1)), user_gpu_cap=1),
        [],
    ),
    "named queue full: preempts nothing": (
        [want("u", queue="q", front=False)],
        Box(gpus=gpus(2), running=(hold("q1", 0, queue="q", preemptible=False), hold("a", 1)), queue_limits={"q": 1}),
        [],
    ),
    "after runs not completed: preempts nothing": (
        [want("u", after=("x",))], Box(gpus=gpus(1), running=(hold("a", 0),), statuses={"x": "running"}),
        [],
    ),
    "a victim already being stopped isn't chosen twice": (
        [want("u2")], Box(gpus=gpus(1), running=(hold("a", 0),), preempting=("a",), kept={0: "u1"}),
        [],
    ),
    "a run GPUs are kept for already preempts no more": (
        [want("u")], Box(gpus=gpus(2), running=(hold("a", 0), hold("b", 1)), preempting=("a",), kept={0: "u"}),
        [],
    ),
    "no thrash: a requeued run doesn't preempt back": (
        [want("victim", priority=5, requeued=True)], Box(gpus=gpus(1), running=(hold("u", 0, priority=1),)),
        [],
    ),
    "a run that can start on a free GPU needs no victim": (
        [want("u")], Box(gpus=gpus(2), running=(hold("a", 0),)),
        [],
    ),
    "two waiting runs: the more urgent first, each its own victim": (
        [want("u1", priority=5, seq=1), want("u2", priority=9, seq=2)],
        Box(gpus=gpus(2), running=(hold("a", 0, started=1), hold("b", 1, started=2))),
        [("u2", ("b",), (1,)), ("u1", ("a",), (0,))],
    ),
    "a GPU kept for another waiting run isn't taken": (
        [want("u2", priority=20)], Box(gpus=gpus(2), running=(hold("a", 0), hold("b", 1)), preempting=("a",), kept={0: "u1"}),
        [("u2", ("b",), (1,))],
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_preemption(name):
    entries, box, expected = CASES[name]
    assert preemptions(entries, box) == expected


def test_kept_gpus_go_to_the_run_they_are_kept_for():
    """A GPU freed by preemption waits for its run: an earlier entry (a requeued victim, started
    explicitly) doesn't take it."""
    box = Box(gpus=gpus(1), kept={0: "u"})
    entries = [want("victim", priority=0, seq=1, requeued=True), want("u", priority=10, seq=2, front=False)]
    decisions = explain(entries, box)
    assert Start("u", (0,), 0) in decisions
    waits = {d.run_id: d.reason for d in decisions if isinstance(d, Wait)}
    assert waits["victim"] == "needs 1 GPU, 0 free (1 reserved for run u)"


def test_kept_gpu_held_still_waits_without_reserving_others_twice():
    """While its victim stops, the run GPUs are kept for waits; its reason doesn't name itself."""
    box = Box(gpus=gpus(1), running=(hold("a", 0),), preempting=("a",), kept={0: "u"})
    [decision] = explain([want("u")], box)
    assert decision == Wait("u", "needs 1 GPU, 0 free")


def test_many_candidates_greedy_still_fewest_cheapest():
    """With too many sets to try them all, the cheapest victims that suffice are taken."""
    running = tuple(hold(f"r{i:02}", i, priority=i % 3, started=i) for i in range(40))
    box = Box(gpus=gpus(40), running=running)
    [(run_id, victims, devices)] = preemptions([want("u", gpus=3)], box)
    assert len(victims) == 3 and all(int(v[1:]) % 3 == 0 for v in victims)
    assert victims == ("r39", "r36", "r33") and devices == (33, 36, 39)


def test_many_like_entries_one_search_each_kind():
    """Thousands of like waiting runs that can preempt nothing, then one that can."""
    entries = [want(f"w{n}", gpus=2, seq=n) for n in range(3000)]
    box = Box(gpus=gpus(8), running=tuple(hold(f"r{i}", i, preemptible=i == 0, priority=0) for i in range(8)))
    assert preemptions(entries, box) == []
    entries.append(want("one", gpus=1, seq=5000))
    assert preemptions(entries, box) == [("one", ("r0",), (0,))]
