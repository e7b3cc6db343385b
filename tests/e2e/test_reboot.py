"""A reboot (a power loss): guildd and every process of every run die at the same instant, with
no chance to record anything; then the box comes back and guildd starts. What was running
ends as an error and keeps the output it printed, what was staged or queued still waits and
the queue (its processing on, as it was) starts it, and what had ended is as it was."""

import signal
import subprocess

import psutil
import pytest

from guild_common import rundir
from tests.conftest import wait_for
from tests.e2e.conftest import Guild


def _processes_of(guild):
    """The daemon and every process of its runs (shims and what they started)."""
    home = str(guild.home)
    found = []
    for proc in psutil.process_iter(["cmdline", "cwd"]):
        try:
            if (proc.info["cwd"] or "").startswith(home) or home in " ".join(proc.info["cmdline"] or []):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def _power_loss(guild):
    """Everything stops at once: the daemon and every run process are frozen first (SIGSTOP:
    none can record an end or notice another's), then killed, as the power going would."""
    daemon = psutil.Process(guild.daemon.pid)
    daemon.suspend()
    frozen = {daemon.pid: daemon}
    while new := [p for p in _processes_of(guild) if p.pid not in frozen]:
        for proc in new:  # a process started just before the freeze is caught on the next pass
            try:
                proc.suspend()
            except psutil.NoSuchProcess:
                continue
            frozen[proc.pid] = proc
    for proc in frozen.values():
        try:
            proc.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    guild.daemon.wait(timeout=20)
    psutil.wait_procs(list(frozen.values()), timeout=20)


def _id(result, word="as"):
    return result.stdout.split(f" {word} ")[1].split()[0]


def _output(guild, run_id):
    return (guild.home / "runs" / run_id / ".guild" / "output").read_text()


@pytest.fixture
def guild(tmp_path, project):
    """A daemon with one (simulated) GPU, for a run that waits for it."""
    g = Guild(tmp_path / "guild-home", project, extra_env={"GUILD_SIMULATED_GPUS": "1x80G"})
    g.start_daemon()
    yield g
    g.stop()


def test_a_reboot_ends_running_runs_as_errors_and_keeps_the_rest(guild):
    guild.ctl("run", "train.py", "-y")
    done = guild.runs()[0]["id"]
    guild.ctl("label", done, "--set", "kept", "-y")
    done_before = guild.info(done)
    done_output = guild.ctl("cat", done, "--output").stdout

    # Queue processing on, as a user left it: it takes staged runs while no other run runs.
    guild.ctl("queue", "start", "wait-for-running=yes")
    by_queue = _id(guild.ctl("run", "slow.py", "steps=100000", "--gpus", "1", "--stage", "-y"), "staged as")
    guild.wait_status(by_queue, "running")
    direct = _id(guild.ctl("run", "slow.py", "steps=100000", "--background", "-y"))
    guild.wait_status(direct, "running")
    waiting = _id(guild.ctl("run", "train.py", "--stage", "-y"), "staged as")
    # Queued, not staged: it waits for the GPU the queue's run holds.
    pending = _id(guild.ctl("run", "train.py", "--gpus", "1", "--background", "-y"))
    assert guild.info(pending)["status"] == "pending"
    for run_id in (by_queue, direct):
        wait_for(lambda: _output(guild, run_id).count("step:") >= 3, what=f"run {run_id[:8]} to print")

    _power_loss(guild)
    printed = {run_id: _output(guild, run_id) for run_id in (by_queue, direct)}
    guild.start_daemon()

    for run_id in (by_queue, direct):
        assert guild.wait_status(run_id, "error")["status"] == "error"
        # Every line it printed before the power went is still its output, and its scalars
        # are indexed up to the last of them.
        output = guild.ctl("cat", run_id, "--output").stdout
        assert output.startswith(printed[run_id])
        # Why it ended is said in its own output, where its user looks.
        assert "guildd: run ended as an error: its process ended while no daemon watched" in output[len(printed[run_id]):]
        last_loss = float([line for line in printed[run_id].split("\n")[:-1] if line.startswith("loss:")][-1].split()[1])
        wait_for(lambda: guild.info(run_id)["scalars"].get("loss", [None])[0] == pytest.approx(last_loss),
                 what=f"run {run_id[:8]}'s last loss {last_loss}")
    log = (guild.home / "guildd.log").read_text()
    for run_id in (by_queue, direct):
        assert f"run {run_id[:8]}: its process ended while no daemon watched" in log
    # The staged run waited through it; processing is still on, and with nothing running it
    # starts. The queued run gets the GPU the dead run held.
    assert "Queue processing on (wait-for-running)" in guild.ctl("queue").stdout
    for run_id in (waiting, pending):
        assert guild.wait_status(run_id, "completed")["status"] == "completed"
    # What had ended is as it was.
    after = guild.info(done)
    assert (after["status"], after["label"], after["started"], after["stopped"]) == (
        "completed", "kept", done_before["started"], done_before["stopped"])
    assert guild.ctl("cat", done, "--output").stdout == done_output
    # The daemon starts new runs as before.
    assert "loss:" in guild.ctl("run", "train.py", "-y").stdout


def test_a_pid_reused_after_a_reboot_is_not_taken_for_the_run(guild):
    run_id = _id(guild.ctl("run", "slow.py", "steps=100000", "--background", "-y"))
    guild.wait_status(run_id, "running")
    _power_loss(guild)
    # After the boot, another process has the pid the run's LOCK names; the run started an
    # hour before (the boot came between), and the index is gone, so it is read from the dir.
    other = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        gdir = guild.home / "runs" / run_id / ".guild"
        (gdir / "LOCK").write_text(str(other.pid))
        run_dir = gdir.parent
        rundir.write_attr(run_dir, "started", rundir.read_attr(run_dir, "started") - 3600 * 10**6)
        for path in guild.home.glob("guildd-index.db*"):
            path.unlink()
        guild.start_daemon()
        assert guild.wait_status(run_id, "error")["status"] == "error"
        guild.ctl("stop", run_id, "-y", check=False)
        assert other.poll() is None  # never signalled: it is not the run's
        assert "is another process now (its pid reused): not adopting it" in (guild.home / "guildd.log").read_text()
    finally:
        other.kill()
        other.wait()
