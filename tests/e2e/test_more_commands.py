"""The smaller commands end to end, through the real guildctl against a real guildd: open,
`runs stop` with filters, ls/compare/select/ops --json, help, runs info --private-attrs, and shell
completion of run ids (from a running daemon only; completion never starts one)."""

import json
import os
import shutil
import subprocess

import pytest

from tests.e2e.conftest import run, serve_module, write

GUILD_YML = """
- model: m
  description: A model
  operations:
    train:
      description: Train the model
      main: train
      sourcecode:
        dest: src
      flags:
        x:
          description: The x flag
          default: 0.1
    _hidden:
      exec: echo hidden
"""

TRAIN = """\
x = 0.1
print("loss: %s" % x)
with open("model.txt", "w") as f:
    f.write("x=%s\\n" % x)
"""

SLEEP = """\
import time
time.sleep(120)
"""


@pytest.fixture(scope="module")
def g(tmp_path_factory):
    yield from serve_module(tmp_path_factory, "more-commands")


@pytest.fixture(scope="module")
def proj(g):
    p = g.home.parent / "proj"
    p.mkdir()
    write(p, {"guild.yml": GUILD_YML, "train.py": TRAIN, "sleep.py": SLEEP})
    run(g, p, "m:train", "x=0.5")
    return p


def ctl(g, proj, *args, check=True, env=None):
    return g.ctl(*args, cwd=proj, check=check, env={**g.env, **(env or {})})


def latest(g, proj):
    return json.loads(ctl(g, proj, "runs", "info", "-Fo", "train", "--json").stdout)


def test_open_with_a_command(g, proj):
    info = latest(g, proj)
    run_dir = info["run_dir"]
    assert ctl(g, proj, "open", "-Fo", "train", "-c", "echo a b c").stdout == f"a b c {run_dir}/\n"
    assert ctl(g, proj, "open", "-Fo", "train", "-c", "cat", "-p", "model.txt").stdout == "x=0.5\n"
    assert ctl(g, proj, "open", "-Fo", "train", "-c", "echo", "-O").stdout == f"{run_dir}/.guild/output\n"
    # The source code snapshot is where the op put it (sourcecode dest: src).
    assert ctl(g, proj, "open", "-Fo", "train", "-c", "echo", "-s", "-p", "train.py").stdout == f"{run_dir}/src/train.py\n"
    # The command's exit status is guildctl's.
    assert ctl(g, proj, "open", "-Fo", "train", "-c", "false", check=False).returncode == 1


def test_open_refuses_paths_outside_the_run_and_missing_ones(g, proj):
    for path in ("../x", "/etc/passwd"):
        r = ctl(g, proj, "open", "-Fo", "train", "-c", "echo", "-p", path, check=False)
        assert r.returncode == 1 and r.stdout == ""
        assert "outside the run directory" in r.stderr and "Traceback" not in r.stderr
    r = ctl(g, proj, "open", "-Fo", "train", "-c", "echo", "-p", "nope.txt", check=False)
    assert r.returncode != 0 and "nope.txt does not exist" in r.stderr
    r = ctl(g, proj, "open", "-O", "-p", "model.txt", check=False)
    assert r.returncode == 1 and "--output cannot be used with --path" in r.stderr


def test_open_shell_and_no_desktop_handler(g, proj):
    run_dir = latest(g, proj)["run_dir"]
    r = ctl(g, proj, "open", "-Fo", "train", "--shell", env={"SHELL": "pwd"})
    assert os.path.realpath(r.stdout.strip()) == os.path.realpath(run_dir)
    assert f"Running a new shell in {run_dir}/" in r.stderr
    r = ctl(g, proj, "open", "-Fo", "train", "--shell-cmd", "ls", "-p", "model.txt")
    assert "model.txt" in r.stdout.split()
    # No xdg-open on the PATH: one line saying what to use instead.
    r = ctl(g, proj, "open", "-Fo", "train", check=False, env={"PATH": os.path.dirname(shutil.which("guildctl"))})
    assert r.returncode != 0 and "xdg-open is not installed (use --cmd CMD or --shell)" in r.stderr


def test_ls_compare_ops_json(g, proj):
    files = json.loads(ctl(g, proj, "ls", "-Fo", "train", "--json").stdout)
    assert files["id"] == latest(g, proj)["id"]
    by_path = {f["path"]: f for f in files["files"]}
    assert by_path["model.txt"] == {
        "path": "model.txt", "full_path": os.path.join(files["run_dir"], "model.txt"), "type": "file", "link": False, "size": 6}
    assert by_path["src"]["type"] == "dir"
    rows = json.loads(ctl(g, proj, "compare", "-Fo", "train", "--json").stdout)
    assert len(rows) == 1
    assert rows[0]["run"] == files["id"][:8] and rows[0]["operation"] == "m:train"
    assert rows[0]["x"] == 0.5 and rows[0]["loss"] == 0.5 and rows[0]["status"] == "completed"
    r = ctl(g, proj, "compare", "--json", "--csv", "-", check=False)
    assert r.returncode == 1 and "--json and --csv" in r.stderr
    selected = json.loads(ctl(g, proj, "select", "-Fo", "train", "--json").stdout)
    assert (selected["id"], selected["run_dir"], selected["flags"]) == (files["id"], files["run_dir"], {"x": 0.5})
    assert [r["id"] for r in json.loads(ctl(g, proj, "select", "-Fo", "train", "-A", "--json").stdout)] == [files["id"]]
    ops = json.loads(ctl(g, proj, "ops", "--json").stdout)
    assert [o["name"] for o in ops] == ["m:train"]
    assert [o["name"] for o in json.loads(ctl(g, proj, "ops", "-a", "--json").stdout)] == ["m:_hidden", "m:train"]


