"""open's path rules, ops/help text and JSON, compare and ls JSON, runs info's private attrs,
and shell completion (command names, operations, run ids without a daemon): no daemon."""

import json
import os
import types

import click
import pytest
from click.shell_completion import ShellComplete
from click.testing import CliRunner

from guild_common import errors, guildfile
from guildctl import cmd_completion, cmd_compare, cmd_files, cmd_open, ophelp, output
from guildctl.main import cli

GUILD_YML = """
- model: m
  description: A model
  operations:
    train:
      description: Train the model
      main: train
      flags:
        x:
          description: The x flag
          default: 0.1
        y: 2
    _hidden:
      main: train
    eval:
      description: |
        Evaluate it.

        More lines.
      exec: echo eval
"""

OPS_ONLY = """
train:
  description: Train it
  main: train
  flags:
    lr:
      description: Learning rate
      default: 0.01
    opt:
      description: Optimizer
      choices: [adam, sgd]
      default: adam
    data:
      required: yes
      description: |
        Data path.
        Second line.
_private:
  exec: echo private
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "guild.yml").write_text(GUILD_YML)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def invoke(*args, env=None):
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


# open: which path


@pytest.fixture
def run_dir(tmp_path):
    d = tmp_path / "run"
    (d / ".guild").mkdir(parents=True)
    (d / "sub").mkdir()
    (d / "a.txt").write_text("a")
    (d / "src").mkdir()
    (d / "out").symlink_to(tmp_path)
    return str(d)


@pytest.mark.parametrize(
    "path, dest, output, expected",
    [
        ("", "", False, "/"),
        ("a.txt", "", False, "/a.txt"),
        ("sub", "", False, "/sub/"),
        ("sub/../a.txt", "", False, "/a.txt"),
        ("", "src", False, "/src/"),
        ("x.py", "src", False, "/src/x.py"),
        ("", ".", False, "/"),
        ("ignored", "", True, "/.guild/output"),
    ],
)
def test_open_target(run_dir, path, dest, output, expected):
    assert cmd_open.target(run_dir, path, dest, output) == run_dir + expected


@pytest.mark.parametrize("path", ["../x", "/etc/passwd", "sub/../../x", "out/anything"])
def test_open_target_refuses_paths_outside_the_run_dir(run_dir, path):
    with pytest.raises(errors.InvalidArgument, match="outside the run directory"):
        cmd_open.target(run_dir, path)


def test_open_argv_appends_the_path():
    assert cmd_open.argv_for("echo a 'b c'", "/r/") == ["echo", "a", "b c", "/r/"]
    with pytest.raises(errors.InvalidArgument, match="invalid command"):
        cmd_open.argv_for("echo 'a", "/r/")


def test_opener_by_platform(monkeypatch):
    monkeypatch.setattr(cmd_open.shutil, "which", lambda name: f"/usr/bin/{name}" if name != "missing" else None)
    assert cmd_open.opener("linux") == "/usr/bin/xdg-open"
    assert cmd_open.opener("darwin") == "/usr/bin/open"
    monkeypatch.setattr(cmd_open.shutil, "which", lambda name: None)
    assert cmd_open.opener("linux") is None


def test_sourcecode_dest_from_op_attr():
    from guildctl import runattrs

    assert runattrs.sourcecode_dest({"sourcecode": {"dest": "src"}}) == "src"
    assert runattrs.sourcecode_dest({"sourcecode": {"dest": "."}}) == "."
    assert runattrs.sourcecode_dest({}) == "."
    assert runattrs.sourcecode_dest({"sourcecode": "odd"}) == "."


# ops and help


def test_listed_ops_filters_and_private():
    gf = guildfile.for_string(GUILD_YML)
    names = lambda ops: [op.full_name for op in ops]  # noqa: E731
    assert names(ophelp.listed_ops(gf)) == ["m:eval", "m:train"]
    assert names(ophelp.listed_ops(gf, show_private=True)) == ["m:_hidden", "m:eval", "m:train"]
    assert names(ophelp.listed_ops(gf, ["ai"])) == ["m:train"]
    assert names(ophelp.listed_ops(gf, ["m", "ev"])) == ["m:eval"]
    assert names(ophelp.listed_ops(gf, ["ev", "tr"])) == []  # every filter must match


def test_flag_help_lines():
    op = guildfile.resolve(guildfile.for_string(OPS_ONLY), "train")
    assert ophelp.flag_lines(op.flags) == [
        "data  Data path. (required)",
        "",
        "      Second line.",
        "",
        "lr    Learning rate (default is 0.01)",
        "opt   Optimizer (default is adam)",
        "",
        "      Choices:  adam, sgd",
        "",
    ]


def test_help_text_layouts():
    models = ophelp.help_text(guildfile.for_string(GUILD_YML), "Overview.")
    assert models.startswith("OVERVIEW\n\n    Overview.\n\nMODELS\n\n    m\n\n      A model\n\n      Operations:\n\n        eval\n")
    assert "        train\n          Train the model\n\n          Flags:\n            x  The x flag (default is 0.1)\n" in models
    assert "            y  (default is 2)\n" in models
    assert "_hidden" not in models
    base = ophelp.help_text(guildfile.for_string(OPS_ONLY), "Overview.")
    assert "BASE OPERATIONS\n\n    train\n      Train it\n\n      Flags:\n        data  Data path. (required)\n" in base
    assert "MODELS" not in base and "_private" not in base


def test_ops_command(project):
    r = invoke("ops")
    assert r.exit_code == 0
    assert r.output.splitlines() == ["m:eval   Evaluate it.", "m:train  Train the model"]
    assert invoke("ops", "-a").output.splitlines()[0].split() == ["m:_hidden"]
    assert invoke("ops", "tr").output.splitlines() == ["m:train  Train the model"]
    verbose = invoke("ops", "-v", "train").output.splitlines()
    assert verbose == ["m:train  Train the model", "  main: train", "  flags:", "    x: The x flag (default is 0.1)", "    y: (default is 2)"]
    ops = json.loads(invoke("ops", "--json").output)
    assert [o["name"] for o in ops] == ["m:eval", "m:train"]
    assert ops[1]["flags"]["x"] == {"choices": None, "default": 0.1, "description": "The x flag", "required": False, "type": None}
    assert ops[0]["exec"] == "echo eval" and ops[0]["model"] == "m" and ops[0]["operation"] == "eval"


def test_ops_installed_outside_a_project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(errors.NotFound, match="no guild.yml"):
        invoke("ops")
    assert invoke("ops", "-i").output == ""
    assert invoke("ops", "-i", "--json").output.strip() == "[]"


def test_help_command(project, tmp_path):
    r = invoke("help", "-n")
    assert r.exit_code == 0 and "MODELS" in r.output and "guildctl run OPERATION" in r.output
    assert invoke("help", "-n", str(project)).output.split("MODELS")[1] == r.output.split("MODELS")[1]
    assert invoke("help", "-n", "guild.yml").output.split("MODELS")[1] == r.output.split("MODELS")[1]
    data = json.loads(invoke("help", "--json").output)
    assert data["guildfile"] == str(project / "guild.yml")
    assert [m["name"] for m in data["models"]] == ["m"]
    assert [o["operation"] for o in data["models"][0]["operations"]] == ["eval", "train"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(errors.NotFound, match="does not contain a Guild file"):
        invoke("help", "empty")
    with pytest.raises(errors.NotFound, match="nowhere does not exist"):
        invoke("help", "nowhere")


# JSON of compare, ls and runs info


def test_compare_rows_as_objects():
    rows = cmd_compare.row_objects(["run", "loss", "loss", "x"], [["a1", 0.5, 0.2, None]])
    assert rows == [{"run": "a1", "loss": 0.5, "loss#2": 0.2, "x": None}]


def test_ls_json():
    run = types.SimpleNamespace(id="a" * 32, run_dir="/h/runs/a")
    files = [
        types.SimpleNamespace(path="d", is_dir=True, is_link=False, size=0),
        types.SimpleNamespace(path="l", is_dir=False, is_link=True, size=5),
    ]
    assert cmd_files.files_json(run, files) == {
        "id": "a" * 32,
        "run_dir": "/h/runs/a",
        "files": [
            {"path": "d", "full_path": "/h/runs/a/d", "type": "dir", "link": False, "size": 0},
            {"path": "l", "full_path": "/h/runs/a/l", "type": "file", "link": True, "size": 5},
        ],
    }


def test_private_attrs_follow_pid():
    info = {"id": "x", "pid": "", "tags": [], "flags": {}}
    out = output.with_private_attrs(info, {"_pinned": 1, "host": "h"}, "guildfile:/g 1 '' t", {"a": 1})
    assert list(out) == ["id", "pid", "_pinned", "opref", "op", "tags", "flags"]
    assert out["op"] == {"a": 1} and out["opref"] == "guildfile:/g 1 '' t"
    text = output.info_text(out)
    assert "pid: \n_pinned: 1\nopref: guildfile:/g 1 '' t\nop:\n  a: 1\ntags:" in text


# completion


def completions(args, incomplete, env=None):
    """What bash would be offered after `guildctl ARGS INCOMPLETE<Tab>`."""
    return [(c.type, c.value) for c in ShellComplete(cli, {}, "guildctl", cmd_completion.COMPLETE_VAR).get_completions(args, incomplete)]


def test_completes_command_names_of_the_lazy_group():
    assert ("plain", "open") in completions([], "op")
    assert {"compare", "completion"} <= {v for _, v in completions([], "co")}
    assert ("plain", "stop") in completions(["runs"], "st")


def test_completes_operations_and_files(project):
    assert completions(["run"], "") == [("plain", n) for n in ["eval", "m:eval", "m:train", "train"]] + [("file", "")]
    assert completions(["run"], "m:_") == [("plain", "m:_hidden"), ("file", "m:_")]


def test_completes_no_run_ids_and_starts_nothing_without_a_daemon(tmp_path, monkeypatch):
    monkeypatch.setenv("GUILD_HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    assert completions(["runs", "info"], "") == []
    assert completions(["-H", str(tmp_path / "home"), "ls"], "") == []
    assert os.listdir(tmp_path / "home") == []


def test_attach_keeps_an_arguments_own_completer():
    own = lambda ctx, param, incomplete: ["mine"]  # noqa: E731

    @click.command()
    @click.argument("run", shell_complete=own)
    @click.argument("runs", nargs=-1)
    def cmd(run, runs):
        pass

    cmd_completion.attach(cmd)
    assert cmd.params[0]._custom_shell_complete is own
    assert cmd.params[1]._custom_shell_complete is cmd_completion.complete_runs


@pytest.mark.parametrize(
    "name, env_shell, expected",
    [("zsh", "/bin/bash", "zsh"), ("", "/usr/bin/fish", "fish"), ("", "/bin/tcsh", None), ("", None, None)],
)
def test_shell_for(name, env_shell, expected):
    assert cmd_completion.shell_for(name, env_shell) == expected


def test_completion_scripts():
    for shell, marker in (("bash", "complete -o nosort -F _guildctl_completion guildctl"), ("zsh", "#compdef guildctl"), ("fish", "complete --no-files --command guildctl")):
        r = invoke("completion", shell)
        assert r.exit_code == 0 and marker in r.output and "_GUILDCTL_COMPLETE" in r.output
    assert "#compdef guildctl" in invoke("completion", env={"SHELL": "/bin/zsh"}).output
    with pytest.raises(errors.InvalidArgument, match="cannot tell the shell"):
        invoke("completion", env={"SHELL": "/bin/tcsh"})
