"""The queue's order and placement rules (guildd.scheduler), as tables of snapshots and decisions."""

import random

import pytest

from guildd import scheduler
from guildd.resources import never_fits
from guildd.scheduler import (
    Box,
    Cancel,
    Entry,
    GpuState,
    Holding,
    Request,
    Start,
    Wait,
    explain,
    order,
    plan,
)

GIB = 2**30
RUN = "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d"  # a real-looking run id: reasons show its first 8 chars


# Builders: sizes in GiB, entries numbered in the order they are written


def gpu(index, total=80, free=None, foreign=(), foreign_memory=0):
    free = total - foreign_memory if free is None else free
    return GpuState(index, total * GIB, free * GIB, foreign_memory * GIB, tuple(foreign))


def gpus(n, total=80):
    return tuple(gpu(i, total) for i in range(n))


def hold(run_id, *devices, user="bob", memory=0, queue="", started=0, staged=False):
    return Holding(run_id, user, tuple(devices), memory * GIB, queue, started, staged)


def entry(run_id, gpus=0, devices=(), memory=0, user="alice", seq=0, **kw):
    count = len(devices) if devices else gpus
    return Entry(run_id, user, Request(count, tuple(devices), memory * GIB), seq, **kw)


def numbered(*entries):
    """The entries with seq set to their place in the list (unless given)."""
    return [e if e.seq else Entry(**{**e.__dict__, "seq": n}) for n, e in enumerate(entries, 1)]


def outcome(entries, box):
    """{run id: devices started on, or the reason it waits / is cancelled}, from explain()."""
    result = {}
    for d in explain(entries, box):
        if isinstance(d, Start):
            result[d.run_id] = d.devices
        elif isinstance(d, Cancel):
            result[d.run_id] = "cancel: " + d.reason
        else:
            result[d.run_id] = d.reason
    return result


def check(entries, box, expected):
    assert outcome(entries, box) == expected
    assert_plan_agrees(entries, box)


def assert_plan_agrees(entries, box):
    """plan() is explain() without the waits: same starts and cancels, same order."""
    assert plan(entries, box) == [d for d in explain(entries, box) if not isinstance(d, Wait)]


# Placement

PLACEMENT = {
    "exclusive takes the lowest free GPUs": (
        Box(gpus=gpus(4), running=(hold("r", 0),)),
        [entry("a", 2)],
        {"a": (1, 2)},
    ),
    "a memory holder keeps exclusive runs off its GPU": (
        Box(gpus=gpus(2), running=(hold("r", 0, memory=10),)),
        [entry("a", 1)],
        {"a": (1,)},
    ),
    "memory requests pack onto the fullest GPU that fits": (
        Box(gpus=(gpu(0), gpu(1, free=30), gpu(2, free=50)), running=()),
        [entry("a", 1, memory=20), entry("b", 1, memory=20), entry("c", 1, memory=40)],
        {"a": (1,), "b": (2,), "c": (0,)},
    ),
    "memory grants in this plan count against the GPU": (
        Box(gpus=gpus(1)),
        [entry("a", 1, memory=30), entry("b", 1, memory=30), entry("c", 1, memory=30)],
        {"a": (0,), "b": (0,), "c": "needs 30.0 GiB free on 1 GPU, at most 20.0 GiB free"},
    ),
    "memory granted to running runs counts even if they use less": (
        Box(gpus=(gpu(0, free=70),), running=(hold("r", 0, memory=60),)),
        [entry("a", 1, memory=30)],
        {"a": "needs 30.0 GiB free on 1 GPU, at most 20.0 GiB free"},
    ),
    "the driver's free memory counts when runs use more than granted": (
        Box(gpus=(gpu(0, free=10),), running=(hold("r", 0, memory=20),)),
        [entry("a", 1, memory=30)],
        {"a": "needs 30.0 GiB free on 1 GPU, at most 10.0 GiB free"},
    ),
    "a foreign process keeps exclusive runs off its GPU": (
        Box(gpus=(gpu(0, foreign=["pid 4242 (bob)"], foreign_memory=1), gpu(1))),
        [entry("a", 1), entry("b", 1)],
        {"a": (1,), "b": "needs 1 GPU, 0 free"},
    ),
    "a memory request fits next to a foreign process": (
        Box(gpus=(gpu(0, foreign=["pid 4242 (bob)"], foreign_memory=30),), running=(hold("r", 0, memory=20),)),
        [entry("a", 1, memory=30), entry("b", 1, memory=1)],
        {"a": (0,), "b": "needs 1.0 GiB free on 1 GPU, at most 0.0 GiB free"},
    ),
    "an exclusive holder keeps memory runs off its GPU": (
        Box(gpus=gpus(1), running=(hold("r", 0),)),
        [entry("a", 1, memory=1)],
        {"a": "needs 1.0 GiB free on 1 GPU, at most 0.0 GiB free"},
    ),
    "too few GPUs for a count request": (
        Box(gpus=gpus(4), running=(hold("r", 0, 1, 2),)),
        [entry("a", 2)],
        {"a": "needs 2 GPUs, 1 free"},
    ),
    "a memory request for 2 GPUs where 1 fits": (
        Box(gpus=(gpu(0), gpu(1, free=10))),
        [entry("a", 2, memory=20)],
        {"a": "needs 20.0 GiB free on 2 GPUs, 1 GPU has it"},
    ),
    "explicit devices that are free": (
        Box(gpus=gpus(4), running=(hold("r", 0),)),
        [entry("a", devices=(3, 1))],
        {"a": (3, 1)},
    ),
    "explicit device held by a run": (
        Box(gpus=gpus(4), running=(hold(RUN, 3),)),
        [entry("a", devices=(0, 3))],
        {"a": "GPU 3 is held by run 1a2b3c4d"},
    ),
    "explicit device shared by memory runs, exclusive request": (
        Box(gpus=gpus(4), running=(hold("r1", 3, memory=5), hold("r2", 3, memory=5))),
        [entry("a", devices=(3,))],
        {"a": "GPU 3 is held by runs r1, r2"},
    ),
    "explicit device with a foreign process": (
        Box(gpus=(gpu(0), gpu(3, foreign=["pid 4242 (bob)"]))),
        [entry("a", devices=(0, 3))],
        {"a": "GPU 3 has a foreign process: pid 4242 (bob)"},
    ),
    "explicit device with too little memory, another held": (
        Box(gpus=(gpu(0, free=12), gpu(1)), running=(hold("r", 1),)),
        [entry("a", devices=(0, 1), memory=20)],
        {"a": "GPU 0 has 12.0 GiB free, needs 20.0 GiB; GPU 1 is held by run r"},
    ),
    "explicit device with a memory request next to a foreign process": (
        Box(gpus=(gpu(0, foreign=["pid 1 (eve)"], foreign_memory=40),)),
        [entry("a", devices=(0,), memory=30)],
        {"a": (0,)},
    ),
    "explicit device that doesn't exist": (
        Box(gpus=gpus(2)),
        [entry("a", devices=(7,))],
        {"a": "there is no GPU 7"},
    ),
    "a GPU request on a box without GPUs": (
        Box(),
        [entry("a", 1), entry("b")],
        {"a": "this box has no GPUs", "b": ()},
    ),
    "CPU-only runs need no GPU": (
        Box(gpus=gpus(1), running=(hold("r", 0),)),
        [entry("a")],
        {"a": ()},
    ),
}


