"""Preemption with requeue end to end (guildd.preemption, guildd.requeue): a real guildd with one
simulated GPU, a preemptible run of low priority holding it, and an urgent run that takes it.
The victim saves a checkpoint on SIGTERM, is requeued in its own run dir, and resumes from it."""

import json

import pytest

from guild_common import rundir
from tests.conftest import wait_for

# Counts to `steps`, one step per `pause` seconds, from its checkpoint if it has one. On SIGTERM
# it writes the checkpoint (taking `save` seconds) and exits. Says how it started.
VICTIM = """\
import os, pathlib, signal, sys, time
steps = 60
pause = 0.05
save = 0.0
ckpt = pathlib.Path("ckpt")
step = int(ckpt.read_text()) if ckpt.exists() else 0
print("START resumed=%s preemptions=%s step=%d" % (
    os.environ.get("GUILD_RESUMED"), os.environ.get("GUILD_PREEMPTIONS"), step), flush=True)

def stop(signum, frame):
    print("SIGTERM at step %d" % step, flush=True)
    time.sleep(save)
    ckpt.write_text(str(step))
    sys.exit(143)

signal.signal(signal.SIGTERM, stop)
while step < steps:
    time.sleep(pause)
    step += 1
print("DONE step=%d" % step, flush=True)
"""

# Runs until the file `go` names exists (the test says when).
URGENT = """\
import os, time
go = ""
while go and not os.path.exists(go):
    time.sleep(0.05)
print("URGENT DONE", flush=True)
"""


@pytest.fixture
def start_guild(simulated_daemons, project):
    """Starts a daemon with one simulated GPU."""
    (project / "victim.py").write_text(VICTIM)
    (project / "urgent.py").write_text(URGENT)
    return lambda: simulated_daemons("1x80G")


def _started_id(result):
    return result.stdout.split(" as ")[1].split()[0]


def _output(guild, run_id):
    return (guild.home / "runs" / run_id / ".guild" / "output").read_text()


def _starts(guild, run_id):
    return [line for line in _output(guild, run_id).splitlines() if line.startswith("START ")]


def _preempted_by(guild, run_id):
    """Who preempted the run, in order, from its `preemptions` attr (each with a time)."""
    record = rundir.read_attr(guild.home / "runs" / run_id, "preemptions")
    assert all(p["time"] > 0 for p in record)
    return [p["by"] for p in record]


def _background(guild, *args):
    return _started_id(guild.ctl("run", *args, "--background", "-y"))


def _preempt(guild, victim_args=(), urgent_args=()):
    """Starts a preemptible victim on the GPU, waits for it to run, then an urgent run."""
    victim = _background(guild, "victim.py", *victim_args, "--gpus", "1", "--preemptible")
    wait_for(lambda: _starts(guild, victim), what="the victim to start")
    urgent = _background(guild, "urgent.py", "--gpus", "1", "--priority", "10", *urgent_args)
    return victim, urgent


def test_urgent_run_preempts_and_victim_resumes_from_its_checkpoint(start_guild, tmp_path):
    guild = start_guild()
    go = tmp_path / "go"
    victim, urgent = _preempt(guild, urgent_args=(f"go={go}",))
    wait_for(lambda: guild.info(urgent)["status"] == "running" and guild.info(victim)["status"] == "pending",
             what="the urgent run to run while the victim waits")
    [entry] = json.loads(guild.ctl("queue", "--json").stdout)["entries"]
    assert entry["run"]["id"] == victim
    assert entry["reason"].startswith(f"preempted by run {urgent[:8]}; ")
    assert f"preempted by run {urgent[:8]}" in guild.ctl("queue").stdout
    go.touch()
    guild.wait_status(urgent, "completed")
    guild.wait_status(victim, "completed")
    first, second = _starts(guild, victim)
    assert first == "START resumed=None preemptions=None step=0"
    resumed_at = int(second.rsplit("=", 1)[1])
    assert second == f"START resumed=1 preemptions=1 step={resumed_at}" and 0 < resumed_at < 60
    assert "DONE step=60" in _output(guild, victim)
    assert _preempted_by(guild, victim) == [urgent]


def test_a_preempted_trial_still_counts_for_its_batch(start_guild, tmp_path):
    guild = start_guild()
    go = tmp_path / "go"
    batch = _background(guild, "victim.py", "steps=[40,41]", "--gpus", "1", "--preemptible-trials", "--keep-batch")
    trial = wait_for(lambda: next((r["id"] for r in guild.runs() if r["operation"] == "victim.py"
                                   and r["status"] == "running"), None), what="the first trial to run")
    wait_for(lambda: _starts(guild, trial), what="the trial to start")
    urgent = _background(guild, "urgent.py", f"go={go}", "--gpus", "1", "--priority", "10")
    wait_for(lambda: guild.info(trial)["status"] == "pending", what="the trial to be requeued")
    assert guild.info(batch)["status"] == "running"
    go.touch()
    guild.wait_status(batch, "completed", timeout=60)
    assert guild.info(urgent)["status"] == "completed"
    trials = [r for r in guild.runs() if r["operation"] == "victim.py"]
    assert len(trials) == 2 and all(r["status"] == "completed" for r in trials)
    assert _preempted_by(guild, trial) == [urgent]
    assert len(_starts(guild, trial)) == 2


def test_victim_requeued_after_a_kill_9_of_guildd_mid_grace(start_guild):
    """The daemon is killed while the victim saves its checkpoint; the next daemon requeues it."""
    guild = start_guild()
    victim, urgent = _preempt(guild, victim_args=("save=2",))
    wait_for(lambda: "SIGTERM at step" in _output(guild, victim), what="the victim to be told to stop")
    guild.kill_daemon()
    guild.start_daemon()
    guild.wait_status(urgent, "completed", timeout=30)
    guild.wait_status(victim, "completed", timeout=30)
    assert [line.split(" step=")[0] for line in _starts(guild, victim)] == [
        "START resumed=None preemptions=None", "START resumed=1 preemptions=1"]
    assert _preempted_by(guild, victim) == [urgent]


@pytest.mark.parametrize("args, option", [
    (("victim.py", "--preemptible"), "--preemptible"),
    (("victim.py", "steps=[1,2]", "--preemptible-trials"), "--preemptible-trials"),
])
def test_preemptible_without_gpus_is_refused_and_creates_nothing(start_guild, args, option):
    guild = start_guild()
    r = guild.ctl("run", *args, "--gpus", "0", "-y", check=False)
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and option in lines[0] and "asks for no GPUs" in lines[0], r.stderr
    assert guild.runs() == []
