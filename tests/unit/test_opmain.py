"""opmain.py: the run's Python executes it as a script to run the user's script with flags."""

import math
import os
import subprocess
import sys
import textwrap

import pytest

from guild_common import flags as flaglib, opmain

OPMAIN = os.path.abspath(opmain.__file__)


def _run(tmp_path, source, *args, flags_dest="globals", script="train.py"):
    (tmp_path / script).write_text(textwrap.dedent(source))
    env = dict(os.environ)
    env.pop("FLAGS_DEST", None)
    if flags_dest:
        env["FLAGS_DEST"] = flags_dest
    return subprocess.run(
        [sys.executable, "-u", OPMAIN, script, *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


# FLAGS_DEST=globals

GLOBALS_SCRIPT = """
x = 0.1
flag: bool = True
name = "default"
s = "x"
print(repr(x), repr(flag), repr(name), repr(s))
"""


def test_globals_defaults_without_flags(tmp_path):
    p = _run(tmp_path, GLOBALS_SCRIPT)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "0.1 True 'default' 'x'\n"


def test_globals_replace_module_constants(tmp_path):
    p = _run(tmp_path, GLOBALS_SCRIPT, "--x", "0.5", "--flag", "no", "--name", "hello world", "--s", "'1'")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "0.5 False 'hello world' '1'\n"


def test_globals_flags_encoded_by_guildd(tmp_path):
    # The values guildd puts on the command line (flags.flag_cmd_args) reach the script intact.
    values = {"a": 1, "b": 2.5, "c": True, "d": "1", "e": "a b", "f": "yes", "g": [1, 2], "h": "it's: x"}
    source = "".join(f"{name} = None\n" for name in values) + "print(repr([%s]))\n" % ", ".join(values)
    p = _run(tmp_path, source, *flaglib.flag_cmd_args(values, {}))
    assert p.returncode == 0, p.stderr
    assert p.stdout == repr(list(values.values())) + "\n"


def test_globals_unassigned_flag_is_still_a_global(tmp_path):
    p = _run(tmp_path, "print(repr(extra))\n", "--extra", "7")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "7\n"


def test_globals_main_block_runs_and_only_module_level_assignments_replaced(tmp_path):
    source = """
    x = 1
    flag = False
    def f():
        x = 2
        return x
    if __name__ == "__main__":
        print("main", x, f(), flag)
    """
    p = _run(tmp_path, source, "--x", "9", "--flag", "yes")
    assert p.stdout == "main 9 2 True\n", p.stderr


def test_globals_flag_replaces_only_the_first_assignment(tmp_path):
    # As Guild 0.9: the first assignment is the flag's (its default is imported from it);
    # later ones are the script redefining the value.
    source = """
    x = 1
    y = len("ab")
    print("first", x, y)
    x = 3
    print("then", x)
    """
    p = _run(tmp_path, source, "--x", "5", "--y", "9")
    assert p.stdout == "first 5 9\nthen 3\n", p.stderr


# args mode

ARGS_SCRIPT = """
import argparse
p = argparse.ArgumentParser()
p.add_argument("--lr", type=float, default=0.1)
p.add_argument("--name", default="x")
args = p.parse_args()
if __name__ == "__main__":
    print(args.lr, args.name)
"""


def test_args_mode_passes_argv_to_argparse(tmp_path):
    p = _run(tmp_path, ARGS_SCRIPT, "--lr", "0.5", "--name", "a b", flags_dest="args")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "0.5 a b\n"


def test_args_mode_is_the_default_and_argv0_is_the_script(tmp_path):
    p = _run(tmp_path, "import sys\nprint(sys.argv, __file__)\n", "a", "--b", flags_dest=None)
    script = str(tmp_path / "train.py")
    assert p.stdout == f"{[script, 'a', '--b']} {script}\n", p.stderr


# exit status and errors


@pytest.mark.parametrize("flags_dest", ["globals", "args"])
def test_script_exit_code_is_process_exit_code(tmp_path, flags_dest):
    p = _run(tmp_path, "import sys\nprint('bye')\nsys.exit(3)\n", flags_dest=flags_dest)
    assert p.returncode == 3
    assert p.stdout == "bye\n"


@pytest.mark.parametrize("flags_dest", ["globals", "args"])
def test_exception_traceback_has_only_user_frames(tmp_path, flags_dest):
    source = """
    def train():
        raise ValueError("bad lr")

    train()
    """
    p = _run(tmp_path, source, flags_dest=flags_dest)
    assert p.returncode == 1
    assert p.stderr.startswith("Traceback (most recent call last):\n")
    assert "ValueError: bad lr" in p.stderr
    assert "train.py" in p.stderr
    assert 'line 5, in <module>' in p.stderr
    assert 'line 3, in train' in p.stderr
    assert "opmain.py" not in p.stderr
    assert "runpy" not in p.stderr


def test_keyboard_interrupt_is_not_an_error_exit_1(tmp_path):
    p = _run(tmp_path, "raise KeyboardInterrupt\n")
    assert p.returncode != 0
    assert p.returncode != 1


# sys.path


@pytest.mark.parametrize("flags_dest", ["globals", "args"])
def test_script_dir_first_on_sys_path(tmp_path, flags_dest):
    sub = tmp_path / "src"
    sub.mkdir()
    (sub / "helper.py").write_text("VALUE = 42\n")
    p = _run(
        tmp_path,
        "import sys, helper\nprint(helper.VALUE, sys.path[0], %r in sys.path)\n" % os.path.dirname(OPMAIN),
        flags_dest=flags_dest,
        script="src/train.py",
    )
    assert p.returncode == 0, p.stderr
    # opmain's own dir is not on sys.path: its modules must not shadow the user's.
    assert p.stdout == f"42 {sub} False\n"


# decode and flag_assigns


@pytest.mark.parametrize(
    "text, value",
    [
        ("yes", True),
        ("true", True),
        ("True", True),
        ("no", False),
        ("false", False),
        ("False", False),
        ("null", None),
        ("1", 1),
        ("-1", -1),
        ("0.5", 0.5),
        ("1.0e-05", 1e-05),
        ("[1, 2]", [1, 2]),
        ("'1'", "1"),
        ("'yes'", "yes"),
        ("''", ""),
        ("'it''s'", "it's"),
        ('"a\\nb"', "a\nb"),
        ("hello", "hello"),
        ("hello world", "hello world"),
        ("'", "'"),
        (".inf", math.inf),
        ("-.inf", -math.inf),
    ],
)
def test_decode(text, value):
    assert opmain.decode(text) == value
    assert type(opmain.decode(text)) is type(value)


def test_decode_nan():
    assert math.isnan(opmain.decode(".nan"))


@pytest.mark.parametrize(
    "value",
    [0, 1, -3, 0.1, 1e-05, 1e20, True, False, None, "", "a", "1", "0.1", "yes", "null", "a b",
     "x: 1", "it's: x", "a\nb", "ünï", "#x", [1, 2], math.inf, -math.inf],
)
def test_decode_reads_what_guildd_encodes(value):
    assert opmain.decode(flaglib.encode_flag_value(value)) == value


def test_flag_assigns():
    args = ["--x", "0.5", "--on", "--name", "'1'", "--neg", "-1", "--last"]
    assert opmain.flag_assigns(args) == {"x": 0.5, "on": True, "name": "1", "neg": -1, "last": True}
    assert opmain.flag_assigns([]) == {}


def test_flag_assigns_rejects_bare_argument():
    with pytest.raises(SystemExit) as e:
        opmain.flag_assigns(["x=1"])
    assert "unexpected argument" in str(e.value)


@pytest.mark.parametrize(
    "flags_dest, printed",
    [("globals", "hello 'big world'\n"), ("args", "hello 'big world' --x 1\n")],
)
def test_guild_pass_prints_its_args_without_guild_installed(tmp_path, flags_dest, printed):
    # `main: guild.pass`: Guild's no-op module; flags are printed only as args, as in Guild.
    env = {**os.environ, "FLAGS_DEST": flags_dest}
    r = subprocess.run(
        [sys.executable, "-u", OPMAIN, "guild.pass", "hello", "big world", "--", "--x", "1"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30,
    )
    assert (r.returncode, r.stdout, r.stderr) == (0, printed, "")


# FLAGS_DEST=global:NAME / namespace:NAME / config:FILE


def test_global_dict_flags_update_the_dict(tmp_path):
    source = """
    params = {"i": 1, "keep": "k", "n": {"a": 1}}
    print(sorted(params.items()))
    """
    p = _run(tmp_path, source, "--i", "2", "--n.a", "3", "--l", '[1, "a"]', flags_dest="global:params")
    assert p.stdout == "[('i', 2), ('keep', 'k'), ('l', [1, 'a']), ('n', {'a': 3})]\n", p.stderr


def test_namespace_flags_set_attributes(tmp_path):
    source = """
    from types import SimpleNamespace
    params = SimpleNamespace(i=1, keep="k")
    print(type(params).__name__, sorted(vars(params).items()))
    """
    p = _run(tmp_path, source, "--i", "2", flags_dest="namespace:params")
    assert p.stdout == "SimpleNamespace [('i', 2), ('keep', 'k')]\n", p.stderr


def test_namespace_never_assigned_is_the_flags(tmp_path):
    p = _run(tmp_path, "print(params.a.b)\n", "--a.b", "5", flags_dest="namespace:params")
    assert p.stdout == "5\n", p.stderr


def test_config_dest_gives_the_script_no_flag_args(tmp_path):
    # The flags reach it in the config file (written by guildd); as in Guild 0.9.
    p = _run(tmp_path, "import sys\nprint(sys.argv[1:])\n", "fixed", "--", "--i", "2", flags_dest="config:f.yml")
    assert p.stdout == "['fixed']\n", p.stderr
