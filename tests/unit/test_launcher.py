"""The launcher (guildd.launcher) on fakes: runs created, started, ended, stopped and restarted
in a temp GUILD_HOME with a real index, Runtime, RunStates and Catalog. The executor, queue and
followers are fakes; a test plays each shim (its end written in the run dir, then its exit)."""

import asyncio
import errno
import os
import pathlib
import pwd
import shutil
import sqlite3
import tempfile
from typing import Any, Awaitable, Callable, Optional

import pytest

from guild_common import errors, home as homelib, rundir
from guild_common.pb import guild_pb2 as pb
from guildd import catalog as cataloglib, convert, diskspace, executor as execlib, launcher as launcherlib, manage, queue as queuelib, runs
from guildd.drivers import Drivers
from guildd.launcher import Launcher
from guildd.runstate import COMPLETED, ERROR, PENDING, RUNNING, STAGED, TERMINATED, RunStates
from guildd.runtime import Runtime
from guildd.store import RunRecord, Store

USER = "alice"


class TrackedRuntime(Runtime):
    """The daemon's Runtime; a test can wait for the background tasks it spawned."""

    def __init__(self) -> None:
        super().__init__()
        self.spawned: list[asyncio.Task] = []

    def spawn(self, coro: Any, name: str) -> asyncio.Task:
        task = super().spawn(coro, name)
        self.spawned.append(task)
        return task

    async def settle(self) -> None:
        """Waits for every task spawned so far, and those they spawn; re-raises a failure."""
        while pending := [t for t in self.spawned if not t.done()]:
            await asyncio.gather(*pending, return_exceptions=True)
        for task in self.spawned:
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()

    def names(self) -> list[str]:
        return [t.get_name() for t in self.spawned]


class FakeShimServer:
    """Executor.shims: records each launch and answers with a made-up shim (or `error`)."""

    def __init__(self) -> None:
        self.launches: list[Any] = []
        self.error: Optional[BaseException] = None

    def spawn(self, launch: Any) -> execlib.Shim:
        if self.error is not None:
            raise self.error
        self.launches.append(launch)
        return execlib.Shim(40000 + len(self.launches), 0.0)


class FakeExecutor:
    """The Executor as the launcher uses it; `exit` plays a shim's end."""

    def __init__(self) -> None:
        self.shims = FakeShimServer()
        self.watched: dict[str, int] = {}  # run id -> shim pid
        self.signalled: list[str] = []
        self.on_exit: Callable[[str], None] = lambda run_id: None

    def watch(self, run_id: str, pid: int) -> None:
        self.watched[run_id] = pid

    def signal(self, run_id: str) -> bool:
        if run_id not in self.watched:
            return False
        self.signalled.append(run_id)
        return True

    def exit(self, run_dir: Any, run_id: str, exit_status: Optional[int]) -> None:
        """The shim records its process's exit (unless None: it died first), then ends."""
        if exit_status is not None:
            rundir.write_attrs(run_dir, {"exit_status": exit_status, "stopped": rundir.now_us()})
        self.watched.pop(run_id, None)
        self.on_exit(run_id)


class FakePreemptions:
    """guildd.requeue.Preemptions as the launcher asks it: no run is ever preempted."""

    def ended(self, run_id: str, stopped_by_user: bool) -> bool:
        return False


class FakeQueue:
    """The Queue as the launcher uses it: entries kept, nothing placed."""

    def __init__(self) -> None:
        self.entries: dict[str, Any] = {}
        self.released: list[str] = []
        self.add_error: Optional[BaseException] = None
        self.preemptions = FakePreemptions()

    async def check_request(self, request: Any) -> None:
        pass

    async def load(self) -> None:
        pass

    async def add(self, run_id: str, user: str, resources: Any, wants: Any, front: bool, env: Any = None,
                  stop_after: float = 0.0) -> None:
        if self.add_error is not None:
            raise self.add_error
        self.entries[run_id] = resources

    def discard(self, run_id: str) -> None:
        self.entries.pop(run_id, None)

    def release(self, run_id: str) -> None:
        self.released.append(run_id)

    def processing(self) -> dict[str, Any]:
        return {"on": True, "run_once": False, "gpus": ()}


