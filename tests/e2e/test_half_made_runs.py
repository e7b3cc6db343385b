"""A run dir the daemon was making when it was killed is no run: guildd marks a new run's dir
(`.guild/.guildd-making`) until it is whole and indexed, never lists a marked dir, and the next
daemon removes those a killed one left. A client never finds a run it was never told of, half
made and listed as an error."""

import random
import shutil
import signal
import subprocess
import time
import uuid

from guild_common import rundir
from guildd import catalog
from tests.conftest import wait_for

STAGED_AS = " staged as "


def _log(guild):
    return (guild.home / "guildd.log").read_text()


def test_a_marked_run_dir_is_not_listed_and_goes_at_the_next_start(guild):
    guild.ctl("run", "train.py", "--stage", "-y")
    whole = guild.runs()[0]["id"]
    half = uuid.uuid4().hex  # what a daemon killed while making it leaves: its files, still marked
    runs = guild.home / "runs"
    shutil.copytree(runs / whole, runs / half)
    rundir.write_attrs(runs / half, {"id": half})
    catalog.making_marker(runs / half).touch()
    assert [r["id"] for r in guild.runs()] == [whole]
    guild.kill_daemon(signal.SIGKILL)
    guild.start_daemon()
    assert [r["id"] for r in guild.runs()] == [whole]
    assert not (runs / half).exists()
    assert f"run {half[:8]}: removed its half-made dir" in _log(guild)


def test_kill_9_during_a_burst_of_stage_calls_leaves_no_run_no_one_was_told_of_as_an_error(guild):
    clients = [guild.popen("run", "train.py", "--stage", "-y", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(12)]
    # The kill falls among their calls: once the first run dir appears, a moment later.
    runs = guild.home / "runs"
    wait_for(lambda: any(runs.iterdir()), what="the first run dir")
    time.sleep(random.random() * 0.2)
    guild.kill_daemon(signal.SIGKILL)
    told = set()
    for client in clients:
        out, _ = client.communicate(timeout=60)
        if STAGED_AS in out:
            told.add(out.split(STAGED_AS)[1].split()[0])
    guild.start_daemon()
    listed = {r["id"]: r["status"] for r in guild.runs()}
    assert told <= set(listed)  # every run a client was told of is there
    assert set(listed.values()) <= {"staged"}, listed  # and none is an error (a half-made run)
    for run_id in listed:
        assert rundir.read_attr(guild.home / "runs" / run_id, "op"), run_id  # whole
    assert sorted(p.name for p in runs.iterdir()) == sorted(listed)  # no other dir