@pytest.mark.parametrize("box, entries, expected", PLACEMENT.values(), ids=PLACEMENT.keys())
def test_placement(box, entries, expected):
    check(numbered(*entries), box, expected)


def test_start_carries_the_memory_grant():
    box = Box(gpus=gpus(2), running=(hold("r", 0),))
    assert plan(numbered(entry("a", 1, memory=20), entry("b")), box) == [
        Start("a", (1,), 20 * GIB),
        Start("b", (), 0),
    ]


# Topology: the better link sits on higher indices, so index order alone never picks it.
LINKS = {(0, 1): "PXB", (0, 2): "PIX", (2, 3): "NV4", (2, 4): "NV4", (3, 4): "NV4", (4, 5): "NV12", (1, 3): "SYS"}

TOPOLOGY = {
    "NV12 over NV4": ((), 2, (4, 5)),
    "NV4 over PIX": ((5,), 2, (2, 3)),
    "PIX over PXB": ((3, 4, 5), 2, (0, 2)),
    "unknown ranks like SYS, then lower indices": ((0, 2, 4), 2, (1, 3)),
    "3 GPUs: the best worst link": ((), 3, (2, 3, 4)),
}


@pytest.mark.parametrize("held, count, devices", TOPOLOGY.values(), ids=TOPOLOGY.keys())
def test_topology(held, count, devices):
    box = Box(gpus=gpus(6), links=LINKS, running=(hold("r", *held),))
    assert outcome(numbered(entry("a", count)), box) == {"a": devices}


def test_topology_beats_packing_for_memory_requests():
    # 0 and 1 have the least memory free but only a SYS link; 2 and 3 have NV4.
    box = Box(gpus=(gpu(0, free=30), gpu(1, free=30), gpu(2), gpu(3)), links={(0, 1): "SYS", (2, 3): "NV4"})
    assert outcome(numbered(entry("a", 2, memory=20)), box) == {"a": (2, 3)}


def test_topology_on_a_large_box_grows_sets_greedily():
    # C(24, 12) sets is too many to try: the greedy grow still finds the NVLink island.
    links = {(a, b): "SYS" for a in range(24) for b in range(a + 1, 24)}
    links.update({(a, b): "NV12" for a in range(12, 24) for b in range(a + 1, 24)})
    box = Box(gpus=gpus(24), links=links)
    assert outcome(numbered(entry("a", 12)), box) == {"a": tuple(range(12, 24))}


# Order