class FakeFollowers:
    """Followers: which runs are followed, and which finished (their output all indexed)."""

    def __init__(self) -> None:
        self.followed: set[str] = set()
        self.finished: list[str] = []
        self.dropped: list[str] = []

    def follow(self, run_id: str, offset: int, scalar_config: Any = None) -> None:
        self.followed.add(run_id)

    def listen(self, run_id: str, listener: Any) -> Any:
        return lambda: None  # no batch here hears scalars

    async def finish(self, run_id: str) -> None:
        self.followed.discard(run_id)
        self.finished.append(run_id)

    async def drop(self, run_id: str) -> None:
        self.followed.discard(run_id)
        self.dropped.append(run_id)

    def following(self, run_id: str) -> bool:
        return run_id in self.followed

    def __contains__(self, run_id: str) -> bool:
        return run_id in self.followed

    async def scalars(self, run_id: str) -> list:
        return []


class World:
    """A Launcher over a temp GUILD_HOME, built on the running loop."""

    def __init__(self, home: Any, shared: bool = False) -> None:
        self.home = home
        homelib.runs_dir(home).mkdir(parents=True, exist_ok=True)
        self.runtime = TrackedRuntime()
        self.store = Store(homelib.index_path(home), homelib.runs_dir(home))
        self.reserve = diskspace.Reserve(home)
        self.reserve.take()
        self.states = RunStates(self.store, self.run_dir, self.runtime, asyncio.get_running_loop())
        self.drivers = Drivers()
        self.executor = FakeExecutor()
        self.queue = FakeQueue()
        self.followers = FakeFollowers()
        self.catalog = cataloglib.Catalog(self.runtime, self.store, home, self.queue.discard)
        self.launcher = Launcher(self.runtime, self.states, self.store, home, self.executor, self.drivers, self.queue,
                                 self.reserve, self.followers, self.catalog.changing_dirs, self.catalog.delete_runs, shared=shared)
        self.executor.on_exit = self.launcher.on_shim_exit

    def run_dir(self, run_id: str) -> Any:
        return homelib.run_dir(self.home, run_id)

    async def get(self, run_id: str) -> RunRecord:
        rec = await self.runtime.io(self.store.get, run_id)
        assert rec is not None
        return rec

    async def start(self, run_spec: Optional[pb.RunSpec] = None, stage: bool = False,
                    wants: Optional[queuelib.Wants] = None, user: str = USER) -> RunRecord:
        return await self.launcher.start_run(run_spec or spec(), stage, user, wants)

    async def exit(self, run_id: str, exit_status: Optional[int]) -> RunRecord:
        """Its shim ends; returns the run once the launcher is done with it."""
        self.executor.exit(self.run_dir(run_id), run_id, exit_status)
        await self.runtime.settle()
        return await self.get(run_id)

    def attr(self, run_id: str, name: str) -> Any:
        return rundir.read_attr(self.run_dir(run_id), name)

    def close(self) -> None:
        self.runtime.io_submit(self.store.close).result()
        self.runtime.shutdown()


def spec(**kw: Any) -> pb.RunSpec:
    """A script run's spec: `python train.py --lr 0.1`."""
    fields: dict[str, Any] = dict(op_name="train.py", opref="script:/p '' '' train.py", cmd_args=["python", "train.py", "__flag_args__"],
                                  flags_json='{"lr": 0.1}', user_flags_json='{"lr": 0.1}')
    return pb.RunSpec(**{**fields, **kw})


def _worlds(home: Any, monkeypatch: pytest.MonkeyPatch, shared: bool = False) -> Callable[[Callable[[World], Awaitable[Any]]], Any]:
    monkeypatch.setenv("GUILD_HOME", str(home))

    def run(scenario: Callable[[World], Awaitable[Any]]) -> Any:
        async def main() -> Any:
            w = World(home, shared)
            try:
                return await scenario(w)
            finally:
                await w.runtime.close_tasks()
                w.close()

        return asyncio.run(main())

    return run


@pytest.fixture
def world(tmp_path, monkeypatch):
    """Runs `scenario(world)` on a fresh loop, with the world built on it; returns its result."""
    return _worlds(tmp_path, monkeypatch)


@pytest.fixture
def shared_world(monkeypatch):
    """`world` for a shared daemon (guildd --shared, as root), its home where alice can reach it."""
    if os.geteuid() != 0:
        pytest.skip("a shared daemon runs as root")
    try:
        pwd.getpwnam(USER)
    except KeyError:
        pytest.skip(f"needs the account {USER}")
    home = pathlib.Path(tempfile.mkdtemp(prefix="guild-shared-"))
    home.chmod(0o755)
    yield _worlds(home, monkeypatch, shared=True)
    shutil.rmtree(home)


