"""One bad run or one bad config never makes a GUILD_HOME unusable: a bad output-scalars is
refused before a run exists; damaged runs found at start-up end as errors (the reason in
guildd.log) while the daemon starts and serves; and whenever guildd exits, guildd.log and the
guildctl that started it say why."""

import signal
import subprocess

import psutil
import yaml

from tests.conftest import wait_for
from tests.e2e.conftest import _stop_everything

# A bug at start-up, after the socket answers, injected into guildd (only) when a test asks:
# start-up waits for the gate file, then fails.
FAIL_AT_START_UP = """\
import os, sys, time
gate = os.environ.get("GUILDD_TEST_FAIL_AT")
if gate and sys.orig_argv[1:3] == ["-m", "guildd.main"]:
    import guildd.catalog

    def sync_index(catalog):
        while not os.path.exists(gate):
            time.sleep(0.02)
        raise RuntimeError("a bug at start-up")

    guildd.catalog.Catalog.sync_index = sync_index
"""

BAD_SCALARS = """\
train:
  main: slow
  output-scalars: '((('
"""


def _log(guild):
    return (guild.home / "guildd.log").read_text()


def _status(guild):
    return {r["id"]: r["status"] for r in guild.runs()}


def test_bad_output_scalars_are_refused_before_any_run_exists(guild):
    (guild.project / "guild.yml").write_text(BAD_SCALARS)
    for how in ("--background", "--stage"):
        r = guild.ctl("run", "train", how, "-y", check=False)
        assert r.returncode != 0
        assert guild.run_dirs() == []
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1, r.stderr
        assert "guild.yml" in lines[0] and "invalid output scalar config: '((('" in lines[0]
    assert guild.runs() == []


def _start_long_runs(guild, n):
    ids = []
    for _ in range(n):
        r = guild.ctl("run", "slow.py", "steps=100000", "--background", "-y")
        ids.append(r.stdout.split(" as ")[1].split()[0])
    for run_id in ids:
        guild.wait_status(run_id, "running")
    return ids


def _kill_everything(guild, run_ids):
    """guildd and the runs' processes die at once (a power cut, an OOM kill): the runs are
    left `running`, with a dead pid and no recorded end."""
    guild.kill_daemon(signal.SIGKILL)
    _stop_everything(guild.home)
    run_dirs = [str(guild.home / "runs" / run_id) for run_id in run_ids]

    def gone():
        for proc in psutil.process_iter(["cwd"]):
            if (proc.info["cwd"] or "") in run_dirs:
                return False
        return True

    wait_for(gone, what="the runs' processes to die")
    for run_id in run_ids:
        for name in ("exit_status", "stopped"):
            path = guild.home / "runs" / run_id / ".guild" / "attrs" / name
            if path.is_file():
                path.unlink()


def _damage(guild, bad_scalars, garbage, unreadable):
    """Three ways a run dir goes bad: a bad output-scalars in its op, garbage attrs, and
    files that can't be read (directories where files belong: root reads any file)."""
    attrs = guild.home / "runs" / bad_scalars / ".guild" / "attrs"
    op = yaml.safe_load((attrs / "op").read_text())
    op["output-scalars"] = "((("
    (attrs / "op").write_text(yaml.safe_dump(op))
    # Output the last daemon didn't read: the next one parses it with that config.
    with open(guild.home / "runs" / bad_scalars / ".guild" / "output", "a") as f:
        f.write("loss: 0.5\n")

    gdir = guild.home / "runs" / garbage / ".guild"
    (gdir / "attrs" / "op").write_bytes(b"\xff\xfe\x00op: [garbage")
    (gdir / "attrs" / "flags").write_text("{not: yaml: [")
    (gdir / "attrs" / "started").write_text("yesterday\n")
    (gdir / "LOCK").write_text("not a pid\n")
    (gdir / "queue").write_text('["not", "a", "queue", "file"]')

    gdir = guild.home / "runs" / unreadable / ".guild"
    (gdir / "attrs" / "exit_status").mkdir()
    (gdir / "attrs" / "label").unlink(missing_ok=True)
    (gdir / "attrs" / "label").mkdir()
    (gdir / "pipeline-steps").write_bytes(b"\xff\xff\xff\xff not a protobuf")


def _damaged_home(guild):
    """A home with a completed run and three damaged `running` runs whose processes died."""
    guild.ctl("run", "train.py", "-y")
    good = guild.runs()[0]["id"]
    damaged = _start_long_runs(guild, 3)
    _kill_everything(guild, damaged)
    _damage(guild, *damaged)
    return good, damaged


def _serves(guild, good, damaged):
    """The daemon answers, lists every run, keeps the good one, ends the damaged ones as
    errors, and starts new runs."""
    status = _status(guild)
    assert status[good] == "completed"
    for run_id in damaged:
        assert status[run_id] == "error", run_id
    r = guild.ctl("run", "train.py", "-y")
    assert "loss:" in r.stdout
    assert guild.runs()[0]["status"] == "completed"