ORDER = {
    "seq, whatever the given order": (
        Box(),
        [entry("b", seq=2), entry("c", seq=3), entry("a", seq=1)],
        ["a", "b", "c"],
    ),
    "higher priority first": (
        Box(),
        [entry("a", seq=1), entry("b", seq=2, priority=5), entry("c", seq=3, priority=-1)],
        ["b", "a", "c"],
    ),
    "front first, by seq, ahead of priority": (
        Box(),
        [entry("a", seq=1, priority=9), entry("f2", seq=5, front=True), entry("f1", seq=4, front=True)],
        ["f1", "f2", "a"],
    ),
    "fair share, no usage yet: the user holding fewer GPUs first": (
        Box(gpus=gpus(8), running=(hold("r1", 0, 1, 2, user="alice"), hold("r2", 3, user="bob"))),
        [entry("a", 1, user="alice", seq=1), entry("b", 1, user="bob", seq=2)],
        ["b", "a"],
    ),
    "fair share counts GPUs granted earlier in the same plan": (
        Box(gpus=gpus(8)),
        [entry("a1", 2, user="alice", seq=1), entry("a2", 1, user="alice", seq=2), entry("b1", 1, user="bob", seq=3)],
        ["a1", "b1", "a2"],
    ),
    "fair share: CPU-only runs count no GPUs": (
        Box(gpus=gpus(8), running=(hold("r", user="bob"), hold("s", user="bob"))),
        [entry("a", 1, user="alice", seq=1), entry("b", 1, user="bob", seq=2)],
        ["a", "b"],
    ),
    "fair share: memory grants count their GPUs": (
        Box(gpus=gpus(8), running=(hold("r", 0, user="alice", memory=1),)),
        [entry("a", 1, user="alice", seq=1), entry("b", 1, user="bob", seq=2)],
        ["b", "a"],
    ),
    "priority beats fair share": (
        Box(gpus=gpus(8), running=(hold("r", 0, 1, 2, user="alice"),)),
        [entry("a", 1, user="alice", seq=1, priority=1), entry("b", 1, user="bob", seq=2)],
        ["a", "b"],
    ),
    "a user who just finished a long job waits behind one who hasn't run": (
        Box(gpus=gpus(8), usage={"alice": 8 * 10 * 3600.0}),
        [entry("a", 1, user="alice", seq=1), entry("b", 1, user="bob", seq=2)],
        ["b", "a"],
    ),
    "least recent usage first, whatever GPUs are held now": (
        Box(gpus=gpus(8), running=(hold("r", 0, 1, 2, user="alice"),), usage={"alice": 10.0, "bob": 1000.0}),
        [entry("b", 1, user="bob", seq=1), entry("a", 1, user="alice", seq=2)],
        ["a", "b"],
    ),
    "GPUs granted in the same plan don't outweigh usage": (
        Box(gpus=gpus(8), usage={"alice": 100.0}),
        [entry("a1", 1, user="alice", seq=1), entry("a2", 1, user="alice", seq=2),
         entry("b1", 2, user="bob", seq=3), entry("b2", 2, user="bob", seq=4)],
        ["b1", "b2", "a1", "a2"],
    ),
    "priority beats usage": (
        Box(gpus=gpus(8), usage={"bob": 5000.0}),
        [entry("a", 1, user="alice", seq=1), entry("b", 1, user="bob", seq=2, priority=1)],
        ["b", "a"],
    ),
    "equal usage keeps submission order": (
        Box(gpus=gpus(8), usage={"alice": 50.0, "bob": 50.0}),
        [entry("b", 1, user="bob", seq=2), entry("a", 1, user="alice", seq=1), entry("b2", 1, user="bob", seq=3)],
        ["a", "b", "b2"],
    ),
    "a full box: still least usage first": (
        Box(gpus=gpus(1), running=(hold("r", 0, user="carol"),), usage={"alice": 30.0, "bob": 20.0, "carol": 1.0}),
        [entry("a", 1, user="alice", seq=1), entry("b", 1, user="bob", seq=2), entry("c", 1, user="carol", seq=3)],
        ["c", "b", "a"],
    ),
    "a user's own entries keep (priority, seq) order": (
        Box(gpus=gpus(8), running=(hold("r", 0, 1, user="alice"),)),
        [entry("a1", 1, user="alice", seq=1), entry("a2", 1, user="alice", seq=2, priority=1),
         entry("b1", 1, user="bob", seq=3)],
        ["a2", "b1", "a1"],
    ),
}


@pytest.mark.parametrize("box, entries, expected", ORDER.values(), ids=ORDER.keys())
def test_order(box, entries, expected):
    assert [e.run_id for e in order(entries, box)] == expected
    assert [d.run_id for d in explain(entries, box)] == expected
    assert_plan_agrees(entries, box)


def test_order_is_the_same_when_the_box_is_full():
    # Full box: plan takes its shortcut, but the order explain shows is still fair share.
    box = Box(gpus=gpus(2), running=(hold("r1", 0, user="alice"), hold("r2", 1, user="carol")))
    entries = [entry("a", 1, user="alice", seq=1), entry("c", 1, user="carol", seq=2, priority=1),
               entry("b", 1, user="bob", seq=3), entry("b2", user="bob", seq=4)]
    assert [e.run_id for e in order(entries, box)] == ["c", "b", "b2", "a"]
    assert plan(entries, box) == [Start("b2", (), 0)]


