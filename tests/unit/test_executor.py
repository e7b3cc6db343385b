"""Runs' shims for real (guildd.executor and guildd.shim) on a temp run dir: a run's end as
its run dir records it, stops, and what the daemon learns on its event loop."""

import asyncio
import os
import signal
import sys

import psutil
import pytest

from guild_common import rundir
from guildd import executor as execlib, shim as shimlib
from guildd.runs import Launch

SLEEP = "import time; print('up', flush=True); time.sleep(30)"


class Harness:
    """An Executor on the test's event loop; `ended` fills as its shims end."""

    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.ended = asyncio.Queue()
        self.executor = execlib.Executor(self.ended.put_nowait, str(tmp_path / "guildd.log"))

    def run_dir(self, name="0123456789abcdef0123456789abcdef"):
        path = self.tmp_path / name
        rundir.attrs_dir(path).mkdir(parents=True)
        return path

    def start(self, run_dir, cmd, stop_after=0.0):
        launch = Launch(str(run_dir), cmd, dict(os.environ), stop_after)
        shim = self.executor.shims.spawn(launch)
        self.executor.watch(run_dir.name, shim.pid)
        return shim

    async def next_end(self):
        return await asyncio.wait_for(self.ended.get(), 20)

    def close(self):
        self.executor.close()
        self.executor.shims.close()


def scenario(tmp_path, body):
    """Runs `body(harness)` on a fresh event loop; the shim server is closed after."""

    async def main():
        harness = Harness(tmp_path)
        try:
            return await body(harness)
        finally:
            harness.close()

    return asyncio.run(main())


def python(code):
    return [sys.executable, "-c", code]


def end_of(run_dir):
    return rundir.read_attr(run_dir, "exit_status"), rundir.read_attr(run_dir, "stopped")


def output(run_dir):
    return rundir.output_path(run_dir).read_text()


async def until_output(run_dir, text):
    while text not in (output(run_dir) if rundir.output_path(run_dir).exists() else ""):
        await asyncio.sleep(0.01)


EXITS = {
    "exits 0": ("print('hello')", 0, "hello\n"),
    "exits 3": ("import sys; print('bad', file=sys.stderr); sys.exit(3)", 3, "bad\n"),
    "killed by a signal": ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", -9, ""),
}


@pytest.mark.parametrize("code, exit_status, text", EXITS.values(), ids=EXITS.keys())
def test_a_runs_end_is_recorded_in_its_run_dir(tmp_path, code, exit_status, text):
    async def body(h):
        run_dir = h.run_dir()
        h.start(run_dir, python(code))
        assert await h.next_end() == run_dir.name
        return run_dir

    run_dir = scenario(tmp_path, body)
    status, stopped = end_of(run_dir)
    assert (status, output(run_dir)) == (exit_status, text)
    assert stopped > 0


def test_a_run_leaves_neither_lock_nor_reserved_files(tmp_path):
    async def body(h):
        run_dir = h.run_dir()
        h.start(run_dir, python("pass"))
        await h.next_end()
        return run_dir

    run_dir = scenario(tmp_path, body)
    assert sorted(p.name for p in rundir.guild_dir(run_dir).iterdir()) == ["attrs", "output"]


def test_the_lock_holds_the_process_pid_while_it_runs(tmp_path):
    async def body(h):
        run_dir = h.run_dir()
        h.start(run_dir, python("import os; print(os.getpid(), flush=True); import time; time.sleep(30)"))
        await until_output(run_dir, "\n")
        while rundir.read_lock_pid(run_dir) is None:  # written as the process starts
            await asyncio.sleep(0.01)
        pid = rundir.read_lock_pid(run_dir)
        h.executor.signal(run_dir.name)
        await h.next_end()
        return pid, int(output(run_dir))

    lock_pid, process_pid = scenario(tmp_path, body)
    assert lock_pid == process_pid


def test_a_stop_ends_the_run_as_terminated(tmp_path):
    async def body(h):
        run_dir = h.run_dir()
        h.start(run_dir, python(SLEEP))
        await until_output(run_dir, "up")
        assert h.executor.signal(run_dir.name)
        await h.next_end()
        return run_dir

    run_dir = scenario(tmp_path, body)
    assert end_of(run_dir)[0] == -signal.SIGTERM
    assert rundir.status_for_exit_status(end_of(run_dir)[0]) == "terminated"


def test_a_stop_reaches_the_processes_the_run_started(tmp_path):
    code = "import subprocess, sys; subprocess.run([sys.executable, '-c', %r])" % SLEEP

    async def body(h):
        run_dir = h.run_dir()
        h.start(run_dir, python(code))
        await until_output(run_dir, "up")
        h.executor.signal(run_dir.name)
        await h.next_end()
        return run_dir

    assert end_of(scenario(tmp_path, body))[0] == -signal.SIGTERM


def test_a_stop_asked_for_as_the_shim_starts_still_stops_the_run(tmp_path):
    # A shim stopped before it handles stops dies unrecorded: the daemon records that end.
    async def body(h):
        run_dir = h.run_dir()
        h.start(run_dir, python(SLEEP))
        h.executor.signal(run_dir.name)
        await h.next_end()
        return run_dir

    assert end_of(scenario(tmp_path, body))[0] in (-signal.SIGTERM, None)


