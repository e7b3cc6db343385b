"""Pruning, end to end: a batch whose trials print `step`/`loss` as they go, some of them
clearly worse; the daemon's pruner stops those from their scalars alone (no user code), and
a killed daemon's successor goes on pruning."""

import json
import re
import signal

import pytest

from guild_common import errors
from guild_common.pb import guild_pb2 as pb
from guildctl.client import Client
from tests.conftest import wait_for

# Exponential decay toward `x`: x is each trial's final loss.
CURVE = """\
import math
import time
x = 0.1
steps = 15
delay = 0.08
for step in range(steps):
    print("step: %d" % step)
    print("loss: %f" % (x + (1 - x) * math.exp(-0.5 * step)), flush=True)
    time.sleep(delay)
"""

GOOD = [0.1, 0.12, 0.08]  # each at or below the median of those before it
BAD = [0.9, 0.95]


def _trials(guild):
    return [r for r in guild.runs() if r["operation"] == "curve.py"]


def test_clearly_worse_trials_are_pruned_and_show_it(guild):
    (guild.project / "curve.py").write_text(CURVE)
    xs = ",".join(str(x) for x in GOOD + BAD)
    r = guild.ctl("run", "curve.py", f"x=[{xs}]", "--prune", "median", "-Fp", "startup-trials=2", "-Fp", "warmup-steps=2",
                  "--keep-batch", input="y\n")
    assert "Pruner: median" in r.stdout and "  warmup-steps: 2" in r.stdout
    assert "INFO: [guild] pruner median: interval-steps=1 startup-trials=2 warmup-steps=2" in r.stderr
    by_x = {guild.info(t["id"])["flags"]["x"]: t for t in _trials(guild)}
    assert {x: by_x[x]["status"] for x in GOOD} == dict.fromkeys(GOOD, "completed")
    assert {x: by_x[x]["status"] for x in BAD} == dict.fromkeys(BAD, "terminated")
    for x in BAD:
        trial = by_x[x]
        info = guild.info(trial["id"])
        pruned = info["pruned"]
        assert pruned["pruner"] == "median" and 2 <= pruned["step"] < 14 and pruned["value"] > 0.9
        assert f"INFO: [guild] trial {trial['id']} pruned at step {pruned['step']} (loss=" in r.stderr
        assert "pruned" in info["tags"]
        text = guild.ctl("runs", "info", trial["id"]).stdout
        assert f"pruned: at step {pruned['step']} ({pruned['value']}) by median" in text.splitlines()
    assert "stopping batch" not in r.stderr
    batch = next(r for r in guild.runs() if r["operation"] == "curve.py+")
    assert batch["status"] == "completed"
    filtered = json.loads(guild.ctl("runs", "-F", "tags contains pruned", "--json").stdout)
    assert sorted(f["id"] for f in filtered) == sorted(by_x[x]["id"] for x in BAD)
    rows = guild.ctl("compare", "--csv", "-", "-cc", "=x,.tags").stdout.splitlines()
    assert sorted(float(row.split(",")[-2]) for row in rows[1:] if row.endswith(",pruned")) == sorted(BAD)


def test_gp_batch_prunes_and_tells_the_optimizer(guild):
    (guild.project / "curve.py").write_text(CURVE)
    r = guild.ctl("run", "curve.py", "x=[0.05:0.95]", "-o", "gp", "-Fo", "random-starts=3", "--max-trials", "6", "--prune", "asha",
                  "-Fp", "min-resource=2", "--minimize", "loss", "--random-seed", "2", "-y")
    assert r.returncode == 0
    assert "INFO: [guild] pruner asha: min-early-stopping-rate=0 min-resource=2 reduction-factor=4" in r.stderr
    trials = _trials(guild)
    assert len(trials) == 6 and {t["status"] for t in trials} <= {"completed", "terminated"}
    assert "pruned at step" in r.stderr