def test_fair_share_decides_who_gets_the_last_gpu():
    box = Box(gpus=gpus(4), running=(hold("r1", 0, 1, user="alice"),))
    entries = [entry("a", 1, user="alice", seq=1), entry("b", 1, user="bob", seq=2),
               entry("a2", 1, user="alice", seq=3), entry("c", 1, user="carol", seq=4)]
    # bob (0 GPUs) first, then carol (0) before alice (2); bob now holds 1, so he'd follow carol.
    assert plan(entries, box) == [Start("b", (2,), 0), Start("c", (3,), 0)]


@pytest.mark.parametrize("box", [Box(gpus=gpus(8)), Box(gpus=gpus(1), running=(hold("r", 0, user="dave"),))],
                         ids=["GPUs free", "box full"])
def test_fair_share_ties_keep_the_given_order(box):
    # Same priority, GPUs held and seq: the entry given first goes first, whoever's it is.
    entries = [entry("b", 1, user="bob", seq=5), entry("a", 1, user="alice", seq=5), entry("c", 1, user="carol", seq=4)]
    assert [e.run_id for e in order(entries, box)] == ["c", "b", "a"]
    assert_plan_agrees(entries, box)


def fair_share_the_slow_way(entries, box):
    """(order, started) for 1-GPU and CPU-only entries on identical free GPUs: each time the entry with
    the least (-priority, its user's usage, its user's GPUs, seq, position); it starts if it is
    CPU-only or a GPU is left, and then its GPU counts for its user."""
    held = {}
    for h in box.running:
        held[h.user] = held.get(h.user, 0) + len(h.devices)
    free = len(box.gpus) - sum(len(h.devices) for h in box.running)
    left = dict(enumerate(entries))
    result, started = [], []
    while left:
        n = min(left, key=lambda n: (-left[n].priority, box.usage.get(left[n].user, 0.0), held.get(left[n].user, 0),
                                     left[n].seq, n))
        e = left.pop(n)
        result.append(e.run_id)
        if not e.request.gpus or free:
            started.append(e.run_id)
            free -= e.request.gpus
            held[e.user] = held.get(e.user, 0) + e.request.gpus
    return result, started


@pytest.mark.parametrize("seed", range(30))
def test_fair_share_order_of_a_long_queue(seed):
    # Many users, usages (some equal), priorities and seq ties, in no particular order; GPUs for
    # all, or running out.
    rng = random.Random(seed)
    users = ["alice", "bob", "carol", "dave", "erin"][:rng.randint(1, 5)]
    running = tuple(hold(f"r{i}", i, user=rng.choice(users)) for i in range(rng.randint(0, 8)))
    usage = {u: rng.choice([0.0, 0.0, 100.0, 5000.0]) for u in users}
    box = Box(gpus=gpus(len(running) + rng.choice([3, 20, 100])), running=running, usage=usage)
    entries = [entry(f"e{k}", rng.choice([0, 1, 1, 1]), user=rng.choice(users), seq=rng.randint(1, 30),
                     priority=rng.choice([0, 0, 0, 1, -1])) for k in range(80)]
    expected, started = fair_share_the_slow_way(entries, box)
    assert [e.run_id for e in order(entries, box)] == expected
    assert [d.run_id for d in plan(entries, box)] == started
    assert_plan_agrees(entries, box)


def test_plan_looks_at_few_entries_of_a_long_queue(monkeypatch):
    # 2 GPUs free, the CPU slots full; 1 entry in 20 waits for a run, 1 in 20 is CPU-only. Plan
    # starts 2 runs and considers no other entry: none of them could start or be cancelled.
    considered = []
    consider = scheduler._Planner.consider

    def counted(self, e):
        considered.append(e.run_id)
        consider(self, e)

    monkeypatch.setattr(scheduler._Planner, "consider", counted)
    entries = [entry(f"e{k}", 0 if k % 20 == 10 else 1, user="ab"[k % 2], seq=k, after=("p",) if k % 20 == 5 else ())
               for k in range(10_000)]
    box = Box(gpus=gpus(8), running=tuple(hold(f"r{i}", i) for i in range(6)) + (hold("c1"), hold("c2")),
              cpu_slots=2, statuses={"p": "running"})
    assert plan(entries, box) == [Start("e0", (6,), 0), Start("e1", (7,), 0)]
    assert considered == ["e0", "e1"]


def test_plan_finds_the_few_decisions_deep_in_a_long_queue():
    # A full box: of 2,000 entries, plan starts the CPU-only ones that wait for nothing and cancels
    # the one whose `after` run failed, in their order.
    entries = [entry(f"e{k}", 1, seq=k) for k in range(2000)]
    entries[300] = entry("waits", seq=300, after=("q",))
    entries[700] = entry("doomed", 1, seq=700, after=("p",))
    entries[1500] = entry("cpu", seq=1500, after=("c",))
    entries[1800] = entry("urgent", seq=1800, priority=1)
    box = Box(gpus=gpus(2), running=(hold("r", 0, 1),), statuses={"p": "error", "q": "running", "c": "completed"})
    assert plan(entries, box) == [
        Start("urgent", (), 0), Cancel("doomed", "after p ended with status error"), Start("cpu", (), 0)]
    assert_plan_agrees(entries, box)


