"""The daemon as a process: runs outlive it, one daemon per GUILD_HOME, autostart, errors."""

import json
import os
import pathlib
import pwd
import signal
import socket
import subprocess

import psutil
import pytest

from tests.conftest import wait_for


def _output(guild, run_id):
    return (guild.home / "runs" / run_id / ".guild" / "output").read_text()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "sigterm"])
def test_runs_outlive_the_daemon(guild, sig):
    r = guild.ctl("run", "slow.py", "steps=30", "--background", "-y")
    run_id = r.stdout.split(" as ")[1].split()[0]
    wait_for(lambda: "loss: 0.250000" in _output(guild, run_id), what="the run to print")
    guild.kill_daemon(sig)
    # With the daemon gone the run goes on printing.
    wait_for(lambda: "loss: 0.100000" in _output(guild, run_id), what="the run to go on without guildd")
    guild.start_daemon()
    info = guild.wait_status(run_id, "completed")
    out = _output(guild, run_id)
    assert out.count("loss:") == 30 and out.count("step:") == 30
    assert info["exit_status"] == 0
    assert info["scalars"]["loss"][1] == 29


def test_run_that_ends_while_the_daemon_is_down_is_recorded(guild):
    r = guild.ctl("run", "slow.py", "steps=5", "--background", "-y")
    run_id = r.stdout.split(" as ")[1].split()[0]
    guild.kill_daemon(signal.SIGKILL)
    wait_for(lambda: (guild.home / "runs" / run_id / ".guild" / "attrs" / "exit_status").exists())
    guild.start_daemon()
    info = guild.info(run_id)
    assert info["status"] == "completed"
    assert info["scalars"]["loss"][1] == 4


