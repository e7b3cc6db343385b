"""Start-up (guildd.reconcile) on fakes: one daemon's launcher leaves a run in a temp GUILD_HOME,
its dir and index row then left as a daemon that died would leave them; the next daemon's
launcher (a real index, Runtime, RunStates and Catalog; a fake executor, queue and followers)
adopts it, records its end, or ends it as an error with the reason in its output."""

import asyncio
import os
from typing import Callable

import psutil
import pytest

from guild_common import rundir
from guild_common.pb import guild_pb2 as pb
from guildd import catalog, children, pipeline, reconcile
from guildd.runstate import COMPLETED, ERROR, PENDING, RUNNING, STAGED, TERMINATED
from tests.unit.test_launcher import USER, World, spec

LIVE_PID = os.getpid()  # a live process: this test's own


def shim(alive: bool) -> Callable[[World, str], None]:
    """The run's shim as the index records it: alive, or dead (its pid now another process's)."""
    started = psutil.Process(LIVE_PID).create_time() if alive else 1.0

    def leave(w: World, run_id: str) -> None:
        w.store.update(run_id, shim_pid=LIVE_PID, shim_started=started)

    return leave


def ended(exit_status: int) -> Callable[[World, str], None]:
    """The shim died after it recorded its process's exit."""

    def leave(w: World, run_id: str) -> None:
        shim(alive=False)(w, run_id)
        rundir.write_attrs(w.run_dir(run_id), {"exit_status": exit_status, "stopped": rundir.now_us()})

    return leave


def own_process_alive(w: World, run_id: str) -> None:
    """The shim is gone but the operation's process, in the run's LOCK, still runs."""
    shim(alive=False)(w, run_id)
    rundir.lock_file(w.run_dir(run_id)).write_text(f"{LIVE_PID}\n")


def pid_reused(w: World, run_id: str) -> None:
    """The run started an hour ago (before a reboot, say); its LOCK's pid is a process's made
    since (this test's: made minutes ago at most)."""
    own_process_alive(w, run_id)
    an_hour_ago = rundir.now_us() - 3600 * 10**6
    rundir.write_attr(w.run_dir(run_id), "started", an_hour_ago)
    w.store.update(run_id, started_us=an_hour_ago)


UNWATCHED = ": its process ended while no daemon watched, with no end recorded"


def unwritable_end(w: World, run_id: str) -> None:
    """A dead shim, and a directory where the run's exit_status belongs."""
    shim(alive=False)(w, run_id)
    (rundir.attrs_dir(w.run_dir(run_id)) / "exit_status").mkdir()


def damaged_steps(w: World, run_id: str) -> None:
    """A dead shim, and a pipeline-steps file that is not a protobuf."""
    shim(alive=False)(w, run_id)
    (rundir.guild_dir(w.run_dir(run_id)) / pipeline.STEPS_FILE).write_bytes(b"\xff\xff\xff\xff not a protobuf")


def untouched(w: World, run_id: str) -> None:
    pass


def gpu_run() -> pb.RunSpec:
    return spec(resources=pb.ResourceRequest(gpus=1))


# (spec, how the run is left, still in the queue) ->
#   (status, exit status, pid adopted (None: not adopted), has a start time, in its output)
CASES = [
    pytest.param(spec(), shim(alive=True), False, (RUNNING, None, LIVE_PID, True, None),
                 id="running, shim alive: adopted"),
    pytest.param(spec(), own_process_alive, False, (RUNNING, None, LIVE_PID, True, None),
                 id="running, shim gone, its process alive: adopted by its pid"),
    pytest.param(spec(), ended(0), False, (COMPLETED, 0, None, True, None),
                 id="shim dead, exit 0 recorded: completed"),
    pytest.param(spec(), ended(3), False, (ERROR, 3, None, True, None),
                 id="shim dead, exit 3 recorded: error"),
    pytest.param(spec(), ended(-15), False, (TERMINATED, -15, None, True, None),
                 id="shim dead, stopped by a signal: terminated"),
    pytest.param(spec(), shim(alive=False), False, (ERROR, 1, None, True, UNWATCHED),
                 id="shim dead, no end recorded: error, why in its output"),
    pytest.param(spec(), pid_reused, False, (ERROR, 1, None, True, UNWATCHED),
                 id="shim gone, its LOCK's pid now a later process's: error, that process never adopted"),
    pytest.param(gpu_run(), untouched, False, (ERROR, 1, None, False, None),
                 id="pending, not queued: error without a start time"),
    pytest.param(gpu_run(), untouched, True, (PENDING, None, None, False, None),
                 id="pending in the queue: waits on"),
    pytest.param(spec(), unwritable_end, False, (ERROR, None, None, True, " at start-up: IsADirectoryError"),
                 id="end cannot be written: error, why in its output"),
    pytest.param(spec(), damaged_steps, False, (ERROR, 1, None, True, " at start-up: DecodeError"),
                 id="damaged pipeline-steps: error, why in its output"),
]


