"""Nothing is lost when guildd dies: a small crash matrix (bench/crash_matrix.py, whose
figures this asserts are zero) with kill -9 and with graceful restarts, and a run whose dir
a user removes while it runs."""

import pathlib
import shutil
import signal
import sys

import psutil
import pytest

from tests.conftest import wait_for

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "bench"))
import crash_matrix  # noqa: E402  (bench/ is a scripts dir, not a package)

# Small: each matrix takes ~15 s on two cores. The first kill lands while the pipeline's
# first step prints (its lines printed while no daemon ran must reach the pipeline's output).
SIZES = dict(runs=8, kills=2, trials=4, lines=20, delay=0.08, seed=16)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "graceful"])
def test_no_run_line_scalar_or_trial_is_lost_when_guildd_is_killed_again_and_again(tmp_path, sig):
    m = crash_matrix.Matrix(sig=sig, **SIZES)
    figures = crash_matrix.run_matrix(tmp_path / "matrix", m)
    lost = {key: figures[key] for _label, key in crash_matrix.FIGURES}
    assert lost == dict.fromkeys(lost, 0), figures["problems"]
    # every run, trial and step was checked: 8 runs, 4 trials, 2 steps
    assert figures["checked"] == m.runs + m.trials + 2


def test_a_running_run_whose_dir_is_removed_by_hand_is_forgotten_and_stopped(guild):
    (guild.project / "forever.py").write_text("import time\nwhile True:\n    print('tick', flush=True)\n    time.sleep(0.1)\n")
    run_id = guild.ctl("run", "forever.py", "--background", "-y").stdout.split(" as ")[1].split()[0]
    pid = guild.wait_status(run_id, "running")["pid"]
    run_dir = guild.home / "runs" / run_id
    wait_for(lambda: "tick" in (run_dir / ".guild" / "output").read_text(), what="the run printing")
    shutil.rmtree(run_dir)
    wait_for(lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE,
             what="the run's process to be stopped")
    log = guild.home / "guildd.log"
    wait_for(lambda: f"run {run_id[:8]}: its run dir was removed: the run is forgotten" in log.read_text(),
             what="the daemon to forget the run")
    assert run_id not in [r["id"] for r in guild.runs()]
    assert not run_dir.exists()  # not made again to hold its end
    assert f"ERROR [guildd] run {run_id[:8]}" not in log.read_text()  # a user's delete, not a failure
    # the daemon goes on: a new run runs
    (guild.project / "ok.py").write_text("print('fine')\n")
    assert "fine" in guild.ctl("run", "ok.py", "-y").stdout
