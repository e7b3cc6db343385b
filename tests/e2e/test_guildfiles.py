"""Guild files end to end: `guildctl run OP` against a real guildd, for each thing a
`guild.yml` can declare (issue 4). Every test writes its own small project; one daemon and
GUILD_HOME serve the module, so each test looks only at the runs it made."""

import contextlib
import hashlib
import http.server
import json
import pathlib
import shutil
import signal
import threading

import pytest
import yaml

from tests.conftest import wait_for
from tests.e2e.conftest import Guild, run, serve_module, write


@pytest.fixture(scope="module")
def g(tmp_path_factory):
    yield from serve_module(tmp_path_factory, "guildfiles")


def ctl(g, proj, *args, check=True, input=None):
    return g.ctl(*args, cwd=proj, check=check, input=input)


def latest(g, proj, *filters):
    return json.loads(ctl(g, proj, "runs", "info", *filters, "--json").stdout)


def attr(run_dir, name):
    return yaml.safe_load((pathlib.Path(run_dir) / ".guild" / "attrs" / name).read_text())


def files_in(run_dir):
    """The run dir's files (not .guild), relative, sorted."""
    root = pathlib.Path(run_dir)
    return sorted(
        str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and ".guild" not in p.relative_to(root).parts
    )


@contextlib.contextmanager
def no_new_run(g):
    before = set(g.run_dirs())
    yield
    assert set(g.run_dirs()) == before, "a run dir was created"


# Loading and finding operations


def test_operations_only_format_ops_lists_descriptions(g, proj):
    write(proj, {
        "guild.yml": """
            train:
              description: Train a model
              exec: echo training
            evaluate:
              description: |
                Evaluate it
                on the test set
              exec: echo evaluating
            bare: {exec: echo bare}
        """,
    })
    out = ctl(g, proj, "ops").stdout.splitlines()
    assert [line.split()[0] for line in out] == ["bare", "evaluate", "train"]
    assert out[1].split(None, 1)[1] == "Evaluate it"  # the first line of the description
    assert out[2].split(None, 1)[1] == "Train a model"
    assert out[0].strip() == "bare"
    assert ctl(g, proj, "operations").stdout.splitlines() == out
    assert run(g, proj, "evaluate").stdout == "evaluating\n"
    info = latest(g, proj)
    assert (info["operation"], info["status"]) == ("evaluate", "completed")
    assert info["from"] == str(proj / "guild.yml")


def test_models_format_model_op_and_default_model(g, proj):
    write(proj, {
        "guild.yml": """
            - model: mnist
              description: An MNIST model
              default: yes
              operations:
                train:
                  description: Train MNIST
                  exec: echo mnist train
                evaluate:
                  exec: echo mnist evaluate
            - model: cifar
              operations:
                train:
                  description: Train CIFAR
                  exec: echo cifar train
        """,
    })
    out = ctl(g, proj, "ops").stdout.splitlines()
    assert [line.split()[0] for line in out] == ["cifar:train", "mnist:evaluate", "mnist:train"]
    assert out[0].split(None, 1)[1] == "Train CIFAR"
    # A bare OP is looked up in the default model; MODEL:OP picks another model.
    assert run(g, proj, "train").stdout == "mnist train\n"
    assert latest(g, proj)["operation"] == "mnist:train"
    assert run(g, proj, "cifar:train").stdout == "cifar train\n"
    assert latest(g, proj)["operation"] == "cifar:train"
    assert run(g, proj, "mnist:evaluate").stdout == "mnist evaluate\n"
    assert run(g, proj, "cif:train").stdout == "cifar train\n"  # a unique part of a model name


INHERIT_YML = """
- include: shared.yml
- config: base-flags
  flags:
    lr: 0.1
    epochs: 2
- model: base
  operations:
    train:
      description: Train ({{name}})
      exec: echo train {{name}} ${lr} ${epochs}
      flags:
        $include: base-flags
  params:
    name: base
- model: child
  extends: [base, extra]
  params:
    name: kid
"""


def test_include_extends_config_and_params(g, proj):
    (proj / "guild.yml").write_text(INHERIT_YML)
    write(proj, {"shared.yml": "- config: extra\n  operations:\n    evaluate:\n      exec: echo eval\n"})
    out = ctl(g, proj, "ops").stdout.splitlines()
    assert [line.split(None, 1) for line in out] == [
        ["base:train", "Train (base)"], ["child:evaluate"], ["child:train", "Train (kid)"]]
    assert run(g, proj, "child:train", "lr=0.5").stdout == "train kid 0.5 2\n"
    assert latest(g, proj)["flags"] == {"epochs": 2, "lr": 0.5}
    assert run(g, proj, "child:evaluate").stdout == "eval\n"


def test_extends_cycle_is_an_error(g, proj):
    (proj / "guild.yml").write_text(INHERIT_YML + "- model: loop-a\n  extends: loop-b\n- model: loop-b\n  extends: loop-a\n")
    write(proj, {"shared.yml": "- config: extra\n"})
    with no_new_run(g):
        r = run(g, proj, "child:train", check=False)
    assert r.returncode == 1
    assert "cycle" in r.stderr and "loop-a" in r.stderr and str(proj / "guild.yml") in r.stderr


