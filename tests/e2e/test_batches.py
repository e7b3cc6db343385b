"""Grid batches from list flag values, end to end: one trial per value, as Guild runs them."""

import json


def test_list_values_run_one_trial_each_and_the_batch_goes_to_the_trash(guild):
    r = guild.ctl("run", "train.py", "x=[-1,0,1]", "noise=0", "-y")
    assert r.stdout.count("loss:") == 3
    assert "Running trial " in r.stdout
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
    assert "exited with an error" in r.stdout
    statuses = {r["label"]: r["status"] for r in guild.runs()}
    assert statuses["x=1"] == "completed" and statuses["x=2"] == "error" and statuses["x=3"] == "completed"
    assert statuses["x=[1, 2, 3]"] == "completed"