def test_second_daemon_for_the_same_home_is_refused(guild):
    r = subprocess.run(["guildd", "--foreground", "-H", str(guild.home)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert r.stderr.strip() == f"guildd: guildd is already running for {guild.home} (pid {guild.daemon.pid})"
    assert guild.daemon_answers()


def test_socket_is_private(guild):
    sock = guild.home / "guildd.sock"
    target = pathlib.Path(os.readlink(sock)) if sock.is_symlink() else sock
    assert oct(target.stat().st_mode & 0o777) == "0o600"


def test_stale_socket_is_cleaned_up(guild_no_daemon):
    g = guild_no_daemon
    g.home.mkdir(parents=True)
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(g.home / "guildd.sock"))
    s.close()  # a socket file nobody listens on, as a dead daemon leaves it
    g.env.pop("GUILDCTL_NO_AUTOSTART")
    r = g.ctl("run", "train.py", "-y")
    assert "loss:" in r.stdout


def test_autostart_says_so_on_stderr_and_can_be_turned_off(guild_no_daemon):
    g = guild_no_daemon
    r = g.ctl("run", "train.py", "-y", check=False)
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and "guildd is not running" in r.stderr
    assert "Traceback" not in r.stderr
    g.env.pop("GUILDCTL_NO_AUTOSTART")
    r = g.ctl("--no-autostart", "runs", check=False)
    assert r.returncode == 1
    r = g.ctl("run", "train.py", "-y")
    assert r.stderr.startswith(f"guildctl: starting guildd for {g.home}")
    assert "loss:" in r.stdout
    r = g.ctl("runs")
    assert "starting guildd" not in r.stderr


def test_clients_racing_to_autostart_get_one_daemon(guild_no_daemon):
    g = guild_no_daemon
    g.env.pop("GUILDCTL_NO_AUTOSTART")
    procs = [g.popen("runs", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    for p in procs:
        _out, err = p.communicate(timeout=90)
        assert p.returncode == 0, err

    def daemons():
        return [
            p for p in psutil.process_iter(["cmdline", "status"])
            if "guildd.main" in " ".join(p.info["cmdline"] or []) and str(g.home) in " ".join(p.info["cmdline"] or [])
            and p.info["status"] != psutil.STATUS_ZOMBIE
        ]

    # The daemons that lost the race exit by themselves; one stays and serves.
    wait_for(lambda: len(daemons()) == 1, what="the losing daemons to exit")
    assert g.ctl("daemon", "status").returncode == 0


def test_daemon_start_status_stop(guild_no_daemon):
    g = guild_no_daemon
    r = g.ctl("daemon", "status", check=False)
    assert r.returncode == 1 and "not running" in r.stdout
    r = g.ctl("daemon", "start")
    assert r.stdout.startswith("guildd ") and " started for " in r.stdout
    status = json.loads(g.ctl("daemon", "status", "--json").stdout)
    assert status["running"] and status["guild_home"] == str(g.home)
    # A per-user daemon: only its user's, who runs it.
    me = pwd.getpwuid(os.getuid()).pw_name
    assert (status["shared"], status["user"], status["admin"]) == (False, me, True)
    assert f"  shared: no (only {me})" in g.ctl("daemon", "status").stdout.splitlines()
    assert "already running" in g.ctl("daemon", "start").stdout
    r = g.ctl("daemon", "stop")
    assert r.stdout.startswith("guildd stopped")
    assert not psutil.pid_exists(status["pid"]) or psutil.Process(status["pid"]).status() == psutil.STATUS_ZOMBIE
    assert g.ctl("daemon", "status", check=False).returncode == 1


def test_daemon_stop_leaves_runs_running(guild_no_daemon):
    g = guild_no_daemon
    g.ctl("daemon", "start")
    r = g.ctl("run", "slow.py", "steps=20", "--background", "-y")
    run_id = r.stdout.split(" as ")[1].split()[0]
    g.ctl("daemon", "stop")
    wait_for(lambda: "loss: 0.100000" in _output(g, run_id))
    g.ctl("daemon", "start")
    info = g.wait_status(run_id, "completed")
    assert _output(g, run_id).count("loss:") == 20 and info["exit_status"] == 0


def test_unusable_guild_home_is_a_clear_error(tmp_path, project):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    env = {**os.environ, "GUILD_HOME": str(blocker / "home")}
    r = subprocess.run(["guildctl", "run", "train.py", "-y"], cwd=project, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 4
    assert "Traceback" not in r.stderr
    assert str(blocker / "home") in r.stderr.splitlines()[-1]
    r = subprocess.run(["guildd", "--foreground", "-H", str(blocker / "home")], capture_output=True, text=True, timeout=30)
    assert r.returncode == 4 and r.stderr.startswith("guildd: cannot use GUILD_HOME")


def test_long_guild_home_works(tmp_path, project):
    home = tmp_path / ("deep-" * 30) / "guild-home"
    env = {**os.environ, "GUILD_HOME": str(home)}
    try:
        r = subprocess.run(["guildctl", "run", "train.py", "-y"], cwd=project, env=env, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert (home / "guildd.sock").is_symlink()
    finally:
        subprocess.run(["guildctl", "daemon", "stop"], env=env, capture_output=True, timeout=30)


def _shim_server(guild):
    servers = [p for p in psutil.Process(guild.daemon.pid).children() if "--serve" in p.cmdline()]
    assert len(servers) == 1, servers
    return servers[0]


def test_a_dead_shim_server_is_started_again(guild):
    assert "loss:" in guild.ctl("run", "train.py", "-y").stdout
    first = _shim_server(guild)
    first.kill()
    wait_for(lambda: not first.is_running() or first.status() == psutil.STATUS_ZOMBIE, what="the shim server to die")
    r = guild.ctl("run", "train.py", "x=0.5", "-y")
    assert "loss:" in r.stdout
    assert [run["status"] for run in guild.runs()] == ["completed", "completed"]
    assert _shim_server(guild).pid != first.pid


def test_the_shim_server_goes_with_the_daemon_and_its_runs_stay(guild):
    r = guild.ctl("run", "slow.py", "steps=20", "--background", "-y")
    run_id = r.stdout.split(" as ")[1].split()[0]
    wait_for(lambda: "loss:" in _output(guild, run_id), what="the run to print")
    server = _shim_server(guild)
    guild.kill_daemon(signal.SIGKILL)
    server.wait(timeout=10)  # end-of-file on its stdin: it exits
    guild.start_daemon()
    assert guild.wait_status(run_id, "completed")["exit_status"] == 0
    assert _output(guild, run_id).count("loss:") == 20
