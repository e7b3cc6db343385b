"""Results as Guild 0.9 gives them for the same project (issue 12): which output lines are
scalars, the order of compare's columns, batch names, `runs --json`, where a run's stderr
goes, and the user's diff command. Each expectation was read off Guild 0.9 run side by side."""

import csv
import io
import json
import pathlib
import subprocess
import sys

import yaml


GUILD = pathlib.Path("/tmp/guild-anchor/bin/guild")

ECHO = """\
x = 0.1
noise = 0.1
print("x: %f" % x)
print("noise: %f" % noise)
print("loss: %f" % (x * 2))
"""


def _compare(guild, *args):
    return list(csv.reader(io.StringIO(guild.ctl("compare", "--csv", "-", *args).stdout)))


def test_a_script_echoing_its_flags_gets_no_scalars_for_them(guild):
    # Guild's get-started script prints `x: 0.1` and `noise: 0.1`; Guild 0.9's default capture
    # skips keys that are flag names, so compare shows each flag once, with the flag's value.
    (guild.project / "echo.py").write_text(ECHO)
    guild.ctl("run", "echo.py", "x=0.3", "-y")
    assert sorted(guild.info()["scalars"]) == ["loss"]
    header, row = _compare(guild)
    assert header.count("x") == 1 and header.count("noise") == 1
    assert row[header.index("x")] == "0.3"


def test_compare_orders_columns_as_first_seen(guild):
    # Guild 0.9 takes each run's columns (its flags, step, its scalars, each sorted), latest
    # run first, and appends those it has not seen yet.
    (guild.project / "a.py").write_text('x = 0.1\nb = 2\nprint("loss: 0.2")\nprint("zeta: 1")\n')
    (guild.project / "c.py").write_text('y = 0.5\na = 1\nprint("acc: 0.5")\nprint("loss: 0.25")\n')
    guild.ctl("run", "a.py", "-y")
    guild.ctl("run", "c.py", "-y")
    header = _compare(guild)[0]
    assert header == "run operation started time status label a y step acc loss b x zeta".split()
    if GUILD.exists():  # and Guild 0.9 itself, on these runs
        env = {k: v for k, v in guild.env.items() if k != "PYTHONPATH"}
        theirs = subprocess.run([str(GUILD), "compare", "--csv", "-"], env=env, capture_output=True, text=True, timeout=120)
        assert theirs.returncode == 0 and theirs.stdout.splitlines()[0].split(",") == header


def test_batch_runs_are_named_as_guild_names_them(guild):
    # Guild 0.9: `t.py+` (grid), `t.py+skopt:random`, `t.py+skopt:gp` (also for `-o bayesian`),
    # in the runs list, the opref, compare and the -Fo filter.
    (guild.project / "t.py").write_text('x = 0.1\nprint("loss: %f" % (x * x))\n')
    guild.ctl("run", "t.py", "x=[1,2]", "--keep-batch", "-y")
    guild.ctl("run", "t.py", "x=[1:2]", "--max-trials", "1", "--keep-batch", "-y")
    guild.ctl("run", "t.py", "x=[1:2]", "-o", "bayesian", "--max-trials", "1", "-y")
    batches = [r for r in guild.runs() if "+" in r["operation"]]
    assert [r["operation"] for r in batches] == ["t.py+skopt:gp", "t.py+skopt:random", "t.py+"]
    assert [(pathlib.Path(r["run_dir"]) / ".guild" / "opref").read_text().split()[-1] for r in batches] == [
        "t.py+skopt:gp", "t.py+skopt:random", "t.py+"
    ]
    assert "t.py+skopt:gp" in guild.ctl("runs", "-Fo", "t.py+skopt:gp").stdout
    assert guild.ctl("select", "-Fo", "skopt:gp").stdout.strip() == batches[0]["id"]
    header, *rows = _compare(guild, "--include-batch", "-Fo", "skopt")
    assert sorted(row[header.index("operation")] for row in rows) == ["t.py+skopt:gp", "t.py+skopt:random"]


TOOL = """\
import json, sys
with open(sys.argv[1], "a") as f:
    f.write(json.dumps(sys.argv[2:]) + "\\n")
"""


