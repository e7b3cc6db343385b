"""`guildctl run --run-dir DIR`, as Guild 0.9 does it: the run goes in DIR (Guild's layout),
guildctl runs it itself in the foreground, it says the run is outside Guild's view, and the
daemon's run store never lists it. What can't be done outside the run store is refused."""

import os
import signal
import subprocess

import pytest
import yaml

from tests.e2e.conftest import run, serve_module, write

TRAIN = """
import sys
x = 1
print("x: %s" % x)
print("loss: 0.5")
sys.stderr.write("warn\\n")
"""

SLOW = """
import time
print("started", flush=True)
time.sleep(600)
"""


@pytest.fixture(scope="module")
def g(tmp_path_factory):
    yield from serve_module(tmp_path_factory, "run-dir")


@pytest.fixture
def project(proj):
    write(proj, {"train.py": TRAIN, "fail.py": "print('bad')\nraise SystemExit(3)\n", "slow.py": SLOW})
    return proj


def attr(run_dir, name):
    return yaml.safe_load((run_dir / ".guild" / "attrs" / name).read_text())


def test_the_run_goes_in_the_dir_in_guilds_layout(g, project, tmp_path):
    run_dir = tmp_path / "out" / "my-run"
    r = run(g, project, "train.py", "x=2", "--run-dir", str(run_dir))
    assert r.stdout == "x: 2\nloss: 0.5\n"
    assert f"Run directory is '{run_dir}' (results will not be visible to Guild)" in r.stderr
    assert "warn" in r.stderr
    assert (run_dir / "train.py").read_text() == (project / "train.py").read_text()
    output = (run_dir / ".guild" / "output").read_text()
    assert "x: 2\n" in output and "loss: 0.5\n" in output and "warn\n" in output
    assert attr(run_dir, "id") == "my-run"  # Guild names such a run after its dir
    assert attr(run_dir, "flags") == {"x": 2}
    assert attr(run_dir, "exit_status") == 0
    assert attr(run_dir, "label") == "x=2"
    assert attr(run_dir, "cmd")[-2:] == ["--x", "2"]
    assert attr(run_dir, "started") <= attr(run_dir, "stopped")
    env = attr(run_dir, "env")
    assert env["RUN_DIR"] == str(run_dir) and env["RUN_ID"] == "my-run"
    assert (run_dir / ".guild" / "attrs" / "env").stat().st_mode & 0o777 == 0o600
    assert (run_dir / ".guild" / "opref").read_text().startswith(f"script:{project} ")
    assert not (run_dir / ".guild" / "LOCK").exists()
    assert g.runs() == []  # not in the run store


def test_exit_code_is_the_runs_and_an_existing_dir_is_reused(g, project, tmp_path):
    run_dir = tmp_path / "reused"
    run_dir.mkdir()
    (run_dir / "keep.txt").write_text("mine")
    assert run(g, project, "train.py", "--run-dir", str(run_dir)).returncode == 0
    r = run(g, project, "fail.py", "--run-dir", str(run_dir), check=False)
    assert r.returncode == 3
    assert r.stdout == "bad\n"
    assert (run_dir / ".guild" / "output").read_text() == "bad\n"  # the earlier run's output is gone
    assert attr(run_dir, "exit_status") == 3
    assert (run_dir / "keep.txt").read_text() == "mine"


def test_ctrl_c_stops_the_run_and_records_terminated(g, project, tmp_path):
    run_dir = tmp_path / "slow"
    p = subprocess.Popen(["guildctl", "run", "slow.py", "--run-dir", str(run_dir), "-y"], cwd=project, env=g.env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline() == "started\n"
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 128 + signal.SIGTERM
    assert "Stopping the run" in err
    assert attr(run_dir, "exit_status") == -signal.SIGTERM


@pytest.mark.parametrize(
    "args, message",
    [
        (["train.py", "--stage"], "--stage can't be used with --run-dir"),
        (["train.py", "--background"], "--background can't be used with --run-dir"),
        (["train.py", "--gpus", "1"], "--gpus can't be used with --run-dir"),
        (["train.py", "--after", "1"], "--priority, --queue and --after can't be used with --run-dir"),
        (["train.py", "x=[1,2]"], "a batch (flag lists or ranges, @file) can't be run with --run-dir"),
        (["train.py", "y=1"], "unsupported flag 'y'"),
        (["--restart", "1"], "--restart can't be used with --run-dir"),
    ],
)
def test_what_needs_the_run_store_is_refused_in_one_line(g, project, tmp_path, args, message):
    run_dir = tmp_path / "refused"
    r = run(g, project, *args, "--run-dir", str(run_dir), check=False)
    assert r.returncode != 0
    assert message in r.stderr
    assert "Traceback" not in r.stderr
    assert not run_dir.exists()


def test_pipelines_dependencies_and_bad_dirs_are_refused(g, project, tmp_path):
    write(project, {"guild.yml": """
        train:
          main: train
        prep:
          main: train
          requires:
            - file: data.txt
        all:
          steps:
            - train
        """, "data.txt": "1\n"})
    r = run(g, project, "all", "--run-dir", str(tmp_path / "p"), check=False)
    assert r.returncode != 0 and "'all' is a pipeline" in r.stderr
    r = run(g, project, "prep", "--run-dir", str(tmp_path / "p"), check=False)
    assert r.returncode != 0 and "'prep' has dependencies" in r.stderr
    assert not (tmp_path / "p").exists()
    afile = tmp_path / "afile"
    afile.write_text("x")
    r = run(g, project, "train", "--run-dir", str(afile), check=False)
    assert r.returncode != 0 and "exists and is not a directory" in r.stderr
    r = run(g, project, "train", "--run-dir", os.path.join(g.home, "runs", "abc"), check=False)
    assert r.returncode != 0 and "is in GUILD_HOME's run store" in r.stderr
    assert g.runs() == []
