"""Background runs, watching, stopping, --stop-after, restart and proto, end to end."""

import pathlib
import signal
import subprocess
import time

from tests.conftest import wait_for


def _started_id(stdout):
    return stdout.split(" started in background as ")[1].split()[0]


def test_background_returns_at_once_and_watch_follows_to_the_end(guild):
    r = guild.ctl("run", "slow.py", "steps=15", "--background", "-y")
    run_id = _started_id(r.stdout)
    assert len(run_id) == 32
    assert guild.info(run_id)["status"] == "running"
    w = guild.ctl("watch")  # the latest running run
    assert w.stdout.splitlines()[-1] == "loss: 0.066667"
    assert w.stdout.count("loss:") == 15
    assert f"Run {run_id} stopped with a status of 'completed'" in w.stderr
    assert guild.info(run_id)["status"] == "completed"


def test_watch_tail_shows_the_last_lines_of_a_finished_run(guild):
    guild.ctl("run", "slow.py", "steps=5", "delay=0", "-y")
    w = guild.ctl("watch", "1", "--tail", "2")
    assert w.stdout.splitlines() == ["step: 4", "loss: 0.200000"]


def test_watch_with_nothing_running_says_so(guild):
    r = guild.ctl("watch", check=False)
    assert r.returncode == 1
    assert r.stderr.startswith("guildctl: nothing to watch")


def test_two_watchers_see_the_same_output(guild):
    run_id = _started_id(guild.ctl("run", "slow.py", "steps=10", "--background", "-y").stdout)
    watchers = [guild.popen("watch", run_id, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [w.communicate(timeout=60)[0] for w in watchers]
    assert outs[0] == outs[1] and outs[0].count("loss:") == 10


def test_stop_terminates_a_running_run(guild):
    run_id = _started_id(guild.ctl("run", "slow.py", "steps=1000", "--background", "-y").stdout)
    wait_for(lambda: "loss" in (pathlib.Path(guild.info(run_id)["run_dir"]) / ".guild" / "output").read_text())
    r = guild.ctl("stop", "1")
    assert r.stdout.startswith(f"Stopping {run_id}")
    info = guild.info(run_id)  # stop waits for the end
    assert info["status"] == "terminated"
    assert info["exit_status"] == -15


def test_ctrl_c_in_the_client_stops_the_run(guild):
    p = guild.popen("run", "slow.py", "steps=1000", "-y", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout.readline() == "step: 0\n"
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 128 + 15
    assert "Stopping run" in err
    assert guild.info()["status"] == "terminated"


def test_background_run_survives_its_client(guild):
    p = guild.popen("run", "slow.py", "steps=10", "-y", stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline() == "step: 0\n"
    p.kill()  # the client dies, not the run
    p.wait()
    info = guild.wait_status(guild.info()["id"], "completed")
    assert info["scalars"]["loss"][1] == 9


def test_stop_after_stops_the_run(guild):
    start = time.monotonic()
    r = guild.ctl("run", "slow.py", "steps=1000", "--stop-after", "1", "-y", check=False)
    assert time.monotonic() - start < 15
    assert r.returncode == 128 + 15
    assert "Stopping process early" in r.stdout
    assert guild.info()["status"] == "terminated"


def test_restart_keeps_the_id_takes_new_flags_and_appends_scalars(guild):
    guild.ctl("run", "slow.py", "steps=3", "delay=0", "-y")
    first = guild.info()
    r = guild.ctl("run", "--restart", first["id"][:8], "steps=5", "-y")
    assert r.stdout.count("loss:") == 5
    again = guild.info()
    assert again["id"] == first["id"]
    assert len(guild.runs()) == 1
    assert again["flags"]["steps"] == 5
    assert again["label"] == "delay=0 steps=5"
    assert again["status"] == "completed"
    out = (pathlib.Path(again["run_dir"]) / ".guild" / "output").read_text()
    assert out.count("loss:") == 8  # output of both runs, scalar history kept
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(pathlib.Path(again["run_dir"]) / ".guild"))
    acc.Reload()
    assert len(acc.Scalars("loss")) == 8


def test_restart_uses_the_runs_own_source_unless_forced(guild):
    (guild.project / "v.py").write_text("print('v1')\n")
    guild.ctl("run", "v.py", "-y")
    (guild.project / "v.py").write_text("print('v2')\n")
    assert guild.ctl("run", "--restart", "1", "-y").stdout == "v1\n"
    assert guild.ctl("run", "--restart", "1", "--force-sourcecode", "-y").stdout == "v2\n"


def test_proto_makes_a_new_run_from_an_old_one(guild):
    (guild.project / "v.py").write_text("a = 1\nprint('v1', a)\n")
    guild.ctl("run", "v.py", "a=2", "-y")
    old = guild.info()
    (guild.project / "v.py").write_text("a = 1\nprint('v2', a)\n")
    r = guild.ctl("run", "--proto", old["id"], "a=3", "-y")
    assert r.stdout == "v1 3\n"
    new = guild.info()
    assert new["id"] != old["id"] and new["flags"] == {"a": 3}


def test_stage_then_start(guild):
    # Queue processing is off (a fresh daemon's default): the staged run waits; --start starts it.
    r = guild.ctl("run", "train.py", "x=0.7", "--stage", "-y")
    assert " staged as " in r.stdout
    run_id = r.stdout.split(" staged as ")[1].split()[0]
    assert guild.info(run_id)["status"] == "staged"
    assert (guild.home / "runs" / run_id / ".guild" / "STAGED").exists()
    r = guild.ctl("run", "--start", run_id, "-y")
    assert r.stdout.startswith("loss:")
    info = guild.info(run_id)
    assert info["status"] == "completed" and info["flags"]["x"] == 0.7
    assert not (guild.home / "runs" / run_id / ".guild" / "STAGED").exists()