# Backfill and reservations


def test_small_run_waits_for_gpus_reserved_by_a_large_one():
    # 6 and 7 are free; the 4-GPU run reserves them plus the two held the longest (2 and 0).
    box = Box(gpus=gpus(8), running=tuple(hold(f"r{i}", i, started=s) for i, s in enumerate([10, 50, 5, 60, 70, 80])))
    entries = numbered(entry("big", 4), entry("small", 1))
    assert outcome(entries, box) == {
        "big": "needs 4 GPUs, 2 free",
        "small": "needs 1 GPU, 0 free (2 reserved for run big)",
    }
    assert plan(entries, box) == []


def test_small_run_backfills_gpus_the_large_one_is_not_waiting_for():
    # The 4-GPU run waits for GPUs 0-3; GPU 4 is free and not reserved.
    box = Box(gpus=gpus(6), running=(hold("r", 0),))
    entries = numbered(entry("big", devices=(0, 1, 2, 3)), entry("small", 1), entry("late", devices=(1,)))
    assert outcome(entries, box) == {
        "big": "GPU 0 is held by run r",
        "small": (4,),
        "late": "GPU 1 is reserved for run big",
    }


def test_memory_run_backfills_next_to_a_foreign_process():
    # The exclusive 4-GPU run can't use 6 or 7 (foreign processes): a memory run may.
    foreign = ["pid 4242 (bob)"]
    box = Box(
        gpus=gpus(6) + (gpu(6, foreign=foreign, foreign_memory=10), gpu(7, foreign=foreign, foreign_memory=30)),
        running=tuple(hold(f"r{i}", i, started=i) for i in range(5)),
    )
    entries = numbered(entry("big", 4), entry("excl", 1), entry("mem", 1, memory=20))
    assert outcome(entries, box) == {
        "big": "needs 4 GPUs, 1 free",
        "excl": "needs 1 GPU, 0 free (1 reserved for run big)",
        "mem": (7,),  # packed: 7 has 50 GiB available, 6 has 70
    }


def test_reservation_takes_the_longest_running_gpus():
    # Each GPU is shared by a 40 GiB memory run; the exclusive 2-GPU run reserves the two GPUs whose
    # runs started first (1 and 3). 30 GiB runs get 0 and 2, then nothing is left unreserved.
    box = Box(gpus=gpus(4), running=tuple(hold(f"r{i}", i, memory=40, started=s) for i, s in enumerate([30, 10, 40, 20])))
    entries = numbered(entry("big", 2), entry("m1", 1, memory=30), entry("m2", 1, memory=30), entry("m3", 1, memory=30))
    assert outcome(entries, box) == {
        "big": "needs 2 GPUs, 0 free",
        "m1": (0,),
        "m2": (2,),
        "m3": "needs 30.0 GiB free on 1 GPU, 0 GPUs have it (2 reserved for run big)",
    }


def test_a_second_large_run_reserves_what_is_left_or_nothing():
    memory_runs = tuple(hold(f"r{i}", i, memory=40, started=i) for i in range(6))
    box = Box(gpus=gpus(6), running=memory_runs)
    # big1 reserves 0-3; big2 can't get 4 unreserved GPUs, so it reserves none: 4 and 5 stay open.
    entries = numbered(entry("big1", 4), entry("big2", 4), entry("m1", 1, memory=10), entry("m2", 1, memory=10))
    assert outcome(entries, box)["m1"] == (4,)
    box = Box(gpus=gpus(8), running=memory_runs + (hold("r6", 6, memory=40), hold("r7", 7, memory=40)))
    # On 8 GPUs big2 reserves 4-7: nothing is left for the memory runs.
    assert outcome(entries, box)["m1"] == (
        "needs 10.0 GiB free on 1 GPU, 0 GPUs have it (8 reserved for runs big1, big2)")


def test_no_reservation_for_a_run_that_can_never_get_its_gpus_back():
    # GPU 3 has a foreign process: a 4-GPU exclusive run can't reserve 4 GPUs, so it blocks nothing.
    box = Box(gpus=gpus(3) + (gpu(3, foreign=["pid 1 (eve)"]),), running=(hold("r", 0),))
    assert outcome(numbered(entry("big", 4), entry("small", 1)), box) == {
        "big": "needs 4 GPUs, 2 free",
        "small": (1,),
    }


def test_front_runs_are_not_held_by_reservations():
    box = Box(gpus=gpus(2), running=(hold("r", 0),))
    entries = numbered(entry("big", 2), entry("now", 1, front=True))
    assert outcome(entries, box) == {"now": (1,), "big": "needs 2 GPUs, 0 free"}


# after, queue processing, queue limits, user cap, CPU slots

AFTER = {
    "completed": ({"p": "completed"}, ()),
    "running": ({"p": "running"}, "after p (running)"),
    "staged": ({"p": "staged"}, "after p (staged)"),
    "error": ({"p": "error"}, "cancel: after p ended with status error"),
    "terminated": ({"p": "terminated"}, "cancel: after p ended with status terminated"),
    "missing": ({}, "cancel: after p: no such run"),
}


