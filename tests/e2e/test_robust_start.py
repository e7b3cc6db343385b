"""One bad run or one bad config never makes a GUILD_HOME unusable: a bad output-scalars is
refused before a run exists; damaged runs found at start-up end as errors (the reason in
guildd.log) while the daemon starts and serves; and whenever guildd exits, guildd.log and the
guildctl that started it say why."""

import os
import pwd
import shutil
import signal
import subprocess
import sys
import uuid

import psutil
import pytest
import yaml

from guild_common import rundir
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


# Start-up held before the daemon claims its home, injected into guildd (only) when a test
# asks: the daemon writes its pid to the gate file and waits until the file is gone.
HOLD_AT_START = """\
import os, sys, time
gate = os.environ.get("GUILDD_TEST_HOLD_AT")
if gate and sys.orig_argv[1:3] == ["-m", "guildd.main"]:
    import guildd.homelock
    claim = guildd.homelock.claim

    def held(*args, **kw):
        with open(gate + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.rename(gate + ".tmp", gate)
        while os.path.exists(gate):
            time.sleep(0.02)
        return claim(*args, **kw)

    guildd.homelock.claim = held
"""


def _last_line(result):
    lines = result.stderr.strip().splitlines()
    assert lines, result
    assert "Traceback" not in result.stderr, result.stderr
    return lines[-1]


@pytest.mark.parametrize(
    "sig, shown, logged",
    [
        # Nothing can log its own SIGKILL: the guildctl that started it notes it in the log.
        ("SIGKILL", "guildd exited: killed by SIGKILL (see {log})", "guildd (pid {pid}) exited: killed by SIGKILL"),
        ("SIGTERM", "guildd exited: stopped by SIGTERM during start-up", "guildd exiting: stopped by SIGTERM during start-up"),
    ],
    ids=["sigkill", "sigterm"],
)
def test_a_daemon_killed_during_start_up_says_so(guild_no_daemon, tmp_path, sig, shown, logged):
    g = _autostart(guild_no_daemon)
    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(HOLD_AT_START)
    gate = tmp_path / "held"
    g.env.update(PYTHONPATH=str(inject), GUILDD_TEST_HOLD_AT=str(gate))
    with open(tmp_path / "stderr", "w") as f:
        proc = g.popen("runs", stdout=subprocess.DEVNULL, stderr=f)
    wait_for(gate.exists, timeout=60, what="guildd to reach its start-up")
    pid = int(gate.read_text())
    os.kill(pid, getattr(signal, sig))
    assert proc.wait(timeout=60) != 0
    gate.unlink()
    r = subprocess.CompletedProcess([], proc.returncode, "", (tmp_path / "stderr").read_text())
    assert _last_line(r) == "guildctl: " + shown.format(log=g.home / "guildd.log")
    assert logged.format(pid=pid) in _log(g)


def _lock_is_a_directory(g):
    (g.home / "guildd.lock").mkdir()
    return f"refusing {g.home / 'guildd.lock'}: it is a directory, not a regular file"


def _log_is_a_directory(g):
    (g.home / "guildd.log").mkdir()
    return None  # no log to write: the reason is shown, and the test checks it is alone there


def _unbindable_socket_dir(g):
    # A GUILD_HOME too deep for a socket path binds in XDG_RUNTIME_DIR: here a read-only one.
    g.home = g.home / ("deep-home-" * 10) / "home"
    g.home.mkdir(parents=True)
    g.env["GUILD_HOME"] = str(g.home)
    runtime = g.home.parent / "runtime"
    _mount_tmpfs(runtime, "ro,size=1m,mode=700")
    g.env["XDG_RUNTIME_DIR"] = str(runtime)
    return str(runtime)


@pytest.mark.parametrize("breakage", [_lock_is_a_directory, _log_is_a_directory, _unbindable_socket_dir],
                         ids=["lock-is-a-directory", "log-is-a-directory", "socket-dir-read-only"])
def test_a_start_up_failure_is_one_line_in_guildctl_and_the_log(guild_no_daemon, breakage, mounts):
    g = _autostart(guild_no_daemon)
    reason = breakage(g)
    r = g.ctl("runs", check=False)
    assert r.returncode != 0
    line = _last_line(r)
    assert line.startswith("guildctl: guildd exited: "), line
    if reason is None:
        assert (g.home / "guildd.log").is_dir() and "guildd.log" in line
        return
    assert reason in line
    log = [entry for entry in _log(g).splitlines() if "guildd exiting: " in entry]
    assert len(log) == 1 and reason in log[0], log


@pytest.fixture
def mounts():
    """Unmounts what a test mounted (tmpfs needs root; such a test skips without it)."""
    yield
    for path in reversed(_MOUNTED):
        subprocess.run(["umount", "-l", str(path)], capture_output=True)
    _MOUNTED.clear()


_MOUNTED: list = []


def _mount_tmpfs(path, options):
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a tmpfs (CI runs as root)")
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    _MOUNTED.append(path)


def test_a_read_only_home_is_shown_and_nothing_is_written(guild_no_daemon, mounts):
    g = _autostart(guild_no_daemon)
    _mount_tmpfs(g.home, "ro,size=1m,mode=755")
    r = g.ctl("runs", check=False)
    assert r.returncode != 0
    assert _last_line(r) == f"guildctl: guildd exited: cannot use GUILD_HOME {g.home}: Read-only file system"