def test_guild_yaml_and_the_only_operation_is_the_default(g, proj):
    write(proj, {"guild.yaml": "hello:\n  exec: echo hello ${who}\n  flags:\n    who: you\n"})
    assert run(g, proj).stdout == "hello you\n"
    assert run(g, proj, "who=me").stdout == "hello me\n"  # FLAG=VAL alone: the default op
    assert latest(g, proj)["operation"] == "hello"


def test_default_operation_marked_default(g, proj):
    write(proj, {
        "guild.yml": """
            a: {exec: echo a}
            b: {exec: echo b, default: yes}
        """,
    })
    assert run(g, proj).stdout == "b\n"


def test_no_default_operation_is_an_error(g, proj):
    write(proj, {"guild.yml": "a: {exec: echo a}\nb: {exec: echo b}\n"})
    with no_new_run(g):
        r = run(g, proj, check=False)
    assert r.returncode == 1
    assert "default operation" in r.stderr


def test_unknown_operation_lists_the_operations(g, proj):
    write(proj, {"guild.yml": "train: {exec: echo t}\nprepare: {exec: echo p}\n"})
    with no_new_run(g):
        r = run(g, proj, "trian", check=False)
    assert r.returncode == 1
    assert "'trian'" in r.stderr
    assert "  prepare\n" in r.stderr and "  train" in r.stderr


# main, exec, flags-dest, flags-import, env, label


TRAINER = """
    import argparse, sys
    p = argparse.ArgumentParser()
    p.add_argument("--mode")
    p.add_argument("--lr", type=float, default=0.5)
    a = p.parse_args()
    print("mode", a.mode, "lr", a.lr, "argv", sys.argv[1:])
"""


def test_main_module_with_args_and_flag_refs(g, proj):
    write(proj, {
        "guild.yml": """
            train:
              main: src/trainer --mode ${mode}
              flags:
                mode: fast
                lr: 0.1
        """,
        "src/trainer.py": TRAINER,
    })
    r = run(g, proj, "train", "lr=0.3")
    assert r.stdout == "mode fast lr 0.3 argv ['--mode', 'fast', '--lr', '0.3']\n"
    r = run(g, proj, "train", "mode=slow")
    assert r.stdout.startswith("mode slow lr 0.1 ")
    info = latest(g, proj)
    assert info["flags"] == {"lr": 0.1, "mode": "slow"}
    cmd = ctl(g, proj, "run", "train", "--print-cmd").stdout.strip()
    assert cmd.endswith("trainer --mode fast -- --lr 0.1")


def test_exec_shell_script_flags_by_ref_env_and_flag_args(g, proj):
    write(proj, {
        "guild.yml": """
            greet:
              exec: bash greet.sh ${greeting} ${flag_args}
              flags:
                greeting: hi
                count: 2
        """,
        "greet.sh": """
            echo "args: $*"
            echo "env: $FLAG_GREETING $FLAG_COUNT"
            echo "dir: $(basename $PWD) $RUN_ID"
        """,
    })
    out = run(g, proj, "greet", "greeting=hello", "count=3").stdout.splitlines()
    info = latest(g, proj)
    assert out[0] == "args: hello --count 3 --greeting hello"
    assert out[1] == "env: hello 3"
    assert out[2] == f"dir: {info['id']} {info['id']}"  # runs in its run dir
    assert (info["status"], info["flags"]) == ("completed", {"count": 3, "greeting": "hello"})


def test_non_python_program(g, proj):
    perl = shutil.which("perl")
    if not perl:
        pytest.skip("perl is not installed")
    write(proj, {
        "guild.yml": """
            fit:
              description: A Perl program
              exec: perl fit.pl ${flag_args}
              flags:
                rate: 0.5
                name: model
        """,
        "fit.pl": """
            my %args = @ARGV;
            print "name=$args{'--name'} env=$ENV{FLAG_NAME}\\n";
            for my $step (1..3) {
                print "step: $step\\n";
                print "loss: ", $ENV{FLAG_RATE} / $step, "\\n";
            }
        """,
    })
    r = run(g, proj, "fit", "rate=0.9", "name=perl")
    assert r.stdout.splitlines()[0] == "name=perl env=perl"
    info = latest(g, proj)
    assert info["status"] == "completed" and info["exit_status"] == 0
    assert info["scalars"]["loss"][1] == 3
    assert info["scalars"]["loss"][0] == pytest.approx(0.3)
    assert (pathlib.Path(info["run_dir"]) / "fit.pl").exists()  # its source is copied too


def test_exec_failure_is_an_error_run_with_its_exit_code(g, proj):
    write(proj, {"guild.yml": "boom:\n  exec: bash -c 'echo going; exit 3'\n"})
    r = run(g, proj, "boom", check=False)
    assert r.returncode == 3 and r.stdout == "going\n"
    info = latest(g, proj)
    assert (info["status"], info["exit_status"]) == ("error", 3)