@pytest.mark.parametrize("statuses, expected", AFTER.values(), ids=AFTER.keys())
def test_after(statuses, expected):
    check(numbered(entry("a", after=("p",))), Box(statuses=statuses), {"a": expected})


def test_after_several_runs():
    statuses = {RUN: "running", "q": "completed", "s": "pending", "x": "error"}
    check(numbered(entry("a", after=(RUN, "q", "s")), entry("b", after=(RUN, "x"))), Box(statuses=statuses), {
        "a": "after 1a2b3c4d (running), after s (pending)",
        "b": "cancel: after x ended with status error",
    })


def test_cancel_comes_out_of_plan_even_when_the_box_is_full_and_paused():
    box = Box(gpus=gpus(1), running=(hold("r", 0),), paused=True, statuses={"p": "error"})
    entries = numbered(entry("a", 1), entry("b", 1, after=("p",)), entry("c"))
    assert plan(entries, box) == [Cancel("b", "after p ended with status error")]


OFF = "queue processing is off ('guildctl queue start')"

LIMITS = {
    "processing off holds staged runs": (
        Box(gpus=gpus(2), paused=True),
        [entry("a", 1), entry("b")],
        {"a": OFF, "b": OFF},
    ),
    "processing off doesn't hold front runs (started explicitly, or without --stage)": (
        Box(gpus=gpus(2), paused=True),
        [entry("a", 1), entry("f", 1, front=True), entry("g", front=True)],
        {"f": (0,), "g": (), "a": OFF},
    ),
    "run-once takes one staged run at a time": (
        Box(gpus=gpus(4), run_once=True),
        [entry("a", 1), entry("b", 1), entry("c")],
        {"a": (0,), "b": "run-once: one staged run at a time", "c": "run-once: one staged run at a time"},
    ),
    "run-once waits for the staged run it took": (
        Box(gpus=gpus(4), run_once=True, running=(hold("r", 0, staged=True),)),
        [entry("a", 1), entry("f", 1, front=True)],
        {"f": (1,), "a": "run-once: one staged run at a time"},
    ),
    "run-once doesn't wait for runs started explicitly": (
        Box(gpus=gpus(4), run_once=True, running=(hold("r", 0),)),
        [entry("a", 1), entry("b")],
        {"a": (1,), "b": "run-once: one staged run at a time"},
    ),
    "run-once still places the run on free GPUs": (
        Box(gpus=gpus(3), run_once=True, running=(hold("r", 0, 2),)),
        [entry("a", 1), entry("b", 1)],
        {"a": (1,), "b": "run-once: one staged run at a time"},
    ),
    "wait-for-running holds staged runs while other runs run": (
        Box(gpus=gpus(2), blocking=(RUN,)),
        [entry("a", 1), entry("f", 1, front=True)],
        {"f": (0,), "a": "wait-for-running: run 1a2b3c4d running"},
    ),
    "queue gpus= runs staged runs without a GPU request on its GPUs": (
        Box(gpus=gpus(4), queue_gpus=(2, 3)),
        [entry("a"), entry("n", no_gpus=True), entry("c", 1), entry("m", devices=(0,)), entry("f", front=True)],
        {"f": (), "a": (2, 3), "n": (), "c": (0,),
         "m": "GPU spec mismatch: the run asks for GPUs 0, the queue has 2-3"},
    ),
    "queue gpus= waits for its GPUs": (
        Box(gpus=gpus(2), queue_gpus=(1,), running=(hold("r", 1),)),
        [entry("a")],
        {"a": "GPU 1 is held by run r"},
    ),
    "named queue limit counts running runs and starts": (
        Box(gpus=gpus(4), running=(hold("r", 0, queue="q"),), queue_limits={"q": 2}),
        [entry("a", 1, queue="q"), entry("b", queue="q"), entry("c", 1)],
        {"a": (1,), "b": "queue 'q' is full (2 of 2 running)", "c": (2,)},
    ),
    "default queue limit": (
        Box(queue_limits={"": 1}),
        [entry("a"), entry("b")],
        {"a": (), "b": "queue 'default' is full (1 of 1 running)"},
    ),
    "front runs are not held by queue limits": (
        Box(queue_limits={"q": 0}),
        [entry("a", queue="q"), entry("f", queue="q", front=True)],
        {"f": (), "a": "queue 'q' is full (1 of 0 running)"},
    ),
    "user cap": (
        Box(gpus=gpus(8), running=(hold("r", 0, 1, 2, 3, user="alice"),), user_gpu_cap=4),
        [entry("a", 1, user="alice"), entry("b", 1, user="bob")],
        {"a": "user cap reached: alice holds 4 of 4 GPUs", "b": (4,)},
    ),
    "user cap counts grants in this plan": (
        Box(gpus=gpus(8), running=(hold("r", 0, user="alice"),), user_gpu_cap=3),
        [entry("a1", 1, user="alice"), entry("a2", 2, user="alice"), entry("a3", 1, user="alice")],
        {"a1": (1,), "a2": "user cap reached: alice holds 2 of 3 GPUs", "a3": (2,)},
    ),
    "user cap holds front runs too": (
        Box(gpus=gpus(8), running=(hold("r", 0, user="alice"),), user_gpu_cap=1),
        [entry("f", 1, user="alice", front=True)],
        {"f": "user cap reached: alice holds 1 of 1 GPUs"},
    ),
    "CPU slots count running CPU-only runs and starts": (
        Box(running=(hold("r"), hold("g", 0)), gpus=gpus(1), cpu_slots=2),
        [entry("a"), entry("b")],
        {"a": (), "b": "all 2 CPU slots are in use"},
    ),
    "front CPU-only runs ignore CPU slots, and take one": (
        Box(running=(hold("r"),), cpu_slots=2),
        [entry("a"), entry("f", front=True), entry("b")],
        {"f": (), "a": "all 2 CPU slots are in use", "b": "all 2 CPU slots are in use"},
    ),
    "front CPU-only runs start when the slots are full": (
        Box(running=(hold("r"), hold("s")), cpu_slots=2),
        [entry("a"), entry("f", front=True)],
        {"f": (), "a": "all 2 CPU slots are in use"},
    ),
    "CPU slots leave GPU runs alone": (
        Box(running=(hold("r"),), gpus=gpus(1), cpu_slots=1),
        [entry("a"), entry("b", 1)],
        {"a": "all 1 CPU slots are in use", "b": (0,)},
    ),
}