BAD_INPUT = {
    "not a batch": (["x=0.5", "--prune", "median"], "not a batch"),
    "unknown pruner": (["x=[0.1,0.2]", "--prune", "nope"], "unknown pruner 'nope': expected one of median, asha, hyperband"),
    "unknown flag": (["x=[0.1,0.2]", "--prune", "median", "-Fp", "min-resource=2"], "unknown flag 'min-resource' for pruner median"),
    "wrong type": (["x=[0.1,0.2]", "--prune", "asha", "-Fp", "reduction-factor=two"],
                   "invalid value two for pruner flag reduction-factor: expected an integer 2 or more"),
    "no values by step": (["x=[0.1,0.2]", "--prune", "median", "--minimize", "min loss"],
                          "--prune needs an objective with a value at each step: 'min loss'"),
    "flags without a pruner": (["x=[0.1,0.2]", "-Fp", "warmup-steps=2"], "-Fp/--prune-flag needs --prune PRUNER"),
    "staged trials": (["x=[0.1,0.2]", "--prune", "median", "--stage-trials"], "--prune cannot be used with --stage-trials"),
}


def test_bad_input_is_one_line_and_creates_nothing(guild):
    (guild.project / "curve.py").write_text(CURVE)
    for name, (args, message) in BAD_INPUT.items():
        r = guild.ctl("run", "curve.py", *args, "-y", check=False)
        assert r.returncode != 0, name
        assert message in r.stderr, (name, r.stderr)
        assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, (name, r.stderr)
    assert guild.run_dirs() == []


def test_the_daemon_checks_a_batch_spec_itself(guild):
    """Any gRPC client may send a BatchSpec: the daemon refuses a bad pruner before making a run."""
    (guild.project / "curve.py").write_text(CURVE)
    c = Client(guild.home, autostart=False)
    try:
        for pruner, flags, objective, message in [
            ("median", '{"warmup-steps": "x"}', "loss", "invalid value x for pruner flag warmup-steps"),
            ("nope", "{}", "loss", "unknown pruner 'nope'"),
            ("asha", "[1]", "loss", "invalid pruner flags: expected a JSON object"),
            ("median", "{}", "max loss", "--prune needs an objective with a value at each step"),
        ]:
            batch = pb.BatchSpec(kind="grid", trials_json='[{"x": 1}, {"x": 2}]', objective=objective, pruner=pruner,
                                 pruner_flags_json=flags)
            proto = pb.RunSpec(op_name="curve.py", cmd_args=["python", "curve.py"])
            with pytest.raises(errors.InvalidArgument, match=re.escape(message)):
                c.start_batch(proto=proto, batch=batch)
    finally:
        c.close()
    assert guild.run_dirs() == []


def test_pruning_goes_on_after_a_kill_9_of_the_daemon(guild):
    (guild.project / "curve.py").write_text(CURVE.replace("delay = 0.08", "delay = 0.1"))
    xs = ",".join(str(x) for x in GOOD + [0.9, 0.07, 0.95])
    r = guild.ctl("run", "curve.py", f"x=[{xs}]", "--prune", "median", "-Fp", "startup-trials=2", "-Fp", "warmup-steps=2",
                  "--keep-batch", "--background", "-y")
    batch_id = r.stdout.split(" as ")[1].split()[0]
    wait_for(lambda: len(_trials(guild)) >= 3, what="three trials")
    guild.kill_daemon(signal.SIGKILL)
    guild.start_daemon()
    guild.wait_status(batch_id, "completed", timeout=60)
    by_x = {guild.info(t["id"])["flags"]["x"]: t for t in _trials(guild)}
    assert len(by_x) == 6
    assert by_x[0.9]["status"] == by_x[0.95]["status"] == "terminated"
    assert by_x[0.07]["status"] == "completed"
    output = (guild.home / "runs" / batch_id / ".guild" / "output").read_text()
    assert f"trial {by_x[0.95]['id']} pruned at step" in output


def test_guild_file_prune_reads_like_optimizer(guild):
    (guild.project / "curve.py").write_text(CURVE)
    (guild.project / "guild.yml").write_text(
        "curve:\n  main: curve\n  flags:\n    x: 0.1\n  prune:\n    pruner: asha\n    min-resource: 2\n"
        "bad:\n  main: curve\n  flags:\n    x: 0.1\n  prune:\n    pruner: asha\n    warmup-steps: 2\n"
    )
    r = guild.ctl("run", "curve", "x=[0.1,0.2]", "-Fp", "reduction-factor=3", input="n\n", check=False)
    assert "Pruner: asha" in r.stdout
    assert "  min-resource: 2" in r.stdout and "  reduction-factor: 3" in r.stdout  # -Fp on top of the Guild file's
    r = guild.ctl("run", "bad", "x=[0.1,0.2]", "-y", check=False)
    assert r.returncode != 0 and "unknown flag 'warmup-steps' for pruner asha" in r.stderr
    assert guild.run_dirs() == []