def test_a_run_started_now_is_running_and_driven(world):
    async def go(w):
        rec = await w.start()
        assert rec.status == RUNNING and rec.started_us > 0
        assert rec.id in w.drivers and rec.id in w.followers
        assert w.executor.watched == {rec.id: rec.shim_pid}
        (launch,) = w.executor.shims.launches
        assert launch.cmd == ["python", "train.py", "--lr", "0.1"]
        assert launch.env["RUN_ID"] == rec.id
        assert w.attr(rec.id, "cmd") == launch.cmd

    world(go)


EXITS = [
    pytest.param(0, (COMPLETED, 0), id="exit 0: completed"),
    pytest.param(1, (ERROR, 1), id="exit 1: error"),
    pytest.param(-15, (TERMINATED, -15), id="killed by a signal: terminated"),
    pytest.param(None, (ERROR, 1), id="shim died recording nothing: error"),
]


@pytest.mark.parametrize("exit_status, expected", EXITS)
def test_a_shims_exit_ends_the_run(world, exit_status, expected):
    async def go(w):
        run_id = (await w.start()).id
        rec = await w.exit(run_id, exit_status)
        assert (rec.status, rec.exit_status) == expected
        assert rec.stopped_us > 0 and rec.shim_pid == 0
        assert run_id not in w.drivers and run_id not in w.followers
        assert w.followers.finished == [run_id]
        assert run_id in w.queue.released
        assert w.attr(run_id, "exit_status") == expected[1]

    world(go)


STOPS = [
    pytest.param(spec(), (TERMINATED, -15), id="a plain op ends terminated"),
    pytest.param(spec(stoppable=True), (COMPLETED, 0), id="a stoppable op ends completed"),
]


@pytest.mark.parametrize("run_spec, expected", STOPS)
def test_stopping_a_running_run_signals_its_shim(world, run_spec, expected):
    async def go(w):
        run_id = (await w.start(run_spec)).id
        stopped = await w.launcher.stop_runs([run_id[:8]])
        assert [r.id for r in stopped] == [run_id]
        assert w.executor.signalled == [run_id]
        assert (await w.get(run_id)).status == RUNNING  # until its shim ends
        rec = await w.exit(run_id, -15)
        assert (rec.status, rec.exit_status) == expected
        assert w.attr(run_id, "exit_status") == expected[1]

    world(go)


def test_stopping_all_stops_only_the_running_runs(world):
    async def go(w):
        running = (await w.start()).id
        staged = (await w.start(stage=True)).id
        stopped = await w.launcher.stop_runs([])
        assert [r.id for r in stopped] == [running]
        assert w.executor.signalled == [running]
        assert (await w.get(staged)).status == STAGED

    world(go)


NOT_STARTED = [
    pytest.param(dict(stage=True), STAGED, id="staged"),
    pytest.param(dict(run_spec=spec(resources=pb.ResourceRequest(gpus=1))), PENDING, id="pending for GPUs"),
    pytest.param(dict(wants=queuelib.Wants(queue="night")), PENDING, id="pending in a named queue"),
]


@pytest.mark.parametrize("how, status", NOT_STARTED)
def test_stopping_a_run_that_never_started_terminates_it(world, how, status):
    async def go(w):
        before = await w.start(**how)
        assert before.status == status and before.id in w.queue.entries
        (rec,) = await w.launcher.stop_runs([before.id])
        assert (rec.status, rec.exit_status) == (TERMINATED, -15)
        assert rec.started_us == before.started_us  # the stop stamps no start (staging does)
        assert w.attr(rec.id, "started") == (before.started_us or None)
        assert before.id not in w.queue.entries
        assert w.executor.signalled == [] and w.executor.shims.launches == []

    world(go)


SPAWN_FAILS = [
    pytest.param(OSError("cannot start a shim: fork failed"), errors.FailedPrecondition, "fork failed",
                 id="no shim: failed precondition"),
    pytest.param(OSError(errno.ENOSPC, "No space left on device"), errors.ResourcesUnavailable, "no space left on device",
                 id="full disk: resources unavailable"),
]


@pytest.mark.parametrize("error, raised, reason", SPAWN_FAILS)
def test_a_run_whose_shim_cannot_start_is_an_error(world, error, raised, reason):
    async def go(w):
        w.executor.shims.error = error
        with pytest.raises(raised, match=reason) as info:
            await w.start()
        (rec,) = (await w.runtime.io(w.store.list))[0]
        assert rec.id[:8] in str(info.value)
        assert (rec.status, rec.exit_status) == (ERROR, 1)
        assert rec.id not in w.drivers and w.executor.watched == {}
        assert w.attr(rec.id, "exit_status") == 1

    world(go)