def test_damaged_running_runs_end_as_errors_and_the_daemon_serves(guild):
    good, damaged = _damaged_home(guild)
    guild.start_daemon()
    for run_id in damaged:
        wait_for(lambda: _status(guild)[run_id] == "error", what=f"run {run_id[:8]} to end")
    _serves(guild, good, damaged)
    log = _log(guild).splitlines()
    for run_id in damaged:
        # Each damaged run's end is logged with why.
        assert any(run_id[:8] in line and "error" in line for line in log), run_id
    assert any(damaged[0][:8] in line and "invalid output scalar config" in line for line in log)
    # The daemon survives a restart with these runs in its home.
    guild.stop()
    guild.start_daemon()
    _serves(guild, good, damaged)


def test_damaged_run_dirs_found_on_disk_are_indexed_as_errors(guild):
    good, damaged = _damaged_home(guild)
    # A fresh index: every run is read back from its dir.
    for path in guild.home.glob("guildd-index.db*"):
        path.unlink()
    guild.start_daemon()
    _serves(guild, good, damaged)
    log = _log(guild)
    assert f"run {damaged[1][:8]}: cannot read its run dir" in log


def _autostart(guild):
    guild.env.pop("GUILDCTL_NO_AUTOSTART")
    guild.home.mkdir(parents=True)
    return guild


def test_exit_for_a_home_it_cannot_use_is_logged_and_shown(guild_no_daemon):
    g = _autostart(guild_no_daemon)
    runs = g.home / "runs"
    runs.write_text("not a directory\n")
    r = g.ctl("runs", check=False)
    assert r.returncode != 0
    error = r.stderr.strip().splitlines()[-1]
    assert error.startswith("guildctl: guildd exited: ") and "File exists" in error and str(runs) in error
    log = _log(g)
    assert "guildd exiting" in log and "File exists" in log and str(runs) in log


def test_exit_for_a_damaged_home_is_logged_and_shown(guild_no_daemon):
    g = _autostart(guild_no_daemon)
    trash = g.home / "trash" / "runs"
    trash.parent.mkdir()
    trash.write_text("not a directory\n")
    r = g.ctl("runs", check=False)
    assert r.returncode != 0
    error = r.stderr.strip().splitlines()[-1]
    assert error.startswith("guildctl: guildd exited: ") and "Not a directory" in error and str(trash) in error
    log = _log(g)
    assert "guildd exiting" in log and "Not a directory" in log and str(trash) in log
    assert not (g.home / "guildd.sock").exists()
    # Once the home is mended the daemon starts.
    trash.unlink()
    assert g.ctl("runs").returncode == 0


def test_exit_after_the_daemon_answered_is_logged_and_shown(guild_no_daemon, tmp_path):
    # The socket answers before start-up ends (requests wait for it): a guildctl that started
    # the daemon and is waiting on it learns why it exited.
    g = _autostart(guild_no_daemon)
    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(FAIL_AT_START_UP)
    gate = tmp_path / "fail-now"
    g.env.update(PYTHONPATH=str(inject), GUILDD_TEST_FAIL_AT=str(gate))
    stderr = tmp_path / "stderr"
    with open(stderr, "w") as f:
        proc = g.popen("runs", stdout=subprocess.DEVNULL, stderr=f)
    wait_for(lambda: "commands wait" in stderr.read_text(), what="guildctl to wait for the start-up")
    gate.touch()
    assert proc.wait(timeout=60) != 0
    error = stderr.read_text().strip().splitlines()[-1]
    assert error == f"guildctl: guildd exited: RuntimeError: a bug at start-up (see {g.home / 'guildd.log'})"
    log = _log(g)
    assert "guildd exiting: RuntimeError: a bug at start-up" in log and "Traceback" in log
    assert not (g.home / "guildd.sock").exists()


def test_a_queued_run_with_damaged_attrs_ends_as_an_error_and_the_queue_goes_on(guild):
    guild.ctl("queue", "pause")
    bad_id, good_id = (_staged_id(guild.ctl("run", "train.py", "--stage", "-y")) for _ in range(2))
    # Damaged while it waits: its flags are no longer a mapping.
    (guild.home / "runs" / bad_id / ".guild" / "attrs" / "flags").write_text("[1, 2]\n")
    guild.ctl("queue", "resume")
    assert guild.wait_status(bad_id, "error")["status"] == "error"
    assert guild.wait_status(good_id, "completed")["status"] == "completed"
    output = guild.ctl("cat", bad_id, "--output").stdout
    assert "guildd: run ended as an error when the queue started it" in output
    assert f"run {bad_id[:8]}: cannot go on with it when the queue started it" in _log(guild)
    assert bad_id[:8] not in guild.ctl("queue").stdout



def _staged_id(result):
    return result.stdout.split(" staged as ")[1].split()[0]
