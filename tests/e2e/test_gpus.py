"""`guildctl gpus` against a real guildd whose GPUs are simulated (GUILD_SIMULATED_GPUS in
its environment): a spec, a YAML file the daemon reads again on every poll (foreign
processes appear and vanish, one of our runs is named), no GPUs, and bad settings."""

import getpass
import json
import os
import subprocess

import pytest

from tests.conftest import wait_for
from tests.e2e.conftest import Guild

G = 2**30


@pytest.fixture
def start_guild(simulated_daemons):
    """Starts a daemon with `GUILD_SIMULATED_GPUS` set to the value given."""
    return simulated_daemons


def _write(path, text):
    """Rewrites the GPUs file atomically: the daemon may read it at any moment."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _gpus(guild):
    return guild.ctl("gpus").stdout.splitlines()


def _gpus_json(guild):
    return json.loads(guild.ctl("gpus", "--json").stdout)


def test_simulated_spec(start_guild):
    guild = start_guild("4x80G")
    lines = _gpus(guild)
    assert lines[0].split() == ["GPU", "NAME", "MEMORY", "UTIL", "HELD", "BY"]
    assert [line.split()[0] for line in lines[1:5]] == ["0", "1", "2", "3"]
    for line in lines[1:5]:
        assert "Simulated GPU 80G" in line and "0 / 80G" in line and line.endswith("  -")
    assert len(lines) == 6 and lines[5].startswith("CPUs: ")
    value = _gpus_json(guild)
    assert value["backend"] == "simulated" and value["reason"] == ""
    assert [g["index"] for g in value["gpus"]] == [0, 1, 2, 3]
    assert all(g["memory_total"] == g["memory_free"] == 80 * G and g["processes"] == [] for g in value["gpus"])
    assert value["cpu_count"] >= 1 and value["memory_total"] >= value["memory_available"] > 0


def test_foreign_process_appears_and_vanishes(start_guild, tmp_path):
    path = tmp_path / "gpus.yml"
    _write(path, "gpus: 4x80G\ntopology:\n  - {gpus: [0, 1], link: NV12}\n")
    guild = start_guild(path)
    assert all(line.endswith("  -") for line in _gpus(guild)[1:5])
    # Someone else's job starts on GPU 2.
    _write(path, "gpus: 4x80G\nprocesses:\n  - {gpu: 2, pid: 4242, user: bob, memory: 10G}\n")
    lines = _gpus(guild)
    assert lines[3].split()[0] == "2"
    assert "10G / 80G" in lines[3] and lines[3].endswith("foreign pid 4242 (bob)")
    assert all(line.endswith("  -") for line in lines[1:5] if line is not lines[3])
    gpu2 = _gpus_json(guild)["gpus"][2]
    assert gpu2["processes"] == [{"pid": 4242, "user": "bob", "used_memory": 10 * G, "run_id": ""}]
    assert (gpu2["memory_used"], gpu2["memory_free"]) == (10 * G, 70 * G)
    # ...and ends.
    _write(path, "gpus: 4x80G\n")
    assert all(line.endswith("  -") for line in _gpus(guild)[1:5])
    assert _gpus_json(guild)["gpus"][2]["processes"] == []


def test_a_run_of_ours_is_named(start_guild, tmp_path):
    path = tmp_path / "gpus.yml"
    _write(path, "gpus: 2x80G\n")
    guild = start_guild(path)
    r = guild.ctl("run", "slow.py", "steps=600", "--background", "-y")
    run_id = r.stdout.split(" as ")[1].split()[0]
    info = wait_for(lambda: (i := guild.info(run_id))["pid"] and i, what="the run's process")
    _write(
        path,
        "gpus: 2x80G\nprocesses:\n"
        f"  - {{gpu: 1, pid: {info['pid']}, memory: 20G}}\n"
        "  - {gpu: 1, pid: 4242, user: bob, memory: 1G}\n",
    )
    line = _gpus(guild)[2]
    assert line.split()[0] == "1" and "21G / 80G" in line
    assert line.endswith(f"run {run_id[:8]} ({getpass.getuser()}), foreign pid 4242 (bob)")
    procs = _gpus_json(guild)["gpus"][1]["processes"]
    assert {p["pid"]: p["run_id"] for p in procs} == {info["pid"]: run_id, 4242: ""}
    guild.ctl("stop", run_id, "-y")
    guild.wait_status(run_id, "terminated")
    # The run is over: a process the file still lists under its old pid is no run of ours.
    procs = _gpus_json(guild)["gpus"][1]["processes"]
    assert {p["pid"]: p["run_id"] for p in procs} == {info["pid"]: "", 4242: ""}


def test_no_gpus(start_guild):
    guild = start_guild("0")
    assert _gpus(guild)[0] == "No GPUs (simulated: no GPUs)"
    assert _gpus(guild)[1].startswith("CPUs: ")
    value = _gpus_json(guild)
    assert value["gpus"] == [] and value["reason"] == "simulated: no GPUs"


def test_broken_file_reports_no_gpus_and_recovers(start_guild, tmp_path):
    path = tmp_path / "gpus.yml"
    _write(path, "gpus: 2x80G\n")
    guild = start_guild(path)
    _write(path, "gpus: 2x80G\nprocesses:\n  - {gpu: 5, pid: 1}\n")
    r = guild.ctl("gpus")
    assert r.stdout.splitlines()[0] == (
        f"No GPUs (simulated: GUILD_SIMULATED_GPUS file {path}: processes[0].gpu: 5 is not a GPU index (0 to 1))"
    )
    _write(path, "gpus: 2x80G\n")
    assert len(_gpus(guild)) == 4


@pytest.mark.parametrize(
    "setting, message",
    [
        ("4x", "guildd: GUILD_SIMULATED_GPUS='4x': '4x' has no memory size after 'x'"),
        ("/nonexistent/gpus.yml", "guildd: GUILD_SIMULATED_GPUS: cannot read /nonexistent/gpus.yml"),
    ],
)
def test_bad_setting_stops_the_daemon_at_start(tmp_path, project, setting, message):
    guild = Guild(tmp_path / "guild-home", project, extra_env={"GUILD_SIMULATED_GPUS": setting})
    r = subprocess.run(
        ["guildd", "--foreground", "--no-log-stderr", "-H", str(guild.home)],
        env=guild.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1
    assert r.stderr.strip().startswith(message) and "Traceback" not in r.stderr
    assert not guild.daemon_answers()