def test_flags_dest_globals_global_dict_and_args(g, proj):
    write(proj, {
        "guild.yml": """
            glob:
              main: g
              flags-dest: globals
              flags:
                a: 1
                s: x
            dict:
              main: d
              flags-dest: global:params
              flags:
                x: 1
                y: hi
            args:
              main: a
              flags-dest: args
              flags:
                n: 4
        """,
        "g.py": 'a = 0\ns = "none"\nprint("a", repr(a), "s", repr(s))\n',
        "d.py": 'params = {"x": 0, "y": "none"}\nprint(params)\n',
        "a.py": """
            import sys
            print(sys.argv[1:])
        """,
    })
    assert run(g, proj, "glob", "a=5", "s=yo").stdout == "a 5 s 'yo'\n"
    assert run(g, proj, "dict", "x=2.5").stdout == "{'x': 2.5, 'y': 'hi'}\n"
    assert run(g, proj, "args", "n=7").stdout == "['--n', '7']\n"


def test_flags_import_all_list_none(g, proj):
    write(proj, {
        "guild.yml": """
            all:
              main: g
              flags-import: all
            some:
              main: g
              flags-import: [b]
            none:
              main: g
              flags-import: no
            parsed:
              main: p
              flags-import: all
        """,
        "g.py": 'a = 1\nb = 2.5\nprint("a", a, "b", b)\n',
        "p.py": """
            import argparse
            p = argparse.ArgumentParser()
            p.add_argument("--n", type=int, default=4, help="How many")
            print(vars(p.parse_args()))
        """,
    })
    assert run(g, proj, "all", "a=3", "b=1.5").stdout == "a 3 b 1.5\n"
    assert latest(g, proj)["flags"] == {"a": 3, "b": 1.5}
    assert run(g, proj, "some", "b=9").stdout == "a 1 b 9\n"
    assert latest(g, proj)["flags"] == {"b": 9}
    assert run(g, proj, "none").stdout == "a 1 b 2.5\n"
    assert latest(g, proj)["flags"] == {}
    with no_new_run(g):
        for op in ("some", "none"):
            r = run(g, proj, op, "a=3", check=False)
            assert r.returncode == 1
            assert "unsupported flag 'a'" in r.stderr
    # Detected from argparse: the default, the type and the help text.
    assert run(g, proj, "parsed", "n=7").stdout == "{'n': 7}\n"
    help_text = ctl(g, proj, "run", "parsed", "--help-op").stdout
    assert "How many (default is 4)" in help_text
    with no_new_run(g):
        r = run(g, proj, "parsed", "n=seven", check=False)
    assert r.returncode == 1 and "'n'" in r.stderr


def test_env(g, proj):
    write(proj, {
        "guild.yml": """
            show:
              exec: bash -c 'echo "$MY_VAR $NUM $FLAG_Z"'
              env:
                MY_VAR: hello
                NUM: 3
              flags:
                z: 7
        """,
    })
    assert run(g, proj, "show").stdout == "hello 3 7\n"
    env = ctl(g, proj, "run", "show", "--print-env").stdout.splitlines()
    assert "MY_VAR=hello" in env and "NUM=3" in env and "FLAG_Z=7" in env


def test_label_template(g, proj):
    write(proj, {
        "guild.yml": """
            t:
              exec: echo ok
              label: lr=${lr} b=${b|%.2f} c=${c|default:none} ${default_label}
              flags:
                lr: 0.1
                b: 2.5
                c: null
        """,
    })
    run(g, proj, "t", "lr=0.01", "-t", "best")
    info = latest(g, proj)
    assert info["label"] == "best lr=0.01 b=2.50 c=none b=2.5 lr=0.01"
    assert attr(info["run_dir"], "label") == info["label"]
    # A --label on the command line wins over the operation's template.
    run(g, proj, "t", "-l", "mine ${lr}")
    assert latest(g, proj)["label"] == "mine 0.1"


# Output scalars

OUT_PY = """
    for i in range(3):
        print(f"Epoch {i}")
        print(f"accuracy={0.5 + i / 10}")
        print(f"loss: {1.0 / (i + 1)}")
        print(f"f1={i}")
        print(f"iter {i}: prec is {i * 2}")
"""

SCALARS_YML = r"""
custom:
  main: out
  output-scalars:
    - step: 'Epoch (\step)'
    - acc: 'accuracy=(\value)'
    - '(\key)=(\value)'
named:
  main: out
  output-scalars:
    - 'iter (?P<step>\step): prec is (?P<prec>\value)'
mapping:
  main: out
  output-scalars:
    loss_value: 'loss: (\value)'
nocapture:
  main: out
  output-scalars: no
default:
  main: out
"""


def _scalars(g, proj, op):
    run(g, proj, op)
    info = latest(g, proj)
    return {k: (pytest.approx(v), step) for k, (v, step) in info["scalars"].items()}, info


def test_output_scalars(g, proj):
    (proj / "guild.yml").write_text(SCALARS_YML)
    write(proj, {"out.py": OUT_PY})
    # Custom patterns replace the default capture: `loss: X` is not taken.
    scalars, _ = _scalars(g, proj, "custom")
    assert scalars == {"acc": (0.7, 2), "accuracy": (0.7, 2), "f1": (2.0, 2)}
    scalars, _ = _scalars(g, proj, "named")
    assert scalars == {"prec": (4.0, 2)}
    scalars, _ = _scalars(g, proj, "mapping")
    assert scalars == {"loss_value": (1 / 3, 0)}
    scalars, info = _scalars(g, proj, "nocapture")
    assert scalars == {}
    assert not list((pathlib.Path(info["run_dir"]) / ".guild").glob("events.out.tfevents.*"))
    scalars, _ = _scalars(g, proj, "default")
    assert scalars == {"loss": (1 / 3, 0)}


