"""Grid batches from list flag values, end to end: one trial per value, as Guild runs them."""

import json

from tests.conftest import wait_for


def test_list_values_run_one_trial_each_and_the_batch_goes_to_the_trash(guild):
    r = guild.ctl("run", "train.py", "x=[-1,0,1]", "noise=0", "-y")
    assert r.stdout.count("loss:") == 3
    assert "Running trial " in r.stderr
    # Guild 0.9's line: the trial's flags, `, `-separated (not its label).
    assert " train.py (noise=0, x=-1)\n" in r.stderr
    trials = guild.runs()
    assert [t["operation"] for t in trials] == ["train.py"] * 3
    assert [json.loads(guild.ctl("runs", "info", t["id"], "--json").stdout)["flags"]["x"] for t in trials] == [1, 0, -1]
    deleted = json.loads(guild.ctl("runs", "--deleted", "--json").stdout)
    assert [d["operation"] for d in deleted] == ["train.py+"] and deleted[0]["status"] == "completed"


def test_keep_batch_keeps_it_and_compare_leaves_it_out(guild):
    guild.ctl("run", "train.py", "x=[0.5,1]", "noise=[0,0.1]", "--keep-batch", "-y")
    runs = guild.runs()
    assert [r["operation"] for r in runs].count("train.py") == 4
    assert runs[-1]["operation"] == "train.py+"
    # Trial order: flag names ascending, values in the order given.
    labels = [r["label"] for r in runs if r["operation"] == "train.py"][::-1]
    assert labels == ["noise=0 x=0.5", "noise=0 x=1", "noise=0.1 x=0.5", "noise=0.1 x=1"]
    csv_rows = guild.ctl("compare", "--csv", "-").stdout.splitlines()[1:]
    assert len(csv_rows) == 4
    assert len(guild.ctl("compare", "--csv", "-", "--include-batch").stdout.splitlines()[1:]) == 5


def test_batch_prompt_says_how_many_trials(guild):
    r = guild.ctl("run", "train.py", "x=[1,2]", input="n\n", check=False)
    assert "You are about to run train.py as a batch (2 trials)" in r.stdout
    assert r.returncode == 1 and guild.run_dirs() == []


def test_a_failing_trial_is_reported_and_the_others_run(guild):
    (guild.project / "fails.py").write_text("import sys\nx = 1\nprint('x', x)\nif x == 2:\n    sys.exit(1)\n")
    r = guild.ctl("run", "fails.py", "x=[1,2,3]", "--keep-batch", "-y")
    assert r.stdout.count("x ") == 3
    assert "exited with an error" in r.stderr  # guildd's own lines are stderr, as Guild logs them
    statuses = {r["label"]: r["status"] for r in guild.runs()}
    assert statuses["x=1"] == "completed" and statuses["x=2"] == "error" and statuses["x=3"] == "completed"
    assert statuses["x=[1, 2, 3]"] == "completed"


QUAD = """\
import time
x = 0.0
sleep = 0.0
time.sleep(sleep)
print("loss: %f" % ((x + 0.3) ** 2))
"""


def _batch(guild, op_suffix):
    return next(r for r in guild.runs() if r["operation"].endswith(op_suffix))


def test_sequence_functions_batch_files_and_saved_trials(guild, tmp_path):
    r = guild.ctl("run", "train.py", "x=linspace[-0.6:0.6:4]", "noise=0", "-y")
    assert r.stdout.count("loss:") == 4
    xs = [guild.info(t["id"])["flags"]["x"] for t in guild.runs()][::-1]
    assert xs == [-0.6, -0.2, 0.2, 0.6]
    saved = tmp_path / "trials.csv"
    r = guild.ctl("run", "train.py", "x=[1,2]", "noise=[0,0.1]", "--save-trials", str(saved), "-y")
    assert r.stdout.strip() == f"Saving trials to {saved}"
    assert saved.read_text().splitlines() == ["noise,x", "0,1", "0,2", "0.1,1", "0.1,2"]
    before = len(guild.run_dirs())
    r = guild.ctl("run", "train.py", f"@{saved}", "-y")
    assert r.stdout.count("loss:") == 4 and len(guild.run_dirs()) == before + 4
    r = guild.ctl("run", "train.py", "x=range[1:3]", "--print-trials", "-y")
    assert r.stdout.splitlines() == ["#  noise  x", "1  0.1    1", "2  0.1    2", "3  0.1    3"]


def test_random_search_is_reproducible_with_a_seed(guild):
    def xs():
        guild.ctl("run", "train.py", "x=[-2.0:2.0]", "--max-trials", "3", "--random-seed", "5", "-y")
        return sorted(guild.info(t["id"])["flags"]["x"] for t in guild.runs()[:3])

    first, second = xs(), xs()
    assert first == second and all(-2.0 <= x <= 2.0 for x in first)
    assert [d["operation"] for d in json.loads(guild.ctl("runs", "--deleted", "--json").stdout)] == ["train.py+skopt:random"] * 2