def full(*args: Any, **kw: Any) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def refuse_writes(target: str) -> Callable[[Any, pytest.MonkeyPatch], None]:
    """How a test breaks the making of a run half-way."""

    def snapshot(w: World, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(rundir, "write_opref", full)

    def index(w: World, monkeypatch: pytest.MonkeyPatch) -> None:
        def insert(record: RunRecord) -> None:
            raise sqlite3.OperationalError("database or disk is full")

        monkeypatch.setattr(w.store, "insert", insert)

    def queue(w: World, monkeypatch: pytest.MonkeyPatch) -> None:
        w.queue.add_error = OSError(errno.ENOSPC, "No space left on device")

    return {"snapshot": snapshot, "index": index, "queue": queue}[target]


MAKE_FAILS = [
    pytest.param(refuse_writes("snapshot"), {}, id="run dir half written"),
    pytest.param(refuse_writes("index"), {}, id="index row refused"),
    pytest.param(refuse_writes("queue"), dict(stage=True), id="queue entry refused"),
]


@pytest.mark.parametrize("breakage, how", MAKE_FAILS)
def test_a_run_that_cannot_be_made_leaves_nothing(world, monkeypatch, breakage, how):
    async def go(w):
        breakage(w, monkeypatch)
        with pytest.raises((OSError, sqlite3.Error)):
            await w.start(**how)
        assert list(homelib.runs_dir(w.home).iterdir()) == []
        assert (await w.runtime.io(w.store.list))[0] == []
        assert w.queue.entries == {}

    world(go)


# (writes of the end refused for a full disk) -> (tries to record it, whether it was tried again later)
FULL_AT_END = [
    pytest.param(1, (2, False), id="the reserve makes room at once"),
    pytest.param(2, (3, True), id="full past the reserve: recorded later"),
    pytest.param(4, (5, True), id="full for a while: tried until it goes through"),
]


@pytest.mark.parametrize("refused, expected", FULL_AT_END)
def test_an_end_a_full_disk_holds_up_is_recorded_later(world, monkeypatch, refused, expected):
    monkeypatch.setattr(launcherlib, "END_RETRY_SECONDS", (0.001, 0.004))

    async def go(w):
        run_id = (await w.start()).id
        tries = []
        end = w.states.end

        def end_on_a_full_disk(*args: Any, **kw: Any) -> Any:
            tries.append(w.store.get(run_id).status)  # the index still says running
            if len(tries) <= refused:
                full()
            return end(*args, **kw)

        monkeypatch.setattr(w.states, "end", end_on_a_full_disk)
        rec = await w.exit(run_id, 0)
        assert (rec.status, rec.exit_status) == (COMPLETED, 0)
        assert (len(tries), f"end-{run_id[:8]}" in w.runtime.names()) == expected
        assert set(tries) == {RUNNING}
        assert run_id not in w.drivers and w.followers.finished == [run_id]
        assert not w.reserve.path.exists()  # freed for the end; taken again by the next new run

    world(go)


RESTARTS = [
    pytest.param(None, (RUNNING, 2), id="no GPUs: running again at once"),
    pytest.param(queuelib.Resources(gpus=1), (PENDING, 1), id="asks for a GPU: pending in the queue"),
]


@pytest.mark.parametrize("resources, expected", RESTARTS)
def test_restarting_an_ended_run_clears_its_old_end(world, resources, expected):
    async def go(w):
        run_id = (await w.start()).id
        await w.exit(run_id, 1)
        rec, offset = await w.launcher.restart_run(convert.Restart(run_id, flags_json='{"lr": 0.2}', resources=resources), USER)
        assert offset == rundir.output_size(w.run_dir(run_id))
        assert (rec.status, len(w.executor.shims.launches)) == expected
        assert (rec.exit_status, rec.stopped_us) == (None, 0)
        assert w.attr(run_id, "exit_status") is None and w.attr(run_id, "stopped") is None
        assert w.attr(run_id, "flags") == {"lr": 0.2}
        assert (run_id in w.queue.entries) == (rec.status == PENDING)

    world(go)


def test_restarting_an_active_run_is_refused(world):
    async def go(w):
        run_id = (await w.start()).id
        with pytest.raises(errors.FailedPrecondition, match="stop it before restarting"):
            await w.launcher.restart_run(convert.Restart(run_id), USER)
        assert (await w.get(run_id)).status == RUNNING and len(w.executor.shims.launches) == 1

    world(go)


DELETE_ON_SUCCESS = [
    pytest.param(0, True, id="completed: moved to the trash"),
    pytest.param(1, False, id="failed: kept"),
]


@pytest.mark.parametrize("exit_status, deleted", DELETE_ON_SUCCESS)
def test_delete_on_success(world, exit_status, deleted):
    async def go(w):
        run_id = (await w.start(spec(delete_on_success=True))).id
        rec = await w.exit(run_id, exit_status)
        assert rec.deleted == deleted
        assert w.run_dir(run_id).exists() != deleted
        assert (manage.trash_runs_dir(w.home) / run_id).exists() == deleted

    world(go)


def test_a_shared_daemons_run_is_its_owners_and_starts_as_them(shared_world):
    alice = pwd.getpwnam(USER)

    async def scenario(w: World) -> None:
        rec = await w.start(spec(env={"HOME": "/root", "USER": "root", "CUDA_VISIBLE_DEVICES": "0"}))
        run_dir = w.run_dir(rec.id)
        owners = {p.lstat().st_uid for p in [pathlib.Path(run_dir), *pathlib.Path(run_dir).rglob("*")]}
        assert owners == {alice.pw_uid}
        (launch,) = w.executor.shims.launches
        assert (launch.uid, launch.gid) == (alice.pw_uid, alice.pw_gid)
        assert {k: launch.env[k] for k in ("HOME", "USER", "LOGNAME", "CUDA_VISIBLE_DEVICES")} == {
            "HOME": alice.pw_dir, "USER": USER, "LOGNAME": USER, "CUDA_VISIBLE_DEVICES": ""}
        assert (await w.exit(rec.id, 0)).status == COMPLETED

    shared_world(scenario)


def test_a_shared_daemons_run_made_in_a_premade_dir_is_its_owners(shared_world):
    alice = pwd.getpwnam(USER)

    async def scenario(w: World) -> None:
        made = await w.launcher.premake(spec(), USER)
        rec = await w.launcher.start_run(spec(), False, USER, made=made)
        run_dir = w.run_dir(rec.id)
        owners = {p.lstat().st_uid for p in [pathlib.Path(run_dir), *pathlib.Path(run_dir).rglob("*")]}
        assert owners == {alice.pw_uid}

    shared_world(scenario)


def test_a_shared_daemon_runs_nothing_as_root(shared_world):
    async def scenario(w: World) -> None:
        with pytest.raises(errors.PermissionDenied, match="never runs code as root"):
            await w.start(user="root")
        assert os.listdir(homelib.runs_dir(w.home)) == []

    shared_world(scenario)


def test_a_project_dir_its_owner_cannot_read_is_refused(shared_world):
    async def scenario(w: World) -> None:
        project = pathlib.Path(w.home) / "roots-project"
        project.mkdir(mode=0o700)
        with pytest.raises(errors.PermissionDenied, match=f"cannot read project directory '{project}' as {USER}"):
            await w.start(spec(project_dir=str(project)))
        assert os.listdir(homelib.runs_dir(w.home)) == []

    shared_world(scenario)


@pytest.mark.parametrize(
    "env, granted, visible",
    [
        ({}, {}, ""),  # asked for none: sees none
        ({"CUDA_VISIBLE_DEVICES": "0,1"}, {}, ""),  # its caller's environment doesn't count
        ({"CUDA_VISIBLE_DEVICES": "0,1"}, {"CUDA_VISIBLE_DEVICES": "1", "GUILD_GPUS": "1"}, "1"),  # what it was granted
    ],
)
def test_a_confined_run_sees_only_the_gpus_it_was_granted(env, granted, visible):
    confined = runs.confined_gpus(env, granted)
    assert (confined["CUDA_VISIBLE_DEVICES"], confined["GUILD_GPUS"]) == (visible, visible)


def damaged_op(w: World, run_id: str) -> None:
    rundir.attrs_dir(w.run_dir(run_id)).joinpath("op").write_text("[not, an, op")


# (the run as a killed daemon left it, the spec its parent starts it with) ->
#   (status, queued, shim launches)
MADE = [
    pytest.param("made", spec(), (RUNNING, False, 1), id="made, not started: started now"),
    pytest.param("made", spec(resources=pb.ResourceRequest(gpus=1)), (PENDING, True, 0),
                 id="made, not started, asks for GPUs: queued"),
    pytest.param("queued", spec(), (PENDING, True, 0), id="queued already: left waiting"),
    pytest.param("running", spec(), (RUNNING, False, 1), id="running already: left running, started once"),
    pytest.param("damaged", spec(), (ERROR, False, 0), id="its op attr damaged: error, never left pending"),
]


@pytest.mark.parametrize("left, parent_spec, expected", MADE)
def test_a_child_a_killed_daemon_made_but_did_not_start_is_started_by_its_parent(world, left, parent_spec, expected):
    status, queued, launches = expected

    async def go(w):
        if left == "running":
            run_id = (await w.start()).id
        else:
            run_id = (await w.start(spec(resources=pb.ResourceRequest(gpus=1)))).id  # pending: made, not started
            if left != "queued":
                w.queue.discard(run_id)  # the daemon was killed before it queued or started it
            if left == "damaged":
                await w.runtime.io(damaged_op, w, run_id)
        await w.launcher.start_made(run_id, parent_spec, USER)
        await w.runtime.settle()
        rec = await w.get(run_id)
        assert rec.status == status
        assert (run_id in w.queue.entries) == queued
        assert len(w.executor.shims.launches) == launches
        if launches:
            assert w.executor.shims.launches[0].cmd == ["python", "train.py", "--lr", "0.1"]  # from its dir's attrs

    world(go)


def run_files(run_dir: Any) -> dict[str, Any]:
    """A run dir's files (relative path -> bytes), less what differs between any two runs."""
    base = pathlib.Path(run_dir)
    differ = {".guild/attrs/id", ".guild/attrs/initialized", ".guild/attrs/started", ".guild/attrs/cmd", ".guild/attrs/env"}
    return {str(p.relative_to(base)): p.read_bytes() for p in sorted(base.rglob("*"))
            if p.is_file() and str(p.relative_to(base)) not in differ}


def test_a_run_made_in_a_premade_dir_is_the_run_it_would_have_been(world):
    async def go(w):
        plain = await w.start(spec(flags_json='{"lr": 0.5}', user_flags_json='{"lr": 0.5}'))
        made = await w.launcher.premake(spec(flags_json="{}", user_flags_json="{}"), USER)
        assert cataloglib.being_made(w.run_dir(made.run_id))  # no run yet: never listed
        await w.runtime.io(w.catalog.sync_index)
        assert await w.runtime.io(w.store.get, made.run_id) is None
        rec = await w.launcher.start_run(spec(flags_json='{"lr": 0.5}', user_flags_json='{"lr": 0.5}'), False, USER, made=made)
        assert rec.id == made.run_id and rec.status == RUNNING
        assert not cataloglib.being_made(w.run_dir(rec.id))
        assert w.attr(rec.id, "flags") == {"lr": 0.5} and w.attr(rec.id, "label") == "lr=0.5"
        assert w.executor.shims.launches[-1].cmd == ["python", "train.py", "--lr", "0.5"]
        assert run_files(w.run_dir(rec.id)) == run_files(w.run_dir(plain.id))

    world(go)


# how the run made from a premade dir differs from the spec it was made from -> what is left of the dir
PREMADE_REFUSED = [
    pytest.param(dict(op_name="other.py"), "made afresh", id="another spec: the run is made afresh, under the premade id"),
    pytest.param(dict(flags_json="[1, 2]"), "refused", id="flags that are no object: refused, the premade dir goes"),
    pytest.param(dict(cmd_args=[]), "refused", id="a spec with no command: refused, the premade dir goes"),
]


@pytest.mark.parametrize("change, outcome", PREMADE_REFUSED)
def test_a_premade_dir_that_does_not_fit_is_removed(world, change, outcome):
    async def go(w):
        made = await w.launcher.premake(spec(), USER)
        if outcome == "refused":
            with pytest.raises(errors.InvalidArgument):
                await w.launcher.start_run(spec(**change), False, USER, made=made)
            assert (await w.runtime.io(w.store.list))[0] == []
        else:
            rec = await w.launcher.start_run(spec(**change), False, USER, made=made)
            assert rec.id == made.run_id and rec.op_name == "other.py"  # its id kept: a parent may have named it
            assert not cataloglib.being_made(w.run_dir(rec.id)) and w.attr(rec.id, "flags") == {"lr": 0.1}
            return
        assert not os.path.lexists(w.run_dir(made.run_id))

    world(go)


def test_a_premade_dir_discarded_is_gone(world):
    async def go(w):
        made = await w.launcher.premake(spec(), USER)
        await w.launcher.discard(made)
        assert not os.path.lexists(w.run_dir(made.run_id))

    world(go)