@pytest.mark.parametrize("box, entries, expected", LIMITS.values(), ids=LIMITS.keys())
def test_limits(box, entries, expected):
    check(numbered(*entries), box, expected)


def test_cpu_slot_goes_to_the_first_in_order():
    box = Box(gpus=gpus(1), running=(hold("g", 0),), cpu_slots=1)
    entries = numbered(entry("a"), entry("b", priority=1), entry("c"))
    assert plan(entries, box) == [Start("b", (), 0)]


# Refusing at submit

NEVER_FITS = {
    "CPU-only": (Request(), 4, ""),
    "fits": (Request(4), 4, ""),
    "too many GPUs": (Request(9), 4, "--gpus 9: this box has 4 GPUs"),
    "too many GPUs, 1 GPU": (Request(2), 1, "--gpus 2: this box has 1 GPU"),
    "no such device": (Request(2, (0, 7)), 4, "--gpus 0,7: there is no GPU 7 (GPUs: 0-3)"),
    "device named twice": (Request(2, (1, 1)), 4, "--gpus 1,1: GPU 1 is named twice"),
    "too much memory": (Request(1, (), 200 * GIB), 4, "--gpu-memory 200.0 GiB: the largest GPU has 80.0 GiB"),
    "memory fits": (Request(4, (), 80 * GIB), 4, ""),
    "no GPUs": (Request(1), 0, "this box has no GPUs"),
    "no GPUs, devices": (Request(1, (0,)), 0, "this box has no GPUs"),
    "negative gpus": (Request(-1), 4, "--gpus -1: must be 0 or more"),
    "negative memory": (Request(1, (), -GIB), 4, "--gpu-memory -1.0 GiB: must be 0 or more"),
    "memory without GPUs": (Request(0, (), GIB), 4, "--gpu-memory 1.0 GiB: needs --gpus"),
}


@pytest.mark.parametrize("request_, count, expected", NEVER_FITS.values(), ids=NEVER_FITS.keys())
def test_never_fits(request_, count, expected):
    assert never_fits(request_, gpus(count)) == expected


MIXED = (gpu(0, total=80), gpu(1, total=24), gpu(2, total=24), gpu(4, total=80))

NEVER_FITS_MIXED = {
    "device too small": (Request(2, (0, 1), 40 * GIB), "--gpu-memory 40.0 GiB: GPU 1 has 24.0 GiB"),
    "too few big GPUs": (Request(3, (), 40 * GIB), "--gpu-memory 40.0 GiB: only 2 GPUs have that much, --gpus 3 needs 3"),
    "enough big GPUs": (Request(2, (), 40 * GIB), ""),
    "gap in indices": (Request(1, (3,)), "--gpus 3: there is no GPU 3 (GPUs: 0-2,4)"),
}


@pytest.mark.parametrize("request_, expected", NEVER_FITS_MIXED.values(), ids=NEVER_FITS_MIXED.keys())
def test_never_fits_mixed_gpus(request_, expected):
    assert never_fits(request_, MIXED) == expected


# Invariants over random boxes