def test_test_output_scalars_file_and_stdin(g, proj):
    (proj / "guild.yml").write_text(SCALARS_YML)
    (proj / "lines.txt").write_text("Epoch 4\naccuracy=0.75\nnothing here\n")
    with no_new_run(g):
        r = ctl(g, proj, "run", "custom", "--test-output-scalars", "lines.txt")
        r2 = ctl(g, proj, "run", "named", "--test-output-scalars", "-", input="iter 3: prec is 5\n")
    lines = r.stdout.splitlines()
    assert lines[0] == "Epoch 4" and "step=4" in lines[1]
    i = lines.index("accuracy=0.75")
    assert "acc=0.75" in lines[i + 2] and "accuracy=0.75" in lines[i + 3]
    assert all("<no matches>" in line for line in lines[lines.index("nothing here") + 1:])
    assert r2.stdout.splitlines()[0] == "iter 3: prec is 5"
    assert "prec=5" in r2.stdout and "step=3" in r2.stdout


# Source code

SOURCE_FILES = {
    "src/main.py": "print('hi')\n",
    "src/pkg/util.py": "x = 1\n",
    "data/d.csv": "a,b\n",
    "top.py": "print('top')\n",
    "notes.txt": "notes\n",
}


def test_sourcecode_rules_in_the_run_dir(g, proj):
    write(proj, {
        **SOURCE_FILES,
        "guild.yml": """
            default:
              exec: echo ok
            only-py:
              exec: echo ok
              sourcecode:
                - exclude: '*'
                - include: '*.py'
                - exclude: top.py
            dest:
              exec: echo ok
              sourcecode:
                dest: code
                select:
                  - exclude:
                      dir: data
            nosource:
              exec: echo ok
              sourcecode: no
            rooted:
              exec: echo ok
              sourcecode:
                root: src
                select:
                  - exclude:
                      dir: pkg
        """,
    })
    expected = {
        "default": ["data/d.csv", "guild.yml", "notes.txt", "src/main.py", "src/pkg/util.py", "top.py"],
        "only-py": ["src/main.py", "src/pkg/util.py"],
        "dest": ["code/guild.yml", "code/notes.txt", "code/src/main.py", "code/src/pkg/util.py", "code/top.py"],
        "nosource": [],
        "rooted": ["main.py"],
    }
    for op, files in expected.items():
        run(g, proj, op)
        info = latest(g, proj)
        assert files_in(info["run_dir"]) == files, op
        manifest = pathlib.Path(info["run_dir"], ".guild", "manifest")
        listed = sorted(line.split()[1] for line in manifest.read_text().splitlines()) if manifest.exists() else []
        assert listed == files, op


def test_test_sourcecode(g, proj):
    write(proj, {
        **SOURCE_FILES,
        "guild.yml": """
            rooted:
              exec: echo ok
              sourcecode:
                root: src
                select:
                  - exclude:
                      dir: pkg
            nosource:
              exec: echo ok
              sourcecode: no
        """,
    })
    with no_new_run(g):
        out = ctl(g, proj, "run", "rooted", "--test-sourcecode").stdout
        off = ctl(g, proj, "run", "nosource", "--test-sourcecode").stdout
    assert out.startswith("Copying from 'src'\nRules:\n")
    assert "exclude dir 'pkg'" in out
    selected = out.split("Selected for copy:\n")[1].split("Skipped:")[0]
    assert selected.split() == ["src/main.py"]
    assert "Source code copy disabled" in off


# Flag definitions

FLAGS_YML = """
train:
  description: Train with typed flags
  exec: bash -c 'echo "$@"' x ${flag_args}
  flags:
    lr:
      description: Learning rate
      type: float
      default: 0.01
      min: 0
      max: 1
    epochs:
      type: int
      default: 5
    optimizer:
      description: Optimizer to use
      default: adam
      choices:
        - adam
        - sgd
        - value: fast
          description: SGD with a large learning rate
          flags:
            lr: 0.5
    size:
      default: 0.1
      choices:
        - value: 0.1
          alias: small
        - value: 0.9
          alias: big
    data:
      description: Data set name
      required: yes
    verbose:
      type: boolean
      default: no
      arg-switch: yes
    batch-size:
      default: 32
      arg-name: batch_size
    secret:
      default: s3
      arg-skip: yes
    seed:
      null-label: random
    n:
      type: number
      default: 1
    src:
      type: existing-path
"""


@pytest.fixture
def flags_proj(proj):
    (proj / "guild.yml").write_text(FLAGS_YML)
    (proj / "here").mkdir()
    return proj


