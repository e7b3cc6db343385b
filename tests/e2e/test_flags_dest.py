"""Where an operation's flags come from and go to, end to end: click options, config files,
a global dict or namespace, and the destination of a run Guild AI 0.9 staged itself."""

import os
import pathlib
import subprocess
import textwrap

import pytest

GUILD = pathlib.Path("/tmp/guild-anchor/bin/guild")


def _write(project, files):
    for name, text in files.items():
        (project / name).write_text(textwrap.dedent(text))


# A run Guild staged, started here


STEPS = """\
steps = 2
for i in range(steps):
    print("step", i)
"""


STEPS_CONFIG = """\
import yaml
steps = yaml.safe_load(open("steps.yml"))["steps"]
for i in range(steps):
    print("step", i)
"""


def _started_guild_staged_run(guild, *args):
    """Stages `guild run ARGS` with Guild AI 0.9 itself, starts it here, and returns its
    output once it completed."""
    if not GUILD.exists():
        pytest.skip(f"Guild AI 0.9 not installed at {GUILD} (see ../shared/tools/install-guild-anchor)")
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env.update(GUILD_HOME=str(guild.home), NO_WARN_RUNDIR="1")
    r = subprocess.run([str(GUILD), "run", *args, "--stage", "-y"],
                       cwd=guild.project, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    run_id = next(p.name for p in (guild.home / "runs").iterdir())
    guild.ctl("run", "--start", run_id, "-y", check=False)
    info = guild.wait_status(run_id, "completed", "error", timeout=60)
    out = (guild.home / "runs" / run_id / ".guild" / "output").read_text()
    assert info["status"] == "completed", out
    return out


def _steps(out):
    return [line for line in out.splitlines() if line.startswith("step")]


def test_guild_staged_run_keeps_its_globals_flags_dest(guild):
    # Guild records `flags-dest: globals` inside op-cmd; read as `args`, the script got
    # `--steps 5` on its command line and ran its own default (2 steps).
    _write(guild.project, {"count.py": STEPS})
    assert _steps(_started_guild_staged_run(guild, "count.py", "steps=5")) == [f"step {i}" for i in range(5)]


def test_guild_staged_run_keeps_its_config_flags_dest(guild):
    # Guild's config dependency is found from the project dir it records (PROJECT_DIR).
    _write(guild.project, {
        "count.py": STEPS_CONFIG,
        "steps.yml": "steps: 2\n",
        "guild.yml": "count:\n  main: count\n  flags-dest: config:steps.yml\n  flags-import: all\n",
    })
    assert _steps(_started_guild_staged_run(guild, "count", "steps=3")) == [f"step {i}" for i in range(3)]


# click


CLICK = """\
import click

prefix = "Flags:"


@click.command()
@click.option("--i", type=int, default=1)
@click.option("--f", type=float, default=1.1)
@click.option("--b", is_flag=True)
@click.option("--s", default="hello")
@click.option("--c", "color", default="red", type=click.Choice(["red", "blue"]))
def main(i, f, b, s, color):
    print(prefix, i, f, b, s, color)


if __name__ == "__main__":
    main()
"""


@pytest.mark.parametrize("spec", ["cli.py", "cli"])
def test_click_options_are_the_flags(guild, spec):
    # Before: the script was read as a globals script: one flag `prefix='Flags:'`, passed as
    # --prefix, which click refused.
    _write(guild.project, {"cli.py": CLICK, "guild.yml": "cli:\n  main: cli\n  flags-import: all\n"})
    r = guild.ctl("run", spec, "i=3", "b=yes", "c=blue", "-y")
    assert "Flags: 3 1.1 True hello blue" in r.stdout
    assert guild.info()["flags"] == {"b": True, "c": "blue", "f": 1.1, "i": 3, "s": "hello"}
    bad = guild.ctl("run", spec, "prefix=x", "-y", check=False)
    assert bad.returncode != 0 and "unsupported flag 'prefix'" in bad.stderr


def test_click_script_that_cannot_be_read_is_one_line(guild):
    _write(guild.project, {"cli.py": "import click\n@click.command(\ndef main(): pass\n"})
    runs = guild.run_dirs()
    r = guild.ctl("run", "cli.py", "-y", check=False)
    assert r.returncode != 0
    assert r.stderr.strip().startswith("guildctl: cannot read flags from") and len(r.stderr.strip().splitlines()) == 1
    assert guild.run_dirs() == runs


# List-valued flags (Guild's arg-split)


LISTS = """\
l = [1, 2, 'foo']
print("l", l)
"""


def test_list_global_is_a_flag_split_into_a_list(guild):
    # Before: `l` was dropped (not a scalar), so `l=...` was an unsupported flag.
    _write(guild.project, {"lists.py": LISTS})
    r = guild.ctl("run", "lists.py", "-y")
    assert "l [1, 2, 'foo']" in r.stdout
    assert guild.info()["flags"] == {"l": "1 2 foo"}
    r = guild.ctl("run", "lists.py", "l=3 bar 0.5", "-y")
    assert "l [3, 'bar', 0.5]" in r.stdout
    assert guild.info()["flags"] == {"l": "3 bar 0.5"}


# flags-dest: global:NAME, namespace:NAME, config:FILE


DESTS_YML = """\
gdict:
  main: gdict
  flags-dest: global:params
  flags-import: all
  flags:
    l:
      description: declared here, still a list
ns:
  main: ns
  flags-dest: namespace:params
  flags-import: all
cfg-yml:
  main: cfg
  flags-dest: config:flags.yml
  flags-import: all
cfg-json:
  main: cfg
  flags-dest: config:flags.json
  flags-import: all
cfg-ini:
  main: cfg
  flags-dest: config:flags.ini
  flags-import: all
  flags:
    sec.l:
      type: auto
missing:
  main: cfg
  flags-dest: config:nope.yml
toml:
  main: cfg
  flags-dest: config:flags.toml
bad-dest:
  main: cfg
  flags-dest: foo
"""

DEST_FILES = {
    "guild.yml": DESTS_YML,
    "gdict.py": """\
        params = {"i": 1, "s": "hello", "l": [1, 2, "foo"], "nested": {"a": 1.5}}
        print("params", sorted(params.items()))
        """,
    "ns.py": """\
        from types import SimpleNamespace
        params = SimpleNamespace(i=1, s="hello", l=[1, 2, "foo"])
        print("params", sorted(vars(params).items()))
        """,
    "cfg.py": """\
        import sys
        print("argv", sys.argv[1:])
        for name in ("flags.yml", "flags.json", "flags.ini"):
            print("==", name)
            print(open(name).read())
        """,
    "flags.yml": "i: 1\nb: no\nl: [1, 2, foo]\nnested:\n  a: 1.5\n",
    "flags.json": '{"i": 1, "b": false, "nested": {"a": 1.5}}\n',
    "flags.ini": "[sec]\ni = 123\nb = no\nl = 1 1.2 blue\n",
    "flags.toml": "i = 1\n",
}


@pytest.fixture
def dests(guild):
    _write(guild.project, DEST_FILES)
    return guild


def test_global_dict_flags(dests):
    r = dests.ctl("run", "gdict", "i=7", "nested.a=2", "l=3 bar", "-y")
    assert "params [('i', 7), ('l', [3, 'bar']), ('nested', {'a': 2}), ('s', 'hello')]" in r.stdout
    assert dests.info()["flags"] == {"i": 7, "l": "3 bar", "nested.a": 2, "s": "hello"}


def test_namespace_flags(dests):
    r = dests.ctl("run", "ns", "s=bye", "-y")
    assert "params [('i', 1), ('l', [1, 2, 'foo']), ('s', 'bye')]" in r.stdout
    assert dests.info()["flags"] == {"i": 1, "l": "1 2 foo", "s": "bye"}


def _config_text(stdout, name):
    return stdout.split(f"== {name}\n", 1)[1].split("\n==", 1)[0]


def test_config_yml_flags_written_into_the_run(dests):
    r = dests.ctl("run", "cfg-yml", "i=7", "nested.a=3", "-y")
    assert "argv []" in r.stdout  # the flags reach it through the file only
    import yaml

    assert yaml.safe_load(_config_text(r.stdout, "flags.yml")) == {"i": 7, "b": False, "l": [1, 2, "foo"], "nested": {"a": 3}}
    assert dests.info()["flags"] == {"b": False, "i": 7, "l": "1 2 foo", "nested.a": 3}
    # The project's file is as it was.
    assert (dests.project / "flags.yml").read_text() == DEST_FILES["flags.yml"]


def test_config_json_flags_written_into_the_run(dests):
    import json

    r = dests.ctl("run", "cfg-json", "b=yes", "-y")
    assert json.loads(_config_text(r.stdout, "flags.json")) == {"i": 1, "b": True, "nested": {"a": 1.5}}
    assert dests.info()["flags"] == {"b": True, "i": 1, "nested.a": 1.5}


def test_config_ini_flags_written_into_the_run(dests):
    import configparser

    r = dests.ctl("run", "cfg-ini", "sec.i=5", "sec.l=x y", "-y")
    assert "unknown type" not in r.stderr  # `type: auto` is Guild's
    parser = configparser.ConfigParser()
    parser.read_string(_config_text(r.stdout, "flags.ini"))
    assert dict(parser["sec"]) == {"i": "5", "b": "False", "l": "x y"}
    assert dests.info()["flags"] == {"sec.b": False, "sec.i": 5, "sec.l": "x y"}


@pytest.mark.parametrize("op, why", [
    ("missing", "cannot find config file 'nope.yml'"),
    ("toml", "unsupported config format 'flags.toml'"),
    ("bad-dest", "unsupported flags-dest 'foo' for operation 'bad-dest'"),
])
def test_bad_flags_dest_is_one_line(dests, op, why):
    runs = dests.run_dirs()
    r = dests.ctl("run", op, "-y", check=False)
    assert r.returncode != 0
    assert why in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert dests.run_dirs() == runs
