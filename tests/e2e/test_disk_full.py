"""A full disk under GUILD_HOME, end to end: a run that fills it ends with a status, a run
started while it is full is refused with a clear error and leaves nothing behind, and the
daemon works on once space is freed. GUILD_HOME is a small tmpfs (mounting one needs root)."""

import errno
import json
import os
import subprocess

import psutil
import pytest

from guildd import diskspace
from tests.conftest import wait_for
from tests.e2e.conftest import Guild, _stop_everything, run_row

# Writes output (with a scalar now and then) until the disk is full, then dies of it.
FILL = """\
import sys
pad = "x" * 8192
i = 0
while True:
    sys.stdout.write("step: %d\\nloss: %f\\n%s\\n" % (i, 1.0 / (i + 1), pad))
    sys.stdout.flush()
    i += 1
"""

# Waits for a file to appear (outside GUILD_HOME), then exits 3.
WAIT = """\
import os
import time
go = ""
while not os.path.exists(go):
    time.sleep(0.05)
raise SystemExit(3)
"""


@pytest.fixture
def small_home(tmp_path):
    """An 8 MiB tmpfs to use as GUILD_HOME, unmounted after the test."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs as GUILD_HOME needs root")
    home = tmp_path / "guild-home"
    home.mkdir()
    # Mode 0700: guildd refuses a GUILD_HOME other users can write to.
    mount = ["mount", "-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", str(home)]
    r = subprocess.run(mount, capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs for GUILD_HOME: {r.stderr.strip() or r.returncode}")
    yield home
    _stop_everything(home)
    subprocess.run(["umount", "-l", str(home)], check=True)


@pytest.fixture
def full_guild(small_home, project, tmp_path):
    """A daemon on the small GUILD_HOME. Its stderr goes outside GUILD_HOME (to a file, not a
    pipe nobody reads), as it would to a journal."""
    (project / "fill.py").write_text(FILL)
    (project / "wait.py").write_text(WAIT)
    g = Guild(small_home, project)
    with open(tmp_path / "guildd.stderr", "wb") as err:
        g.daemon = subprocess.Popen(
            ["guildd", "--foreground", "--no-log-stderr", "-H", str(small_home)],
            env=g.env,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )
    wait_for(g.daemon_answers, what="guildd to answer")
    yield g
    g.stop()


def _fill_disk(home):
    """Writes a file under `home` until the disk is full; returns its path."""
    path = home / "filler"
    with open(path, "wb", buffering=0) as f:
        chunk = b"\0" * 4096
        while True:
            try:
                f.write(chunk)
            except OSError as e:
                assert e.errno == errno.ENOSPC
                return path


def _background(guild, *args):
    """Starts a run in the background; returns its id."""
    r = guild.ctl("run", *args, "--background", "-y")
    return r.stdout.split(" started in background as ")[1].split()[0]


def _processes_under(home):
    out = []
    for proc in psutil.process_iter(["cwd"]):
        if (proc.info["cwd"] or "").startswith(str(home)):
            out.append(proc)
    return out


def _one_clear_line(r):
    """A refusal: non-zero exit, one line on stderr saying the disk is full, naming GUILD_HOME."""
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "no space left on device" in lines[0].lower() and "internal" not in lines[0].lower()
    return lines[0]


def _serving(g):
    """The daemon answers the reads a user needs to find what to delete."""
    for args in (("runs",), ("runs", "info"), ("queue",), ("check",), ("runs", "--json")):
        g.ctl(*args)


def test_a_run_that_fills_the_disk_ends_without_a_daemon_restart(full_guild):
    g = full_guild
    g.ctl("run", "train.py", "--label", "kept", "-y")
    kept = g.runs()
    run_id = _background(g, "fill.py")
    info = g.wait_status(run_id, "error", "completed", "terminated", timeout=60)
    assert info["status"] == "error"
    assert info["exit_status"] not in (None, 0)
    assert g.daemon.poll() is None
    assert _processes_under(g.home) == []
    rows = [run_row(line) for line in g.ctl("runs").stdout.splitlines() if line.startswith("[")]
    assert [(row["id"], row["status"]) for row in rows] == [(run_id[:8], "error"), (kept[0]["id"][:8], "completed")]
    assert g.ctl("stop", "-y", check=False).stdout.strip() == "Nothing to stop."
    # Why it ended is said where the user looks: at the end of its output.
    last = g.ctl("cat", "--output", run_id).stdout.splitlines()[-1]
    assert last.startswith("guildd: the disk under GUILD_HOME") and "was full when this run ended" in last
    # The daemon serves on, and the other run's record is as it was.
    _serving(g)
    assert g.runs()[1:] == kept
    # The end is in the run dir too (what Guild AI and an index rebuild read), and no
    # temporary or reserved file is left there.
    guild_dir = g.home / "runs" / run_id / ".guild"
    assert int((guild_dir / "attrs" / "exit_status").read_text()) == info["exit_status"]
    assert [p.name for p in guild_dir.rglob("*") if p.name.endswith((".tmp", ".reserved"))] == []
    # Space freed, the daemon works on.
    g.ctl("runs", "rm", "-p", "-y", run_id)
    g.ctl("run", "train.py", "-y")
    assert g.runs()[0]["status"] == "completed"


@pytest.mark.parametrize(
    "args",
    [("train.py",), ("train.py", "--stage"), ("train.py", "--background"), ("train.py", "x=[0.1,0.2]")],
    ids=["run", "stage", "background", "batch"],
)
def test_a_run_started_while_the_disk_is_full_is_refused_and_leaves_nothing(full_guild, args):
    g = full_guild
    filler = _fill_disk(g.home)
    r = g.ctl("run", *args, "-y", check=False)
    assert str(g.home) in _one_clear_line(r)
    assert g.run_dirs() == []
    assert g.runs() == []
    # Space freed, the daemon works on.
    filler.unlink()
    g.ctl("run", "train.py", "-y")
    assert [run["status"] for run in g.runs()] == ["completed"]


def test_an_end_a_full_disk_holds_up_is_recorded_once_there_is_room(full_guild, tmp_path):
    g = full_guild
    go = tmp_path / "go"
    run_id = _background(g, "wait.py", f"go={go}")
    g.wait_status(run_id, "running")
    (g.home / diskspace.RESERVE_NAME).unlink()  # as if an earlier end had used it up
    filler = _fill_disk(g.home)
    go.touch()
    wait_for(lambda: _processes_under(g.home) == [], what="the run and its shim to exit")
    assert [run["id"] for run in g.runs()] == [run_id]  # listing works on a full disk
    filler.unlink()
    info = g.wait_status(run_id, "error", "completed", "terminated", timeout=60)
    assert (info["status"], info["exit_status"]) == ("error", 3)


def test_a_restart_or_start_while_the_disk_is_full_is_refused_and_the_runs_are_kept(full_guild):
    g = full_guild
    g.ctl("run", "train.py", "-y")
    g.ctl("run", "train.py", "x=0.3", "--stage", "-y")
    staged, done = [run["id"] for run in g.runs()]
    before = g.runs()
    filler = _fill_disk(g.home)
    _one_clear_line(g.ctl("run", "--restart", done, "-y", check=False))
    _one_clear_line(g.ctl("run", "--start", staged, "-y", check=False))
    _serving(g)
    assert g.runs() == before
    filler.unlink()
    g.ctl("run", "--restart", done, "-y")
    g.ctl("run", "--start", staged, "-y")
    assert {run["status"] for run in g.runs()} == {"completed"}


@pytest.mark.parametrize("permanent", [True, False], ids=["rm -p", "rm then purge"])
def test_the_user_frees_space_by_deleting_runs_on_a_full_disk(full_guild, permanent):
    g = full_guild
    g.ctl("run", "train.py", "--label", "kept", "-y")
    kept = g.runs()
    run_id = _background(g, "fill.py")
    g.wait_status(run_id, "error", timeout=60)
    _fill_disk(g.home)  # whatever room is left, the daemon's reserve included, is taken too
    if permanent:
        g.ctl("runs", "rm", "-p", run_id, "-y")
    else:
        g.ctl("runs", "rm", run_id, "-y")
        assert [run["id"] for run in json.loads(g.ctl("runs", "-d", "--json").stdout)] == [run_id]
        g.ctl("runs", "purge", "-y")
    assert [run["id"] for run in g.runs()] == [kept[0]["id"]]
    assert not (g.home / "runs" / run_id).exists() and not (g.home / "trash" / "runs" / run_id).exists()
    assert g.runs() == kept
    (g.home / "filler").unlink()
    g.ctl("run", "train.py", "-y")
    assert [run["status"] for run in g.runs()] == ["completed", "completed"]


def test_a_queued_run_waits_for_room_and_starts_once_there_is_some(full_guild, tmp_path):
    g = full_guild
    go = tmp_path / "go"
    g.ctl("queue", "cpu-slots", "1")
    g.ctl("run", "wait.py", f"go={go}", "--stage", "-y")
    g.ctl("run", "train.py", "--stage", "-y")
    waiting = g.runs()[0]["id"]
    g.ctl("queue", "start")
    holder = next(run["id"] for run in g.runs() if run["id"] != waiting)
    g.wait_status(holder, "running")
    filler = _fill_disk(g.home)
    go.touch()  # the run holding the one CPU slot ends: the queue would start the next one
    g.wait_status(holder, "error")
    wait_for(lambda: "is full" in g.ctl("queue").stdout, what="the queue to say why the run waits")
    assert g.info(waiting)["status"] == "staged"
    filler.unlink()
    g.wait_status(waiting, "completed", timeout=30)