def test_flag_defs_reach_the_command(g, flags_proj):
    out = run(g, flags_proj, "train", "data=mnist").stdout.split()
    assert out == ["--batch_size", "32", "--data", "mnist", "--epochs", "5", "--lr", "0.01",
                   "--n", "1", "--optimizer", "adam", "--size", "0.1"]
    out = run(g, flags_proj, "train", "data=x", "verbose=yes", "epochs=7", "n=2.5", "src=here").stdout.split()
    assert "--verbose" in out and out[out.index("--epochs") + 1] == "7" and out[out.index("--n") + 1] == "2.5"
    assert out[out.index("--src") + 1] == str(flags_proj / "here")
    assert latest(g, flags_proj)["flags"]["epochs"] == 7
    # A choice can set other flags; a value the user gives still wins.
    out = run(g, flags_proj, "train", "data=x", "optimizer=fast").stdout.split()
    assert out[out.index("--lr") + 1] == "0.5"
    out = run(g, flags_proj, "train", "data=x", "optimizer=fast", "lr=0.2").stdout.split()
    assert out[out.index("--lr") + 1] == "0.2"
    # A choice's alias stands for its value.
    out = run(g, flags_proj, "train", "data=x", "size=big").stdout.split()
    assert out[out.index("--size") + 1] == "0.9"
    assert latest(g, flags_proj)["flags"]["size"] == 0.9


@pytest.mark.parametrize("args,flag,why", [
    (("lr=2",), "lr", "max"),
    (("lr=-1",), "lr", "min"),
    (("epochs=abc",), "epochs", "int"),
    (("lr=fast",), "lr", "float"),
    (("optimizer=adagrad",), "optimizer", "adam, sgd, fast"),
    (("size=huge",), "size", ""),
    (("src=nowhere",), "src", "not exist"),
    (("nosuch=1",), "nosuch", "unsupported"),
])
def test_bad_flag_values_are_refused_before_a_run(g, flags_proj, args, flag, why):
    with no_new_run(g):
        r = run(g, flags_proj, "train", "data=x", *args, check=False)
    assert r.returncode == 1
    assert f"'{flag}'" in r.stderr and why in r.stderr
    assert r.stderr.count("\n") <= 3 and "Traceback" not in r.stderr


def test_required_flag(g, flags_proj):
    with no_new_run(g):
        r = run(g, flags_proj, "train", check=False)
    assert r.returncode == 1
    assert "missing required flag 'data'" in r.stderr


def test_help_op(g, flags_proj):
    with no_new_run(g):
        out = ctl(g, flags_proj, "run", "train", "--help-op").stdout
    assert "Usage: guildctl run [OPTIONS] train [FLAG]..." in out
    assert "Train with typed flags" in out
    lines = out.splitlines()
    flag_line = {line.split()[0]: line for line in lines if line.startswith("  ") and line.split()}
    assert flag_line["lr"].split(None, 1)[1] == "Learning rate (default is 0.01)"
    assert flag_line["data"].split(None, 1)[1] == "Data set name (required)"
    assert flag_line["seed"].split(None, 1)[1] == "(default is random)"
    assert flag_line["epochs"].split(None, 1)[1] == "(default is 5)"
    assert any(line.split() == ["fast", "SGD", "with", "a", "large", "learning", "rate"] for line in lines)
    assert any(line.split() == ["Choices:", "small,", "big"] for line in lines)


def test_test_flags_print_cmd_print_env(g, flags_proj):
    with no_new_run(g):
        flags = ctl(g, flags_proj, "run", "train", "--test-flags", "data=x").stdout
        cmd = ctl(g, flags_proj, "run", "train", "data=x", "epochs=9", "--print-cmd").stdout
        env = ctl(g, flags_proj, "run", "train", "data=x", "--print-env").stdout.splitlines()
    assert "flags-dest: args" in flags
    assert "  batch-size:\n    default: 32\n" in flags and "    arg-name: batch_size" in flags
    assert "    choices: adam, sgd, fast" in flags
    assert cmd.startswith("bash -c ") and "--epochs 9" in cmd and "secret" not in cmd
    assert "FLAG_DATA=x" in env and "FLAG_SECRET=s3" in env and "FLAG_EPOCHS=5" in env


# Dependencies


class _Server:
    def __init__(self, root):
        self.requests = []
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a, **kw):
                super().__init__(*a, directory=str(root), **kw)

            def do_GET(self):
                server.requests.append(self.path)
                super().do_GET()

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def http_server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    (root / "blob.txt").write_text("payload\n")
    server = _Server(root)
    yield server
    server.close()


def test_requires_files_and_directories(g, proj):
    write(proj, {
        "data/train.csv": "1,2\n",
        "data/sub/extra.txt": "x\n",
        "guild.yml": """
            usefile:
              exec: cat train.csv
              sourcecode: no
              requires:
                - file: data/train.csv
            usedir:
              exec: echo ok
              sourcecode: no
              requires:
                - file: data
                  target-path: inputs
        """,
    })
    r = run(g, proj, "usefile")
    assert "1,2\n" in r.stdout
    info = latest(g, proj)
    assert files_in(info["run_dir"]) == ["train.csv"]
    assert (pathlib.Path(info["run_dir"]) / "train.csv").is_file()
    deps = attr(info["run_dir"], "deps")
    assert deps["file:data/train.csv"]["file:data/train.csv"]["uri"] == "file:data/train.csv"
    run(g, proj, "usedir")
    info = latest(g, proj)
    assert files_in(info["run_dir"]) == ["inputs/data/sub/extra.txt", "inputs/data/train.csv"]