@pytest.mark.parametrize("run_spec, leave, queued, expected", CASES)
def test_a_run_left_by_a_previous_daemon(tmp_path, run_spec, leave, queued, expected):
    status, exit_status, adopted, started, said = expected

    async def go() -> None:
        before = World(tmp_path)
        run_id = (await before.start(run_spec)).id
        await before.runtime.io(leave, before, run_id)
        await before.runtime.close_tasks()
        before.close()

        w = World(tmp_path)
        try:
            if queued:
                w.queue.entries[run_id] = None
            await reconcile.reconcile(w.launcher, w.queue, w.catalog.sync_index, rundir.now_us())
            await w.runtime.settle()
            rec = await w.get(run_id)
            assert (rec.status, rec.exit_status) == (status, exit_status)
            assert w.executor.watched.get(run_id) == adopted
            assert (run_id in w.drivers) == (adopted is not None)
            assert (run_id in w.followers) == (adopted is not None)
            assert (rec.started_us > 0) == started
            assert (w.attr(run_id, "started") is not None) == started
            output = rundir.output_path(w.run_dir(run_id)).read_text()
            if said is None:
                assert "guildd: run ended as an error" not in output
            else:
                assert f"guildd: run ended as an error{said}" in output
        finally:
            await w.runtime.close_tasks()
            w.close()

    asyncio.run(go())


def test_one_damaged_run_does_not_stop_the_others(tmp_path):
    async def go() -> None:
        before = World(tmp_path)
        damaged = (await before.start()).id
        good = (await before.start()).id
        await before.runtime.io(damaged_steps, before, damaged)
        await before.runtime.io(ended(0), before, good)
        await before.runtime.close_tasks()
        before.close()

        w = World(tmp_path)
        try:
            await reconcile.reconcile(w.launcher, w.queue, w.catalog.sync_index, rundir.now_us())
            await w.runtime.settle()
            assert [(await w.get(r)).status for r in (damaged, good)] == [ERROR, COMPLETED]
        finally:
            await w.runtime.close_tasks()
            w.close()

    asyncio.run(go())


def test_a_run_dir_a_killed_daemon_left_half_made_is_removed_and_never_listed(tmp_path):
    async def go() -> None:
        before = World(tmp_path)
        whole = (await before.start(stage=True)).id
        half = (await before.start(stage=True)).id
        assert not catalog.being_made(before.run_dir(whole))  # a run made is unmarked
        # Killed after the run was indexed, before its marker went (the last step).
        catalog.making_marker(before.run_dir(half)).touch()
        await before.runtime.close_tasks()
        before.close()

        w = World(tmp_path)
        try:
            await reconcile.reconcile(w.launcher, w.queue, w.catalog.sync_index, rundir.now_us())
            await w.runtime.settle()
            assert await w.runtime.io(w.store.get, half) is None
            assert not os.path.exists(w.run_dir(half))
            assert (await w.get(whole)).status == STAGED
        finally:
            await w.runtime.close_tasks()
            w.close()

    asyncio.run(go())


@pytest.mark.parametrize("linked", [False, True], ids=["being made by its batch", "linked into its batch"])
def test_a_trial_a_killed_daemon_made_but_did_not_start_is_left_to_its_batch(tmp_path, linked):
    async def go() -> None:
        before = World(tmp_path)
        parent = (await before.start()).id  # running, its shim alive: adopted, as a resumed batch would be
        await before.runtime.io(shim(alive=True), before, parent)
        after_us = rundir.now_us()
        trial = (await before.start(gpu_run())).id  # made pending; not queued below: the daemon died first
        starting = children.Starting("trial-1", "train.py", {"lr": 0.1}, USER, after_us)
        await before.runtime.io(children._write_starting, before.run_dir(parent), starting)
        if linked:
            await before.runtime.io(children.link, before.run_dir(parent), "trial-1", trial)
        lone = (await before.start(gpu_run())).id  # made by no parent: ended as an error
        await before.runtime.close_tasks()
        before.close()

        w = World(tmp_path)
        try:
            await reconcile.reconcile(w.launcher, w.queue, w.catalog.sync_index, rundir.now_us())
            await w.runtime.settle()
            assert (await w.get(trial)).status == PENDING  # its batch starts it (Launcher.start_made)
            assert (await w.get(lone)).status == ERROR
            assert (await w.get(parent)).status == RUNNING
        finally:
            await w.runtime.close_tasks()
            w.close()

    asyncio.run(go())