def random_case(rng):
    n = rng.randint(0, 8)
    box_gpus = []
    for i in range(n):
        total = rng.choice([16, 24, 40, 80])
        foreign_memory = rng.choice([0, 0, 0, 2, total // 2])
        foreign = ("pid 1 (eve)",) if foreign_memory and rng.random() < 0.7 else ()
        free = rng.randint(0, total - foreign_memory)
        box_gpus.append(gpu(i, total, free, foreign, foreign_memory))
    running, exclusive, shared = [], set(), set()
    for k in range(rng.randint(0, 6)):
        devices = tuple(sorted(rng.sample(range(n), rng.randint(0, min(n, 2)))))
        memory = rng.choice([0, 4, 8]) if devices else 0
        taken = exclusive | (set() if memory else shared)
        if taken.intersection(devices):  # the daemon never made such a grant
            continue
        (shared if memory else exclusive).update(devices)
        running.append(hold(f"h{k}", *devices, user=rng.choice("xyz"), memory=memory,
                            queue=rng.choice(["", "q"]), started=rng.randint(0, 100), staged=rng.random() < 0.2))
    statuses = {f"p{k}": rng.choice(["completed", "completed", "running", "error"]) for k in range(4)}
    box = Box(
        gpus=tuple(box_gpus),
        links={(a, b): rng.choice(["NV12", "NV4", "PIX", "SYS"]) for a in range(n) for b in range(a + 1, n)
               if rng.random() < 0.8},
        running=tuple(running),
        paused=rng.random() < 0.1,
        run_once=rng.random() < 0.2,
        blocking=("b",) if rng.random() < 0.1 else (),
        queue_limits={"q": rng.randint(0, 3)} if rng.random() < 0.5 else {},
        user_gpu_cap=rng.choice([0, 0, 2, 4]),
        cpu_slots=rng.choice([0, 1, 3]),
        statuses=statuses,
    )
    entries = []
    for k in range(rng.randint(0, 30)):
        kind = rng.random()
        if kind < 0.2:
            request = Request()
        elif kind < 0.4 and n:
            devices = tuple(rng.sample(range(n), rng.randint(1, min(n, 3))))
            request = Request(len(devices), devices, rng.choice([0, 0, 6 * GIB]))
        else:
            request = Request(rng.randint(1, 4), (), rng.choice([0, 0, 6 * GIB, 20 * GIB]))
        after = (rng.choice(list(statuses) + ["gone"]),) if rng.random() < 0.2 else ()
        entries.append(Entry(f"e{k}", rng.choice("xyz"), request, rng.randint(0, 50), rng.choice([0, 0, 1]),
                             rng.choice(["", "q"]), after, rng.random() < 0.1))
    return box, entries


@pytest.mark.parametrize("seed", range(300))
def test_random_boxes_are_never_overcommitted(seed):
    box, entries = random_case(random.Random(seed))
    decisions = plan(entries, box)
    assert decisions == [d for d in explain(entries, box) if not isinstance(d, Wait)]
    assert sorted(e.run_id for e in order(entries, box)) == sorted(e.run_id for e in entries)
    by_id = {e.run_id: e for e in entries}
    states = {g.index: g for g in box.gpus}
    exclusive = {i for h in box.running if not h.gpu_memory for i in h.devices}
    holders = {i for h in box.running for i in h.devices}
    granted = {i: sum(h.gpu_memory for h in box.running if i in h.devices) for i in states}
    granted_now = dict.fromkeys(states, 0)
    user_gpus, queue_running, cpu_running = {}, {}, 0
    staged_running = sum(h.staged for h in box.running)
    for h in box.running:
        user_gpus[h.user] = user_gpus.get(h.user, 0) + len(h.devices)
        queue_running[h.queue] = queue_running.get(h.queue, 0) + 1
        cpu_running += not h.devices
    for d in decisions:
        if not isinstance(d, Start):
            continue
        e = by_id[d.run_id]
        assert len(d.devices) == (len(e.request.devices) if e.request.devices else e.request.gpus)
        assert len(set(d.devices)) == len(d.devices) <= len(states)
        assert d.gpu_memory == (e.request.gpu_memory if d.devices else 0)
        assert all(box.statuses.get(a) == "completed" for a in e.after)
        for i in d.devices:
            g = states[i]
            assert i not in exclusive, f"GPU {i} granted while held exclusively"
            if d.gpu_memory:
                granted[i] += d.gpu_memory
                granted_now[i] += d.gpu_memory
                assert granted[i] <= g.memory_total - g.foreign_memory, f"GPU {i} overcommitted"
                assert granted_now[i] <= g.memory_free, f"GPU {i} overcommitted"
            else:
                assert i not in holders and not g.foreign, f"GPU {i} is not free for an exclusive run"
                exclusive.add(i)
            holders.add(i)
        user_gpus[e.user] = user_gpus.get(e.user, 0) + len(d.devices)
        if box.user_gpu_cap and d.devices:
            assert user_gpus[e.user] <= box.user_gpu_cap
        if not e.front:
            assert not box.paused and not box.blocking
            if box.run_once:
                assert not staged_running, "run-once started a second staged run"
            staged_running += 1
            limit = box.queue_limits.get(e.queue)
            assert limit is None or queue_running.get(e.queue, 0) < limit
            if not d.devices and box.cpu_slots:
                assert cpu_running < box.cpu_slots
        queue_running[e.queue] = queue_running.get(e.queue, 0) + 1
        cpu_running += not d.devices
    cancelled = {d.run_id for d in decisions if isinstance(d, Cancel)}
    for e in entries:
        failed = any(box.statuses.get(a) in (None, "error", "terminated") for a in e.after)
        assert (e.run_id in cancelled) == failed