def test_requires_url_with_sha256_and_cache(g, proj, http_server):
    sha = hashlib.sha256(b"payload\n").hexdigest()
    write(proj, {
        "guild.yml": f"""
            get:
              exec: cat blob.txt
              sourcecode: no
              requires:
                - url: {http_server.url}/blob.txt
                  sha256: {sha}
        """,
    })
    assert run(g, proj, "get").stdout.endswith("payload\n")
    info = latest(g, proj)
    assert info["status"] == "completed"
    assert (pathlib.Path(info["run_dir"]) / "blob.txt").read_text() == "payload\n"
    cached = list((g.home / "cache").rglob("blob.txt"))
    assert len(cached) == 1
    # A second run uses the cache: the server is not asked again.
    assert run(g, proj, "get").stdout.endswith("payload\n")
    assert http_server.requests == ["/blob.txt"]
    assert latest(g, proj)["status"] == "completed"


def test_requires_url_with_a_wrong_sha256_fails_the_run(g, proj, http_server):
    wrong = "ab" * 32
    write(proj, {
        "guild.yml": f"""
            get:
              exec: cat other.txt
              sourcecode: no
              requires:
                - url: {http_server.url}/other.txt
                  sha256: {wrong}
        """,
    })
    (proj.parent / "www" / "other.txt").write_text("not what you expected\n")
    r = run(g, proj, "get", check=False)
    assert r.returncode == 1
    assert "other.txt" in r.stderr and "sha256" in r.stderr
    info = latest(g, proj)
    assert info["status"] == "error"
    assert "other.txt" not in files_in(info["run_dir"])
    assert not list((g.home / "cache").rglob("other.txt"))  # a bad download is not cached


def test_requires_missing_file_fails_the_run_naming_it(g, proj):
    write(proj, {
        "guild.yml": """
            needy:
              exec: echo should not run
              requires:
                - name: dataset
                  sources:
                    - file: missing.csv
        """,
    })
    r = run(g, proj, "needy", check=False)
    assert r.returncode == 1
    assert "dataset" in r.stderr and "missing.csv" in r.stderr
    assert "should not run" not in r.stdout
    info = latest(g, proj)
    assert (info["operation"], info["status"]) == ("needy", "error")


UPSTREAM_YML = """
up:
  exec: bash -c 'echo ${n} > out.txt; echo made ${n}; test ${crash} = no'
  flags:
    n: 1
    crash: no
down:
  main: down
  requires:
    - operation: up
"""

DOWN_PY = """
import argparse
p = argparse.ArgumentParser()
p.add_argument("--k", type=int, default=0)
a = p.parse_args()
print("got", open("out.txt").read().strip(), "k", a.k)
"""


def test_requires_operation_without_a_completed_run(g, proj):
    (proj / "guild.yml").write_text(UPSTREAM_YML.replace("up:", "upstream-never-run:").replace("operation: up", "operation: upstream-never-run"))
    write(proj, {"down.py": DOWN_PY})
    r = run(g, proj, "down", check=False)
    assert r.returncode == 1
    assert "upstream-never-run" in r.stderr
    assert latest(g, proj)["status"] == "error"


def test_requires_operation_naming_no_run(g, proj):
    (proj / "guild.yml").write_text(UPSTREAM_YML)
    write(proj, {"down.py": DOWN_PY})
    r = run(g, proj, "down", "up=zzzz", check=False)
    assert r.returncode == 1
    assert "up" in r.stderr and "'zzzz'" in r.stderr
    info = latest(g, proj)
    assert (info["operation"], info["status"]) == ("down", "error")  # not left pending


def test_requires_operation_latest_explicit_and_marked(g, proj):
    (proj / "guild.yml").write_text(UPSTREAM_YML)
    write(proj, {"down.py": DOWN_PY})
    run(g, proj, "up", "n=1")
    first = latest(g, proj)["id"]
    run(g, proj, "up", "n=2")
    second = latest(g, proj)["id"]
    # An upstream run that fails is not chosen.
    assert run(g, proj, "up", "n=3", "crash=yes", check=False).returncode == 1
    # The latest completed run of `up`.
    assert run(g, proj, "down").stdout.splitlines()[-1] == "got 2 k 0"
    # Guild 0.9 names an unnamed operation dependency, and its flag, by its uri.
    info = json.loads(ctl(g, proj, "runs", "info", "--deps", "--json").stdout)
    assert info["flags"]["operation:up"] == second
    dep = info["dependencies"]["operation:up"]["operation:up"]
    assert dep["config"] == second and dep["paths"] == [f"../{second}/out.txt"]
    assert attr(info["run_dir"], "deps")["operation:up"]["operation:up"]["config"] == second
    assert "--up" not in info["command"] and "operation:up" not in info["command"]  # not passed to the script
    assert (pathlib.Path(info["run_dir"]) / "out.txt").read_text() == "2\n"
    text = ctl(g, proj, "runs", "info", "--deps").stdout
    # Nested YAML, as Guild 0.9 prints it (not a Python dict).
    assert text.split("dependencies:\n")[1].splitlines() == [
        "  operation:up:", "    operation:up:", f"      config: {second}", "      paths:",
        f"      - ../{second}/out.txt", "      uri: operation:up"]
    # One named explicitly (a prefix will do).
    assert run(g, proj, "down", f"up={first[:8]}").stdout.splitlines()[-1] == "got 1 k 0"
    assert latest(g, proj)["flags"]["operation:up"] == first
    # A marked run is preferred to a later one.
    ctl(g, proj, "mark", first, "-y")
    assert run(g, proj, "down").stdout.splitlines()[-1] == "got 1 k 0"
    ctl(g, proj, "unmark", first, "-y")
    assert run(g, proj, "down").stdout.splitlines()[-1] == "got 2 k 0"


