"""Guild's hyperparameter tutorial (seeds/guild-hpo-tutorial.txt), each command with guildctl in
place of guild, on its train.py: the same prompts, trial counts, labels and compare order."""

import json


def _csv(guild, *args):
    lines = guild.ctl("compare", "--csv", "-", *args).stdout.splitlines()
    header = lines[0].split(",")
    return [dict(zip(header, line.split(","))) for line in lines[1:]]


def test_hpo_tutorial(guild):
    # Manual search: three trials from a list.
    r = guild.ctl("run", "train.py", "x=[-1,0,1]", input="\n")
    assert r.stdout.startswith("You are about to run train.py as a batch (3 trials)\n  noise: 0.1\n  x: [-1, 0, 1]\nContinue? (Y/n)")
    assert [(x["operation"], x["label"]) for x in guild.runs()] == [
        ("train.py", "noise=0.1 x=1"),
        ("train.py", "noise=0.1 x=0"),
        ("train.py", "noise=0.1 x=-1"),
    ]
    r = guild.ctl("run", "train.py", "x=[-0.5,0.5]", "noise=[0.1,0.2]", input="\n")
    assert "You are about to run train.py as a batch (4 trials)\n  noise: [0.1, 0.2]\n  x: [-0.5, 0.5]" in r.stdout
    top = _csv(guild, "--min", "loss", "--top", "3")
    assert len(top) == 3 and [float(t["loss"]) for t in top] == sorted(float(t["loss"]) for t in top)
    # Grid search with a sequence function.
    r = guild.ctl("run", "train.py", "x=linspace[-0.6:0.6:4]", "-y")
    assert r.stderr.count("Running trial ") == 4
    assert [x["label"] for x in guild.runs()[:4]] == ["noise=0.1 x=0.6", "noise=0.1 x=0.2", "noise=0.1 x=-0.2", "noise=0.1 x=-0.6"]
    # Random search.
    r = guild.ctl("run", "train.py", "x=[-2.0:2.0]", "--max-trials", "5", input="\n")
    assert "You are about to run train.py with random search (max 5 trials)\n  noise: 0.1\n  x: [-2.0:2.0]" in r.stdout
    assert r.stderr.count("Running trial ") == 5
    # Bayesian optimization, then a restart that goes on from its trials.
    r = guild.ctl("run", "train.py", "x=[-2.0:2.0]", "--optimizer", "gp", "--max-trials", "10", input="\n")
    assert (
        "You are about to run train.py with 'skopt:gp' optimizer (max 10 trials, minimize loss)\n"
        "  noise: 0.1\n  x: [-2.0:2.0]\nOptimizer flags:\n  acq-func: gp_hedge\n  kappa: 1.96\n"
        "  noise: gaussian\n  random-starts: 3\n  xi: 0.05\n"
    ) in r.stdout
    assert r.stderr.count("Running trial ") == 10
    batch_id = guild.ctl("select", "-Fo", "train.py+skopt:gp").stdout.strip()
    r = guild.ctl("run", "-Fo", "random-starts=0", "--restart", batch_id, input="\n")
    assert f"You are about to restart {batch_id[:8]} (train.py) with 'skopt:gp' optimizer (max 10 trials)" in r.stdout
    assert "  random-starts: 0" in r.stdout
    assert "Found 10 previous trial(s) for use in optimization" in r.stderr
    assert r.stderr.count("Running trial ") == 10
    # compare :20 — the twenty latest runs, trials only (batch runs are left out), latest first.
    rows = _csv(guild, ":20")
    assert len(rows) == 20 and all(row["operation"] == "train.py" for row in rows)
    started = [row["started"] for row in rows]
    assert started == sorted(started, reverse=True)
    xs = [json.loads(guild.ctl("runs", "info", row["run"], "--json").stdout)["flags"]["x"] for row in rows]
    assert all(-2.0 <= x <= 2.0 for x in xs)