def _tool_calls(path):
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_diff_uses_the_command_of_the_users_guild_config(guild, tmp_path):
    # Guild 0.9 reads `diff: command:` from $GUILD_CONFIG, else ./guild-config.yml, else
    # ~/.guild/config.yml: a string, or a map of file extensions (regexes) and `default`.
    (guild.project / "w.py").write_text('x = 1\nopen("out.txt", "w").write(str(x))\nopen("m.json", "w").write("{}")\n')
    guild.ctl("run", "w.py", "x=1", "-y")
    guild.ctl("run", "w.py", "x=2", "-y")
    old, new = (r["run_dir"] for r in guild.runs()[::-1])
    (tmp_path / "tool.py").write_text(TOOL)
    calls = tmp_path / "calls"
    tool = f"{sys.executable} {tmp_path / 'tool.py'} {calls}"
    (guild.project / "guild-config.yml").write_text(f"diff:\n  command: {tool} plain\n")
    guild.ctl("diff")
    guild.ctl("runs", "diff", "1", "2", "-O")
    assert _tool_calls(calls) == [["plain", old, new], ["plain", f"{new}/.guild/output", f"{old}/.guild/output"]]
    calls.unlink()
    (guild.project / "guild-config.yml").write_text(
        f"diff:\n  command:\n    default: {tool} dirs\n    '\\.js.*': {tool} js\n")
    guild.ctl("diff", "-p", "out.txt", "-p", "m.json")
    guild.ctl("diff", "--cmd", f"{tool} given")  # --cmd wins over the config
    assert _tool_calls(calls) == [
        ["dirs", f"{old}/out.txt", f"{new}/out.txt"], ["js", f"{old}/m.json", f"{new}/m.json"], ["given", old, new],
    ]
    calls.unlink()
    elsewhere = tmp_path / "elsewhere.yml"
    elsewhere.write_text(f"diff:\n  command: {tool} env\n")
    guild.ctl("diff", "-f", env={**guild.env, "GUILD_CONFIG": str(elsewhere)})
    assert _tool_calls(calls) == [["env", f"{old}/.guild/attrs/flags", f"{new}/.guild/attrs/flags"]]


def test_a_broken_guild_config_is_one_clear_error(guild):
    guild.ctl("run", "train.py", "-y")
    guild.ctl("run", "train.py", "-y")
    (guild.project / "guild-config.yml").write_text("diff: [\n")
    r = guild.ctl("diff", check=False)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert r.stderr.startswith("guildctl: ") and "guild-config.yml" in r.stderr and len(r.stderr.splitlines()) == 1


BOTH = """\
import os, sys, time

def landed(text):
    # Waits until `text` is in the run's output, so what follows is written after it.
    path = os.path.join(os.environ["RUN_DIR"], ".guild", "output")
    deadline = time.time() + 20
    while text not in open(path).read() and time.time() < deadline:
        time.sleep(0.01)

print("out1", flush=True)
sys.stderr.write("err1\\n"); sys.stderr.flush()
landed("err1")
print("out2", flush=True)
sys.stderr.write("err2\\n"); sys.stderr.flush()
landed("err2")
sys.exit(3)
"""


def test_a_runs_stderr_streams_to_stderr_and_its_output_keeps_the_order(guild):
    # Guild 0.9's `guild run` writes the script's stderr to its own stderr; the run's output
    # file has both, in the order written.
    (guild.project / "both.py").write_text(BOTH)
    r = guild.ctl("run", "both.py", "-y", check=False)
    assert r.returncode == 3
    assert r.stdout == "out1\nout2\n"
    assert "err1\nerr2\n" in r.stderr
    run_id = guild.info()["id"]
    assert (pathlib.Path(guild.info()["run_dir"]) / ".guild" / "output").read_text() == "out1\nerr1\nout2\nerr2\n"
    w = guild.ctl("watch", run_id)
    assert w.stdout == "out1\nout2\n" and "err1\nerr2\n" in w.stderr
    tail = guild.ctl("watch", run_id, "-n", "2")
    assert tail.stdout == "out2\n" and "err2\n" in tail.stderr and "err1" not in tail.stderr
    assert guild.ctl("cat", "--output", run_id).stdout == "out1\nerr1\nout2\nerr2\n"  # as Guild's cat


def test_runs_json_has_guilds_cmd_key(guild):
    # Guild 0.9's `runs --json` gives each run's `cmd` attribute: the command as a list.
    (guild.project / "t.py").write_text('x = 0.1\nprint("loss: 1")\n')
    guild.ctl("run", "t.py", "x=2", "-y")
    guild.ctl("run", "t.py", "x=3", "-y")
    listed = guild.runs()
    for run in listed:
        attr = yaml.safe_load((pathlib.Path(run["run_dir"]) / ".guild" / "attrs" / "cmd").read_text())
        assert run["cmd"] == attr and all(isinstance(a, str) for a in attr)
    assert [r["cmd"][-2:] for r in listed] == [["--x", "3"], ["--x", "2"]]


def test_a_pipelines_and_a_batchs_stderr_stay_stderr(guild):
    # Guild logs its own `INFO: [guild]` lines to stderr, and a step's stderr stays stderr.
    (guild.project / "guild.yml").write_text(
        "step:\n  exec: bash -c 'echo to-out; echo to-err >&2'\n"
        "pipe:\n  steps:\n    - step\n"
    )
    r = guild.ctl("run", "pipe", "-y")
    assert r.stdout.splitlines()[-1] == "to-out" and "to-err" not in r.stdout and "[guild]" not in r.stdout
    assert "INFO: [guild] running step: step\nto-err\n" in r.stderr
    r = guild.ctl("run", "train.py", "x=[1,2]", "noise=0", "-y")
    assert r.stdout.count("loss: ") == 2 and "[guild]" not in r.stdout
    assert r.stderr.count("INFO: [guild] Running trial ") == 2