def test_stop_after_stops_the_run_and_says_so(tmp_path):
    async def body(h):
        run_dir = h.run_dir()
        h.start(run_dir, python(SLEEP), stop_after=0.2)
        await h.next_end()
        return run_dir

    run_dir = scenario(tmp_path, body)
    assert end_of(run_dir)[0] == -signal.SIGTERM
    assert "Stopping process early (pid " in output(run_dir) and "0.2 second(s) elapsed" in output(run_dir)


def test_a_command_that_is_not_there_ends_as_127(tmp_path):
    async def body(h):
        run_dir = h.run_dir()
        h.start(run_dir, ["no-such-command-for-guildd"])
        await h.next_end()
        return run_dir

    run_dir = scenario(tmp_path, body)
    assert end_of(run_dir)[0] == 127
    assert output(run_dir).startswith("guildd: cannot start no-such-command-for-guildd: ")


def test_runs_run_side_by_side_and_end_apart(tmp_path):
    async def body(h):
        slow, fast = h.run_dir("a" * 32), h.run_dir("b" * 32)
        h.start(slow, python(SLEEP))
        h.start(fast, python("pass"))
        assert h.executor.running == 2
        first = await h.next_end()
        h.executor.signal(slow.name)
        return first, await h.next_end(), h.executor.running

    assert scenario(tmp_path, body) == ("b" * 32, "a" * 32, 0)


def test_runs_outlive_the_shim_server(tmp_path):
    async def body(h):
        run_dir = h.run_dir()
        shim = h.start(run_dir, python(SLEEP))
        await until_output(run_dir, "up")
        h.executor.shims.close()  # the daemon goes
        assert execlib.shim_alive(shim)
        h.executor.signal(run_dir.name)  # a new daemon stops the run it adopted
        await h.next_end()
        return run_dir

    assert end_of(scenario(tmp_path, body))[0] == -signal.SIGTERM


def test_a_dead_shim_server_is_started_again(tmp_path):
    async def body(h):
        first, second = h.run_dir("a" * 32), h.run_dir("b" * 32)
        h.start(first, python("pass"))
        await h.next_end()
        h.executor.shims._proc.kill()
        h.executor.shims._proc.wait()
        h.start(second, python("pass"))
        await h.next_end()
        return second

    assert end_of(scenario(tmp_path, body))[0] == 0


def test_watching_a_shim_that_has_ended_reports_its_end_at_once(tmp_path):
    async def body(h):
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
        await proc.wait()
        h.executor.watch("r1", proc.pid)
        return await h.next_end(), h.executor.running

    assert scenario(tmp_path, body) == ("r1", 0)


def test_signal_to_a_run_not_watched(tmp_path):
    async def body(h):
        return h.executor.signal("nope")

    assert scenario(tmp_path, body) is False


ALIVE = {
    "this process": (lambda: execlib.Shim(os.getpid(), execlib._create_time(os.getpid())), True),
    "this pid, started at another time (reused)": (lambda: execlib.Shim(os.getpid(), 1.0), False),
    "no pid": (lambda: execlib.Shim(0, 0.0), False),
}


@pytest.mark.parametrize("make, expected", ALIVE.values(), ids=ALIVE.keys())
def test_shim_alive(make, expected):
    assert execlib.shim_alive(make()) is expected


def test_pid_alive_of_a_process_that_ended():
    proc = os.spawnv(os.P_NOWAIT, sys.executable, [sys.executable, "-c", "pass"])
    os.waitpid(proc, 0)
    assert (execlib.pid_alive(os.getpid()), execlib.pid_alive(proc)) == (True, False)


# The end the daemon records for a shim that died before it could


def test_write_end_in_place_of_reserved_files(tmp_path):
    rundir.attrs_dir(tmp_path).mkdir(parents=True)
    shimlib.reserve(tmp_path)
    shimlib.write_end(tmp_path, 1, 1234)
    assert end_of(tmp_path) == (1, 1234)
    assert sorted(p.name for p in rundir.guild_dir(tmp_path).iterdir()) == [".LOCK.reserved", "attrs"]
    assert sorted(p.name for p in rundir.attrs_dir(tmp_path).iterdir()) == ["exit_status", "stopped"]


def test_write_end_without_reserved_files_writes_the_same_attrs(tmp_path):
    rundir.attrs_dir(tmp_path).mkdir(parents=True)
    shimlib.write_end(tmp_path, -15, 99)
    assert (rundir.attrs_dir(tmp_path) / "exit_status").read_text() == "-15\n"
    assert end_of(tmp_path) == (-15, 99)


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="a shim becomes a run's owner only in a daemon running as root")
WHO = "import os; print(os.getuid(), os.getgid(), sorted(os.getgroups()), os.environ['HOME'], flush=True)"


def _alice():
    import pwd

    try:
        return pwd.getpwnam("alice")
    except KeyError:
        pytest.skip("no account alice on this machine")