def test_help_shows_models_operations_and_flags(g, proj):
    out = ctl(g, proj, "help", "-n").stdout
    assert "MODELS\n\n    m\n\n      A model\n\n      Operations:\n\n        train\n          Train the model\n" in out
    assert "            x  The x flag (default is 0.1)\n" in out
    assert "_hidden" not in out
    r = ctl(g, proj, "help", "-n", str(g.home), check=False)
    assert r.returncode == 1 and "does not contain a Guild file" in r.stderr


def test_runs_info_private_attrs(g, proj):
    info = json.loads(ctl(g, proj, "runs", "info", "-Fo", "train", "--private-attrs", "--json").stdout)
    assert info["opref"].startswith(f"guildfile:{proj / 'guild.yml'} ") and info["opref"].endswith(" m train")
    assert info["op"]["sourcecode"] == {"dest": "src"}
    assert "cmd-args" in info["op"]["op-cmd"]
    text = ctl(g, proj, "runs", "info", "-Fo", "train", "--private-attrs").stdout
    lines = text.splitlines()
    assert lines[lines.index("op:") - 1] == f"opref: {info['opref']}"
    assert lines[lines.index("op:") - 2].startswith("pid:")
    assert "  sourcecode:" in lines and "    dest: src" in lines
    assert "op:" not in ctl(g, proj, "runs", "info", "-Fo", "train").stdout.splitlines()


def test_runs_stop_takes_filters(g, proj):
    ids = {}
    for label in ("keep", "stop-me"):
        run(g, proj, "sleep.py", "--background", "-l", label)
        ids[label] = latest_sleep(g, proj, label)
    for run_id in ids.values():
        g.wait_status(run_id, "running")
    r = ctl(g, proj, "runs", "stop", "-Fl", "stop-me", "-y")
    assert r.stdout.splitlines()[0].startswith(f"Stopping {ids['stop-me']}")
    assert g.info(ids["stop-me"])["status"] == "terminated"
    assert g.info(ids["keep"])["status"] == "running"
    assert ctl(g, proj, "stop", "-Fl", "no-such-label").stdout == "Nothing to stop.\n"
    ctl(g, proj, "runs", "stop", ids["keep"])
    assert g.info(ids["keep"])["status"] == "terminated"


def latest_sleep(g, proj, label):
    return json.loads(ctl(g, proj, "runs", "info", "-Fl", label, "--json").stdout)["id"]


def complete(g, proj, line, env=None):
    """What bash's completion of `line` offers: click's `type,value` lines."""
    words = line.split(" ")
    r = subprocess.run(
        ["guildctl"], cwd=proj, capture_output=True, text=True, timeout=30,
        env={**g.env, "COMP_WORDS": line, "COMP_CWORD": str(len(words) - 1), "_GUILDCTL_COMPLETE": "bash_complete", **(env or {})},
    )
    assert r.returncode == 0, r.stderr
    return [line for line in r.stdout.splitlines() if line]


def test_completion_of_commands_operations_and_run_ids(g, proj):
    assert "plain,open" in complete(g, proj, "guildctl op")
    assert complete(g, proj, "guildctl run m:")[:1] == ["plain,m:train"]
    run_id = latest(g, proj)["id"]
    assert f"plain,{run_id[:8]}" in complete(g, proj, "guildctl runs info ")
    assert complete(g, proj, f"guildctl cat {run_id[:6]}") == [f"plain,{run_id[:8]}"]
    assert complete(g, proj, f"guildctl -H {g.home} ls {run_id[:6]}") == [f"plain,{run_id[:8]}"]


def test_completion_never_starts_a_daemon(g, proj, tmp_path):
    home = tmp_path / "idle-home"
    home.mkdir()
    assert complete(g, proj, "guildctl runs info ", env={"GUILD_HOME": str(home), "GUILDCTL_NO_AUTOSTART": ""}) == []
    assert sorted(os.listdir(home)) == []
    script = subprocess.run(["guildctl", "completion", "bash"], capture_output=True, text=True, env=g.env, timeout=30)
    assert script.returncode == 0 and "_GUILDCTL_COMPLETE=bash_complete" in script.stdout
