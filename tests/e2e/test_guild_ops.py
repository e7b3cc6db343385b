"""Guild-file idioms of how an operation runs (issue 12): an operation with no `main` runs
the module named like it, `main: guild.pass`, `sourcecode: dest:`, and run options inside
`steps:`. Each test writes its own small project; one daemon serves the module."""

import json
import pathlib

import pytest
import yaml

from tests.e2e.conftest import run, serve_module, write


@pytest.fixture(scope="module")
def g(tmp_path_factory):
    yield from serve_module(tmp_path_factory, "guildops")


def latest(g, proj, *filters):
    return json.loads(g.ctl("runs", "info", *filters, "--json", cwd=proj).stdout)


def attr_of(info, name):
    return yaml.safe_load((pathlib.Path(info["run_dir"]) / ".guild" / "attrs" / name).read_text())


def new_runs(g, before):
    """Runs made since `before` (a set of run ids), oldest first, as `runs info --json`."""
    infos = [g.info(d.name) for d in g.run_dirs() if d.name not in before]
    return sorted(infos, key=lambda i: i["started"])


# F1: no main, no exec: the module named like the operation

NO_MAIN = {
    "guild.yml": """
        - model: ''
          operations:
            train-model:
              flags-import: [x]
        - model: m
          operations:
            prep.data: {}
    """,
    "train_model.py": """
        x = 1.0
        print(f"trained x={x}")
    """,
    "prep/__init__.py": "",
    "prep/data.py": """
        print("prepared data")
    """,
}


def test_an_op_without_main_runs_the_module_named_like_it(g, proj):
    write(proj, NO_MAIN)
    r = run(g, proj, "train-model", "x=2")
    # Guild's rule: dashes become underscores; flags-import reads that module too.
    assert "trained x=2\n" in r.stdout
    info = latest(g, proj)
    assert (info["operation"], info["status"], info["flags"]) == ("train-model", "completed", {"x": 2})
    # A model's op: the op's name (dots are packages), not the model's.
    assert "prepared data\n" in run(g, proj, "m:prep.data").stdout


def test_flags_imported_from_the_default_module_take_a_batch(g, proj):
    write(proj, NO_MAIN)
    before = {d.name for d in g.run_dirs()}
    r = run(g, proj, "train-model", "x=linspace[-2:2:3]")
    assert [line for line in r.stdout.splitlines() if line.startswith("trained")] == [
        "trained x=-2.0", "trained x=0.0", "trained x=2.0"
    ]
    trials = [i for i in new_runs(g, before) if i["operation"] == "train-model"]
    assert sorted(i["flags"]["x"] for i in trials) == [-2.0, 0.0, 2.0]


# F2: main: guild.pass


def test_guild_pass_resolves_dependencies_and_does_nothing(g, proj):
    write(proj, {
        "guild.yml": """
            prepare:
              main: guild.pass hello 'big world'
              flags:
                a: 1
              requires:
                - file: data.txt
            echo-flags:
              main: guild.pass
              flags-dest: args
              flags:
                b: 2
        """,
        "data.txt": "some data\n",
    })
    r = run(g, proj, "prepare", "a=5")
    # As Guild's own no-op: its fixed args are printed; flags reach it as globals (none to print).
    assert r.stdout.splitlines()[-1] == "hello 'big world'"
    info = latest(g, proj)
    assert (info["status"], info["exit_status"], info["flags"]) == ("completed", 0, {"a": 5})
    assert (pathlib.Path(info["run_dir"]) / "data.txt").read_text() == "some data\n"
    # With flags-dest args, flags are arguments like any other.
    assert run(g, proj, "echo-flags").stdout.splitlines()[-1] == "--b 2"


# F6: sourcecode dest


def test_sourcecode_dest_is_on_the_module_path(g, proj):
    write(proj, {
        "guild.yml": """
            copy-to-src:
              main: a
              flags-import: all
              sourcecode:
                dest: src
            from-lib:
              main: a
              flags-import: all
              sourcecode:
                root: lib
                dest: code
        """,
        "a.py": """
            import b
            n = 1
            print(f"a: n={n} b={b.NAME}")
        """,
        "b.py": """
            NAME = "top"
        """,
        "lib/a.py": """
            import b
            m = 1
            print(f"lib a: m={m} b={b.NAME}")
        """,
        "lib/b.py": """
            NAME = "lib"
        """,
    })
    r = run(g, proj, "copy-to-src", "n=3")
    assert "a: n=3 b=top\n" in r.stdout
    info = latest(g, proj)
    assert info["status"] == "completed" and (pathlib.Path(info["run_dir"]) / "src" / "a.py").is_file()
    # With a source root, flags are imported from the root's module (as Guild does).
    r = run(g, proj, "from-lib", "m=4")
    assert "lib a: m=4 b=lib\n" in r.stdout
    assert latest(g, proj)["flags"] == {"m": 4}