def test_requires_select_rename_link_and_config(g, proj):
    write(proj, {
        "data/a.txt": "a\n",
        "data/b.csv": "b\n",
        "cfg.yml": "lr: 0.1\nmodel:\n  layers: 2\nkeep: yes\n",
        "guild.yml": r"""
            make-model:
              exec: bash -c 'mkdir -p out; echo weights > out/model.bin; echo l > log.txt'
            use-model:
              exec: echo ok
              sourcecode: no
              flags:
                lr: 0.5
                model.layers: 4
              requires:
                - operation: make-model
                  select: out/model\.bin
                  rename: model final
                  target-type: link
                  target-path: upstream
                - config: cfg.yml
                - file: data
                  select: .*\.csv
        """,
    })
    run(g, proj, "make-model")
    upstream = latest(g, proj)["id"]
    run(g, proj, "use-model")
    info = latest(g, proj)
    rdir = pathlib.Path(info["run_dir"])
    assert files_in(rdir) == ["b.csv", "cfg.yml", "upstream/final.bin"]
    link = rdir / "upstream" / "final.bin"
    assert link.is_symlink() and link.resolve() == g.home / "runs" / upstream / "out" / "model.bin"
    assert link.read_text() == "weights\n"
    assert yaml.safe_load((rdir / "cfg.yml").read_text()) == {"lr": 0.5, "model": {"layers": 4}, "keep": True}
    assert (proj / "cfg.yml").read_text().startswith("lr: 0.1")  # the project's file is untouched


# Steps

STEPS_YML = """
ok:
  exec: bash -c 'echo ok ${v}; sleep 0.2; date +%s%N > t'
  flags:
    v: 1
fail:
  exec: bash -c 'echo failing; exit 3'
pipe:
  flags:
    v: 5
  steps:
    - ok v=${v}
    - run: ok
      name: second
      flags:
        v: 9
bad-pipe:
  steps:
    - ok v=2
    - fail
    - ok v=3
cyc-a:
  steps:
    - cyc-b
cyc-b:
  steps:
    - cyc-a
"""


def test_steps_run_in_order_as_child_runs(g, proj):
    (proj / "guild.yml").write_text(STEPS_YML)
    r = run(g, proj, "pipe", "v=6")
    assert "ok 6\n" in r.stdout and "ok 9\n" in r.stdout
    assert r.stdout.index("ok 6") < r.stdout.index("ok 9")
    parent = latest(g, proj, "-o", "pipe")
    assert (parent["status"], parent["flags"]) == ("completed", {"v": 6})
    pdir = pathlib.Path(parent["run_dir"])
    first, second = (pdir / "ok").resolve(), (pdir / "second").resolve()
    assert (pdir / "ok").is_symlink() and (pdir / "second").is_symlink()
    info1, info2 = g.info(first.name), g.info(second.name)
    assert (info1["operation"], info1["status"], info1["flags"]) == ("ok", "completed", {"v": 6})
    assert (info2["operation"], info2["status"], info2["flags"]) == ("ok", "completed", {"v": 9})
    assert int((first / "t").read_text()) < int((second / "t").read_text())


def test_failed_step_fails_the_pipeline(g, proj):
    (proj / "guild.yml").write_text(STEPS_YML)
    before = {d.name for d in g.run_dirs()}
    r = run(g, proj, "bad-pipe", check=False)
    assert r.returncode == 1
    assert "fail" in r.stderr.splitlines()[-1] and "error" in r.stderr.splitlines()[-1]
    parent = latest(g, proj, "-o", "bad-pipe")
    assert parent["status"] == "error"
    new = [g.info(d.name) for d in g.run_dirs() if d.name not in before]
    ops = sorted((i["operation"], i["status"]) for i in new)
    # The third step never ran.
    assert ops == [("bad-pipe", "error"), ("fail", "error"), ("ok", "completed")]


def test_step_cycle_is_refused(g, proj):
    (proj / "guild.yml").write_text(STEPS_YML)
    with no_new_run(g):
        r = run(g, proj, "cyc-a", check=False)
    assert r.returncode == 1
    assert "cycle" in r.stderr and "cyc-a -> cyc-b -> cyc-a" in r.stderr


# Bad input


def test_invalid_yaml_names_file_and_line(g, proj):
    (proj / "guild.yml").write_text("train:\n  exec: echo hi\n  flags:\n    a: [1, 2\n    b: 3\n")
    with no_new_run(g):
        r = run(g, proj, "train", check=False)
        r2 = ctl(g, proj, "ops", check=False)
    assert r.returncode == 1 and r2.returncode == 1
    assert f"{proj / 'guild.yml'}:" in r.stderr
    line = int(r.stderr.split("guild.yml:")[1].split(":")[0])
    assert line in (4, 5)
    assert "Traceback" not in r.stderr


def test_unknown_attribute_warns_and_still_runs(g, proj):
    write(proj, {
        "guild.yml": """
            train:
              exec: echo hi ${a}
              flgas:
                a: 1
              flags:
                a:
                  defualt: 2
        """,
    })
    r = run(g, proj, "train")
    assert r.stdout == "hi \n"
    assert "WARNING" in r.stderr and "'flgas'" in r.stderr and "'defualt'" in r.stderr
    assert "did you mean 'flags'" in r.stderr
    assert latest(g, proj)["status"] == "completed"