def _owned_run_dir(tmp_path, owner):
    """A run dir `owner` owns, where `owner` can reach it (pytest's tmp is root's, 0700)."""
    import tempfile

    base = tempfile.mkdtemp(prefix="guild-shim-")
    os.chmod(base, 0o755)
    path = os.path.join(base, "0123456789abcdef0123456789abcdef")
    rundir.attrs_dir(path).mkdir(parents=True)
    for parent, dirs, files in os.walk(path):
        for name in [".", *dirs, *files]:
            os.lchown(os.path.join(parent, name), owner.pw_uid, owner.pw_gid)
    return base, path


@needs_root
def test_a_shared_daemons_shim_runs_the_process_as_the_runs_owner(tmp_path):
    import shutil

    alice = _alice()
    base, run_dir = _owned_run_dir(tmp_path, alice)

    async def body(h):
        env = {"PATH": "/usr/bin:/bin", "HOME": alice.pw_dir}
        launch = Launch(run_dir, ["/usr/bin/python3", "-c", WHO], env, 0.0, uid=alice.pw_uid, gid=alice.pw_gid, groups=(alice.pw_gid,))
        shim = h.executor.shims.spawn(launch)
        h.executor.watch("r", shim.pid)
        await h.next_end()

    try:
        scenario(tmp_path, body)
        assert output(run_dir) == f"{alice.pw_uid} {alice.pw_gid} [{alice.pw_gid}] {alice.pw_dir}\n"
        assert end_of(run_dir)[0] == 0
        for name in (".guild/output", ".guild/attrs/exit_status", ".guild/attrs/stopped"):
            assert os.stat(os.path.join(run_dir, name)).st_uid == alice.pw_uid, name
    finally:
        shutil.rmtree(base)


@needs_root
def test_the_daemon_stops_a_run_that_runs_as_its_owner(tmp_path):
    import shutil

    alice = _alice()
    base, run_dir = _owned_run_dir(tmp_path, alice)

    async def body(h):
        launch = Launch(run_dir, ["/usr/bin/python3", "-c", SLEEP], {"PATH": "/usr/bin:/bin"}, 0.0,
                        uid=alice.pw_uid, gid=alice.pw_gid, groups=(alice.pw_gid,))
        shim = h.executor.shims.spawn(launch)
        h.executor.watch("r", shim.pid)
        await until_output(run_dir, "up")
        assert h.executor.signal("r")
        await h.next_end()

    try:
        scenario(tmp_path, body)
        assert end_of(run_dir)[0] == -15
    finally:
        shutil.rmtree(base)


@needs_root
def test_a_shim_refuses_to_run_a_shared_daemons_run_as_root(tmp_path):
    run_dir = tmp_path / "0123456789abcdef0123456789abcdef"
    rundir.attrs_dir(run_dir).mkdir(parents=True)
    marker = tmp_path / "ran"

    async def body(h):
        launch = Launch(str(run_dir), python(f"open({str(marker)!r}, 'w')"), dict(os.environ), 0.0, uid=0, gid=0, groups=(0,))
        shim = h.executor.shims.spawn(launch)
        h.executor.watch("r", shim.pid)
        await h.next_end()

    scenario(tmp_path, body)
    assert not marker.exists()
    assert end_of(run_dir) == (None, None)  # no end recorded by the shim: the daemon records it
    assert "refusing to run a shared daemon's run as root" in (tmp_path / "guildd.log").read_text()


BOOT = 1_000_000.0
STARTED = BOOT + 3600  # seconds: a run stamped an hour after the boot
ADOPTION = {
    "the run's process, forked just after the stamp": (STARTED + 0.2, STARTED, False, True),
    "a slow fork, within the slack": (STARTED + execlib.ADOPT_SLACK - 1, STARTED, False, True),
    "Guild AI's own process, made before it stamped the run": (STARTED - 5, STARTED, False, True),
    "its pid reused by a later process": (STARTED + 600, STARTED, False, False),
    "a later process, but in the run's dir (the clock stepped)": (STARTED + 600, STARTED, True, True),
    "a run stamped before this boot": (BOOT + 10, BOOT - 3600, True, False),
    "no start stamp: alive is all that is known": (STARTED, 0, False, True),
}


@pytest.mark.parametrize("created, started, in_run_dir, adopted", ADOPTION.values(), ids=ADOPTION.keys())
def test_may_be_runs_process(created, started, in_run_dir, adopted):
    started_us = int(started * 1e6)
    assert execlib.may_be_runs_process(created, BOOT, started_us, in_run_dir) is adopted


def test_born_with_run_tells_a_reused_pid(tmp_path):
    me = psutil.Process()
    created_us = int(me.create_time() * 1e6)
    assert execlib.born_with_run(me.pid, created_us, tmp_path)  # as the run's own process
    # As a process that took the pid of a run stamped just after the boot (this one came later).
    early = int((psutil.boot_time() + 1) * 1e6)
    assert not execlib.born_with_run(me.pid, early, tmp_path)
    assert execlib.born_with_run(me.pid, early, os.getcwd())  # unless it runs in the run's dir
    assert not execlib.born_with_run(2**22 + 1, created_us, tmp_path)  # no such process