# D6: run options in steps


def test_run_options_in_steps(g, proj):
    write(proj, {
        "guild.yml": """
            step:
              exec: echo step ${v}
              flags:
                v: 1
            pipe:
              flags:
                lr: 0.1
              steps:
                - run: step -l "lr-${lr} v=1" v=7
                - step --label=second v=8 --tag t1
                - run: step v=9
                  label: third
                - step v=10
                - step v=11 --no-gpus --max-trials 3
                - step v=12 extra=x --force-flags
        """,
    })
    before = {d.name for d in g.run_dirs()}
    r = run(g, proj, "pipe", "lr=0.5", "-l", "PL", "-t", "pt")
    steps = {i["flags"]["v"]: i for i in new_runs(g, before) if i["operation"] == "step"}
    # As in Guild: a label's `v=1` is the label, not a flag; a step without its own label
    # or tags takes the pipeline's (tags go in front of a label).
    assert {v: i["label"] for v, i in steps.items()} == {
        7: "pt lr-0.5 v=1", 8: "t1 second", 9: "pt third", 10: "pt PL", 11: "pt PL", 12: "pt PL",
    }
    assert {v: i["tags"] for v, i in steps.items()} == {
        7: ["pt"], 8: ["t1"], 9: ["pt"], 10: ["pt"], 11: ["pt"], 12: ["pt"],
    }
    # A step's GPU options and --force-flags are its run's; an option a step can't use is
    # named, not lost.
    assert steps[12]["flags"] == {"v": 12, "extra": "x"}
    assert attr_of(steps[11], "env")["CUDA_VISIBLE_DEVICES"] == ""
    assert "WARNING: run option --max-trials in step 'step v=11 --no-gpus --max-trials 3' is ignored" in r.stderr


def test_unknown_option_in_a_step_is_refused(g, proj):
    write(proj, {
        "guild.yml": """
            step:
              exec: echo hi
            pipe:
              steps:
                - step --no-such-option
        """,
    })
    before = {d.name for d in g.run_dirs()}
    r = run(g, proj, "pipe", check=False)
    assert r.returncode != 0
    assert "step --no-such-option" in r.stderr and "--no-such-option" in r.stderr.splitlines()[-1]
    assert {d.name for d in g.run_dirs()} == before


def test_a_bare_step_op_is_the_pipelines_models(g, proj):
    # As in Guild 0.9: in model `chk`, step `greet` runs `chk:greet`, although the default
    # model has a `greet` too (Guild's hello-package-legacy `_check:all`).
    write(proj, {
        "guild.yml": """
            - model: main
              default: yes
              operations:
                greet:
                  exec: echo main greet
            - model: chk
              operations:
                greet:
                  exec: echo chk greet
                all:
                  steps:
                    - greet
                    - main:greet
        """,
    })
    before = {d.name for d in g.run_dirs()}
    r = run(g, proj, "chk:all")
    assert sorted(i["operation"] for i in new_runs(g, before)) == ["chk:all", "chk:greet", "main:greet"]
    assert r.stdout.index("chk greet\n") < r.stdout.index("main greet\n")
    # Guild's step links: the op as written, `:` as `-`.
    pipe = [i for i in new_runs(g, before) if i["operation"] == "chk:all"][0]
    assert sorted(p.name for p in pathlib.Path(pipe["run_dir"]).iterdir() if p.is_symlink()) == [
        "greet", "main-greet"]


def test_a_pipeline_copies_no_source_code(g, proj):
    # As in Guild 0.9: a steps op's run dir holds only its step links, so a project dir
    # named like a step (Guild's dependencies example: `dir`) can't hide that step's link.
    write(proj, {
        "guild.yml": """
            dir:
              exec: echo dir step
            all:
              steps: [dir]
        """,
        "dir/a.txt": "a",
        "train.py": "print(1)",
    })
    before = {d.name for d in g.run_dirs()}
    run(g, proj, "all")
    pipe = [i for i in new_runs(g, before) if i["operation"] == "all"][0]
    run_dir = pathlib.Path(pipe["run_dir"])
    assert sorted(p.name for p in run_dir.iterdir() if p.name != ".guild") == ["dir"]
    assert (run_dir / "dir").is_symlink()