def test_stoppable_operation_stopped_is_completed_and_delete_on_success_trashes(tmp_path, project):
    (project / "guild.yml").write_text(
        "serve:\n  main: serve\n  stoppable: yes\n"
        "tidy:\n  main: tidy\n  delete-on-success: yes\n"
        "keep:\n  main: tidy\n  env-secrets: [MY_SECRET]\n  compare: ['=n as count']\n  flags:\n    n: 3\n"
    )
    (project / "serve.py").write_text("import time\nprint('serving', flush=True)\ntime.sleep(60)\n")
    (project / "tidy.py").write_text("n = 1\nprint('done', n)\n")
    g = Guild(tmp_path / "home-stoppable", project)
    g.start_daemon()
    try:
        run_id = g.ctl("run", "serve", "--background", "-y").stdout.split(" as ")[1].split()[0]
        wait_for(lambda: "serving" in (g.home / "runs" / run_id / ".guild" / "output").read_text())
        g.ctl("stop", run_id)
        info = g.info(run_id)
        assert info["status"] == "completed" and info["exit_status"] == 0
        g.ctl("run", "tidy", "-y")
        assert [r["operation"] for r in g.runs()] == ["serve"]
        assert [r["operation"] for r in json.loads(g.ctl("runs", "--deleted", "--json").stdout)] == ["tidy"]
        env = {**g.env, "MY_SECRET": "s3cret"}
        g.ctl("run", "keep", "-y", env=env)
        assert "MY_SECRET" not in json.loads(g.ctl("runs", "info", "--env", "--json").stdout)["environment"]
        header = g.ctl("compare", "--csv", "-", "-Fo", "keep").stdout.splitlines()[0].split(",")
        assert header[:7] == ["run", "operation", "started", "time", "status", "label", "count"]
    finally:
        g.kill_daemon(signal.SIGTERM)


QUAD_OP = {
    "quad.py": """
        x = 0.0
        print("loss: %f" % ((x + 0.3) ** 2))
        print("acc: %f" % (1 - abs(x + 0.3)))
    """,
}


def test_optimizers_and_default_max_trials(g, proj):
    write(proj, {**QUAD_OP, "guild.yml": """
        search:
          main: quad
          flags-import: all
          default-max-trials: 3
          objective:
            maximize: acc
          optimizers:
            gp-1:
              algorithm: gp
              random-starts: 2
            quick:
              algorithm: random
              default: yes
    """})
    # --optimize: the op's default optimizer, and its default number of trials.
    r = run(g, proj, "search", "x=[-2.0:2.0]", "--optimize")
    assert r.stderr.count("Running trial ") == 3
    # -o NAME: a configured optimizer with its flags; the op's objective.
    r = g.ctl("run", "search", "x=[-2.0:2.0]", "-o", "gp-1", cwd=proj, input="\n")
    assert "with 'skopt:gp' optimizer (max 3 trials, maximize acc)" in r.stdout
    assert "  random-starts: 2" in r.stdout
    assert r.stderr.count("Random start for optimization") == 2
    assert r.stderr.count("Running trial ") == 3
    assert "completed: acc=" in r.stderr
    # --max-trials wins over default-max-trials.
    r = run(g, proj, "search", "x=[-2.0:2.0]", "-o", "gp-1", "--max-trials", "4")
    assert r.stderr.count("Running trial ") == 4


def test_single_optimizer_is_the_one_optimize_uses(g, proj):
    write(proj, {**QUAD_OP, "guild.yml": """
        search:
          main: quad
          flags-import: all
          optimizer:
            algorithm: forest
            random-starts: 1
    """})
    r = g.ctl("run", "search", "x=[-2.0:2.0]", "--optimize", "--max-trials", "2", cwd=proj, input="\n")
    assert "with 'skopt:forest' optimizer (max 2 trials, minimize loss)" in r.stdout
    assert "  random-starts: 1" in r.stdout and r.stderr.count("Running trial ") == 2


def test_a_pipeline_goes_on_after_the_daemon_is_killed(tmp_path, project):
    (project / "guild.yml").write_text(
        "slow:\n  main: slow\n  flags-import: all\n"
        "pipe:\n  steps:\n    - slow steps=15 delay=0.1\n    - slow steps=1 delay=0\n"
    )
    g = Guild(tmp_path / "home-pipe", project)
    g.start_daemon()
    try:
        run_id = g.ctl("run", "pipe", "--background", "-y").stdout.split(" as ")[1].split()[0]
        wait_for(lambda: "step: 3" in (g.home / "runs" / run_id / ".guild" / "output").read_text(), what="step 1 running")
        g.kill_daemon(signal.SIGKILL)
        g.start_daemon()
        g.wait_status(run_id, "completed", timeout=60)
        pdir = g.home / "runs" / run_id
        assert g.info((pdir / "slow").resolve().name)["status"] == "completed"
        assert len([r for r in g.runs() if r["operation"] == "slow"]) == 2
        output = (pdir / ".guild" / "output").read_text()
        assert output.count("step: 14") == 1 and output.count("running slow") == 2
    finally:
        g.stop()