def test_gp_search_restart_uses_earlier_trials(guild):
    (guild.project / "quad.py").write_text(QUAD)
    r = guild.ctl("run", "quad.py", "x=[-2.0:2.0]", "--optimizer", "gp", "--max-trials", "5", "--random-seed", "1", "-y")
    assert r.returncode == 0
    assert r.stderr.count("Random start for optimization") == 3
    assert r.stderr.count("Running trial ") == 5
    batch_id = guild.ctl("select", "-Fo", "quad.py+skopt:gp").stdout.strip()
    assert guild.info(batch_id)["status"] == "completed"  # a gp batch is kept
    r = guild.ctl("run", "-Fo", "random-starts=0", "--restart", batch_id, "--max-trials", "2", "-y")
    assert "Found 5 previous trial(s) for use in optimization" in r.stderr
    assert "Random start" not in r.stderr and r.stderr.count("Running trial ") == 2
    rows = guild.ctl("compare", batch_id, "--csv", "-").stdout.splitlines()
    assert len(rows) == 1 + 7  # comparing the batch compares its trials


def test_a_search_without_dimensions_or_with_a_bad_range_leaves_nothing(guild):
    for args, message in (
        (("x=1", "--optimizer", "gp"), "do not contain any search dimensions"),
        (("x=uniform[3:1]",), "MIN (3) must be less than MAX (1)"),
        (("x=[0:1]", "--optimizer", "nope"), "unknown optimizer 'nope' (optimizers: gp, forest, gbrt, tpe, random)"),
        (("x=[1,2]", "--max-trials", "0"), "invalid --max-trials 0"),
        (("x=linspace[1]",), "linspace requires at least 2 args"),
    ):
        r = guild.ctl("run", "train.py", *args, "-y", check=False)
        assert r.returncode == 1 and message in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr
    assert guild.run_dirs() == []


def test_fail_on_trial_error_stops_the_batch(guild):
    (guild.project / "fails.py").write_text("import sys\nx = 1\nif x == 2:\n    sys.exit(1)\n")
    r = guild.ctl("run", "fails.py", "x=[1,2,3]", "--fail-on-trial-error", "-y", check=False)
    assert r.returncode == 1
    assert "stopping batch because a trial failed" in r.stderr
    labels = sorted(run["label"] for run in guild.runs() if run["operation"] == "fails.py")
    assert labels == ["x=1", "x=2"]
    assert _batch(guild, "+")["status"] == "error"


def test_stage_trials_queues_them(guild):
    r = guild.ctl("run", "train.py", "x=[1,2]", "--stage-trials", "-y")
    assert r.stderr.count("Staging trial ") == 2
    trials = [run for run in guild.runs() if run["operation"] == "train.py"]
    assert [t["status"] for t in trials] == ["staged", "staged"]
    guild.ctl("queue", "start")
    for t in trials:
        guild.wait_status(t["id"], "completed")


def test_parallel_trials_each_get_a_gpu_and_a_batch_survives_a_daemon_restart(tmp_path, project):
    import signal

    from tests.e2e.conftest import Guild

    (project / "quad.py").write_text(QUAD + "import os\nprint('gpu', os.environ.get('CUDA_VISIBLE_DEVICES'))\n")
    g = Guild(tmp_path / "home", project, extra_env={"GUILD_SIMULATED_GPUS": "2x80G"})
    g.start_daemon()
    try:
        r = g.ctl("run", "quad.py", "x=[-2.0:2.0]", "sleep=1", "-o", "random", "--max-trials", "6", "--parallel", "2",
                  "--gpus", "1", "--keep-batch", "--background", "-y")
        batch_id = r.stdout.split(" as ")[1].split()[0]
        wait_for(lambda: len([x for x in g.runs() if x["operation"] == "quad.py"]) >= 2, what="two trials")
        g.kill_daemon(signal.SIGKILL)  # the batch loop goes on in the next daemon
        g.start_daemon()
        g.wait_status(batch_id, "completed", timeout=60)
        trials = [x for x in g.runs() if x["operation"] == "quad.py"]
        assert len(trials) == 6 and all(t["status"] == "completed" for t in trials)
        gpus = []
        for t in trials:
            out = (g.home / "runs" / t["id"] / ".guild" / "output").read_text()
            gpus.append(next(line.split()[1] for line in out.splitlines() if line.startswith("gpu ")))
        assert set(gpus) == {"0", "1"}  # side by side, one GPU each
    finally:
        g.stop()


def test_stopping_a_batch_stops_its_trials(guild):
    (guild.project / "quad.py").write_text(QUAD)
    r = guild.ctl("run", "quad.py", "x=[1,2,3]", "sleep=30", "--background", "-y")
    batch_id = r.stdout.split(" as ")[1].split()[0]
    trial = wait_for(lambda: [x for x in guild.runs() if x["operation"] == "quad.py" and x["status"] == "running"], what="a trial")[0]
    guild.ctl("stop", batch_id)
    guild.wait_status(batch_id, "terminated")
    assert guild.info(trial["id"])["status"] == "terminated"
    assert len([x for x in guild.runs() if x["operation"] == "quad.py"]) == 1