def test_a_home_of_another_user_is_refused_and_gets_no_file(guild_no_daemon):
    if os.geteuid() != 0:
        pytest.skip("needs root to give a GUILD_HOME to another user")
    g = _autostart(guild_no_daemon)
    nobody = pwd.getpwnam("nobody")
    os.chown(g.home, nobody.pw_uid, nobody.pw_gid)
    r = g.ctl("runs", check=False)
    assert r.returncode == 4  # PermissionDenied
    assert "is owned by nobody" in _last_line(r)
    # guildd itself (as a systemd unit would run it) says the same, and writes nothing there.
    r = subprocess.run(["guildd", "--foreground", "--no-log-stderr", "-H", str(g.home)], env=g.env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 4
    assert _last_line(r) == f"guildd: cannot use GUILD_HOME {g.home}: it is owned by nobody (uid {nobody.pw_uid}), not by root (uid 0)"
    assert list(g.home.iterdir()) == []


@pytest.mark.parametrize(
    "options, reason",
    [
        (["--shared", "--admin-group", "no-such-group-here"], "--admin-group: no group named 'no-such-group-here'"),
        (["--admin-group", "root"], "--admin-group and --unconfined-gpus need --shared (a per-user daemon has one user)"),
    ],
    ids=["unknown-admin-group", "admin-group-without-shared"],
)
def test_bad_daemon_options_are_one_line_and_logged(guild_no_daemon, options, reason):
    g = guild_no_daemon
    g.home.mkdir(parents=True)
    r = subprocess.run(["guildd", "--foreground", "--no-log-stderr", "-H", str(g.home), *options], env=g.env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert r.stderr == f"guildd: {reason}\n"
    assert f"guildd exiting: {reason}" in _log(g)


# Another program listening where guildd's socket belongs: it accepts and hangs up.
NOT_GUILDD = """\
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
s.listen(16)
print("ready", flush=True)
while True:
    conn, _ = s.accept()
    conn.close()
"""


def test_another_program_on_the_socket_is_named_not_reported_missing(guild_no_daemon, tmp_path):
    g = _autostart(guild_no_daemon)
    sock = g.home / "guildd.sock"
    (tmp_path / "listen.py").write_text(NOT_GUILDD)
    listener = subprocess.Popen([sys.executable, str(tmp_path / "listen.py"), str(sock)], stdout=subprocess.PIPE, text=True)
    try:
        assert listener.stdout.readline() == "ready\n"
        for args in (("runs",), ("daemon", "status")):
            r = g.ctl(*args, check=False)
            assert r.returncode == 1, args
            line = _last_line(r)
            assert line.startswith(f"guildctl: something accepts connections on {sock} but does not answer as guildd"), line
            assert line.endswith(f"stop what listens there or remove {sock}")
            assert "not running" not in r.stdout + r.stderr and "starting guildd" not in r.stderr
    finally:
        listener.kill()
        listener.wait()


# Indexing slowed down, in small batches, in the guildd it is given to: a first start that
# indexes many runs found on disk, long enough to be stopped in the middle.
SLOW_INDEXING = """\
import time
import guildd.catalog, guildd.manage

guildd.catalog.BIG_SYNC = 10
index_run_dir = guildd.manage.index_run_dir

def slow(*args, **kw):
    time.sleep(0.05)
    return index_run_dir(*args, **kw)

guildd.manage.index_run_dir = slow
"""


def test_sigterm_while_a_first_start_indexes_stops_it_and_loses_nothing(guild, tmp_path):
    guild.ctl("run", "train.py", "-y")
    first = guild.runs()[0]
    guild.stop()
    for path in guild.home.glob("guildd-index.db*"):
        path.unlink()
    runs = guild.home / "runs"
    for _ in range(200):  # copies of the run, each under an id of its own
        run_id = uuid.uuid4().hex
        shutil.copytree(runs / first["id"], runs / run_id, symlinks=True)
        rundir.write_attrs(runs / run_id, {"id": run_id})
    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(SLOW_INDEXING)
    daemon = subprocess.Popen(["guildd", "--foreground", "--no-log-stderr", "-H", str(guild.home)],
                              env={**guild.env, "PYTHONPATH": str(inject)}, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: "indexed 10 of 201 runs" in _log(guild), what="guildd to index its first runs")
    daemon.send_signal(signal.SIGTERM)
    _, stderr = daemon.communicate(timeout=60)
    assert daemon.returncode != 0
    assert stderr.strip().splitlines()[-1] == "guildd: stopped by SIGTERM during start-up"
    log = _log(guild)
    assert "guildd exiting: stopped by SIGTERM during start-up" in log
    assert "shutting down on SIGTERM" in log
    assert "indexed 200 of 201" not in log  # stopped before the end, not after
    assert not (guild.home / "guildd.sock").exists()
    # The next start indexes the rest: every run is listed, as it was.
    guild.start_daemon()
    listed = guild.runs()
    assert len(listed) == 201
    assert {(r["status"], r["operation"]) for r in listed} == {(first["status"], first["operation"])}
