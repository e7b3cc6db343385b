"""The example projects under examples/ (the README points users at them), copied to a temp
dir and run against a real guildd, as a user would try them."""

import json
import pathlib
import shutil

import pytest

from tests.e2e.conftest import serve_module

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def g(tmp_path_factory):
    base = tmp_path_factory.mktemp("examples")
    shutil.copytree(EXAMPLES, base / "examples")
    yield from serve_module(tmp_path_factory, "examples-home", base / "examples")


def ex(g, name):
    return g.project / name


def run(g, name, *args, check=True):
    return g.ctl("run", *args, "-y", cwd=ex(g, name), check=check)


def latest(g, name, *filters):
    return json.loads(g.ctl("runs", "info", *filters, "--json", cwd=ex(g, name)).stdout)


def test_readme_points_to_the_examples():
    readme = (EXAMPLES.parent / "README.md").read_text()
    for name in ("hello", "pipeline", "flags"):
        assert (EXAMPLES / name / "guild.yml").is_file()
        assert f"`{name}`" in readme


def test_hello(g):
    assert g.ctl("ops", cwd=ex(g, "hello")).stdout.split(None, 1) == ["hello", "Say hello to someone\n"]
    assert run(g, "hello").stdout == "Hello World!\n"  # the only operation is the default
    assert run(g, "hello", "hello", "name=Bob").stdout == "Hello Bob!\n"
    info = latest(g, "hello")
    assert (info["operation"], info["status"], info["flags"], info["label"]) == (
        "hello", "completed", {"name": "Bob"}, "name=Bob")
    assert (pathlib.Path(info["run_dir"]) / "hello.py").is_file()
    help_text = g.ctl("run", "hello", "--help-op", cwd=ex(g, "hello")).stdout
    assert "Say hello to someone" in help_text
    assert "name  Who to greet (default is World)" in help_text


def test_pipeline_example(g):
    before = {d.name for d in g.run_dirs()}
    ops = g.ctl("ops", cwd=ex(g, "pipeline")).stdout.splitlines()
    assert [line.split()[0] for line in ops] == ["pipeline", "prepare", "train"]
    # train needs a completed prepare run.
    r = run(g, "pipeline", "train", check=False)
    assert r.returncode == 1 and "prepare" in r.stderr
    assert latest(g, "pipeline")["status"] == "error"

    assert run(g, "pipeline", "prepare", "rows=10").stdout == "wrote 10 rows to data.csv\n"
    first = latest(g, "pipeline")
    assert (pathlib.Path(first["run_dir"]) / "data.csv").read_text().count("\n") == 11
    out = run(g, "pipeline", "train").stdout
    assert "epoch 2 loss=0.7290 on 10 rows" in out
    info = json.loads(g.ctl("runs", "info", "--deps", "--json", cwd=ex(g, "pipeline")).stdout)
    assert info["flags"] == {"epochs": 3, "lr": 0.1, "operation:prepare": first["id"]}
    assert info["dependencies"]["operation:prepare"]["operation:prepare"]["config"] == first["id"]
    assert info["scalars"]["loss"][0] == pytest.approx(0.729)
    assert info["scalars"]["loss"][1] == 2  # `epoch N` sets the step

    run(g, "pipeline", "prepare", "rows=20")
    assert "on 20 rows" in run(g, "pipeline", "train").stdout
    assert "on 10 rows" in run(g, "pipeline", "train", f"prepare={first['id'][:8]}").stdout

    out = run(g, "pipeline", "pipeline", "rows=7", "lr=0.5").stdout
    assert out.index("wrote 7 rows") < out.index("epoch 2 loss=0.1250 on 7 rows")
    parent = latest(g, "pipeline", "-o", "pipeline")
    assert (parent["status"], parent["flags"]) == ("completed", {"lr": 0.5, "rows": 7})
    pdir = pathlib.Path(parent["run_dir"])
    prep = g.info((pdir / "prepare").resolve().name)
    train = g.info((pdir / "train").resolve().name)
    assert (prep["status"], prep["flags"]) == ("completed", {"rows": 7})
    assert train["status"] == "completed"
    assert train["flags"] == {"epochs": 3, "lr": 0.5, "operation:prepare": prep["id"]}  # the step before it
    new = [d.name for d in g.run_dirs() if d.name not in before]
    assert len(new) == 9


def test_flags_example(g):
    help_text = g.ctl("run", "train", "--help-op", cwd=ex(g, "flags")).stdout
    assert "data        Data set name (required)" in help_text
    assert "fast  SGD with a large learning rate" in help_text
    before = set(g.run_dirs())
    r = run(g, "flags", "train", check=False)
    assert r.returncode == 1 and "'data'" in r.stderr
    r = run(g, "flags", "train", "data=mnist", "lr=2", check=False)
    assert r.returncode == 1 and "'lr'" in r.stderr and "max" in r.stderr
    r = run(g, "flags", "train", "data=mnist", "optimizer=adamw", check=False)
    assert r.returncode == 1 and "'optimizer'" in r.stderr
    assert set(g.run_dirs()) == before

    out = run(g, "flags", "train", "data=mnist").stdout
    assert out == ("{'lr': 0.01, 'epochs': 5, 'optimizer': 'adam', 'data': 'mnist', "
                   "'verbose': False, 'batch_size': 32}\n")
    out = run(g, "flags", "train", "data=mnist", "optimizer=fast", "verbose=yes", "batch-size=8").stdout
    assert out == ("{'lr': 0.5, 'epochs': 5, 'optimizer': 'fast', 'data': 'mnist', "
                   "'verbose': True, 'batch_size': 8}\n")
    assert latest(g, "flags")["flags"]["lr"] == 0.5

    out = run(g, "flags", "shell", "greeting=yo", "count=5").stdout
    assert out == "greeting arg: yo\nFLAG_GREETING=yo FLAG_COUNT=5\n"
    assert g.ctl("run", "shell", "--print-cmd", cwd=ex(g, "flags")).stdout == "bash show.sh hi\n"
