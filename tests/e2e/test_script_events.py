"""Scalars a script logs itself with tensorboardX's SummaryWriter, in the run dir's root and in
`val/`, are the run's scalars under Guild's names (`loss`, `val#acc`): in `runs info`,
`compare` and `select` while the run runs, after it ends, after the daemon was killed, and
once the index is rebuilt from the run dirs."""

import json
import signal

import pytest

from tests.conftest import wait_for
from tests.e2e.conftest import Guild, write

TRAIN = """
import os
import time
from tensorboardX import SummaryWriter

shift = 0.0
wait = True

train = SummaryWriter(".", flush_secs=1)
val = SummaryWriter("val", flush_secs=1)
for step, acc in enumerate([0.7, 0.9, 0.8]):
    train.add_scalar("loss", 1.0 - step * 0.25, step)
    val.add_scalar("acc", acc + shift, step)
while wait and not os.path.exists("go"):  # the test lets it end
    time.sleep(0.05)
val.add_scalar("acc", 0.6 + shift, 3)
train.close()
val.close()
"""


@pytest.fixture
def guild(tmp_path):
    project = tmp_path / "proj"
    write(project, {"train.py": TRAIN})
    g = Guild(tmp_path / "guild-home", project)
    g.start_daemon()
    yield g
    g.stop()


def scalars(guild, run):
    return guild.info(run)["scalars"]


def column(guild, *args):
    """{run id prefix: row} of `compare --json` with ARGS."""
    rows = json.loads(guild.ctl("compare", "--json", *args).stdout)
    return {row["run"]: row for row in rows}


def test_scalars_the_script_writes_are_the_runs(guild):
    guild.ctl("run", "train.py", "shift=-0.5", "wait=no", "-y")  # a finished run to compare with
    started = guild.ctl("run", "train.py", "--background", "-y").stdout
    run_id = started.split(" as ")[1].split()[0]

    # while it runs
    wait_for(lambda: scalars(guild, run_id).get("val#acc") == [pytest.approx(0.8), 2], timeout=30,
             what="the script's scalars while it runs")
    assert guild.info(run_id)["status"] == "running"
    assert scalars(guild, run_id)["loss"] == [0.5, 2]
    row = column(guild, "-cc", "val#acc, min loss as lo, count val#acc as n")[run_id[:8]]
    assert (row["val acc"], row["lo"], row["n"]) == (pytest.approx(0.8), 0.5, 3)
    assert guild.ctl("select", "--max", "val#acc").stdout.strip() == run_id
    assert guild.ctl("select", "--min", "val#acc").stdout.strip() != run_id

    # the daemon killed and started again: nothing lost, nothing counted twice
    guild.kill_daemon(signal.SIGKILL)
    guild.start_daemon()
    assert scalars(guild, run_id)["val#acc"] == [pytest.approx(0.8), 2]
    (guild.home / "runs" / run_id / "go").touch()
    guild.wait_status(run_id, "completed")
    assert scalars(guild, run_id)["val#acc"] == [pytest.approx(0.6), 3]
    row = column(guild, "-cc", "count val#acc as n, max val#acc as hi")[run_id[:8]]
    assert (row["n"], row["hi"]) == (4, pytest.approx(0.9))
    assert guild.ctl("select", "--min", "val#acc").stdout.strip() != run_id  # the other's last: 0.1
    assert guild.ctl("select", "--max", "val#acc").stdout.strip() == run_id

    # the index rebuilt from the run dirs: the same scalars
    guild.kill_daemon(signal.SIGKILL)
    for index in guild.home.glob("guildd-index.db*"):
        index.unlink()
    guild.start_daemon()
    assert column(guild, "-cc", "count val#acc as n, max val#acc as hi")[run_id[:8]] == row
    assert scalars(guild, run_id)["val#acc"] == [pytest.approx(0.6), 3]
