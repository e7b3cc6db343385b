"""Dependencies as Guild 0.9 records them (issue 12): model resources, the flags that select
a dependency's source, config files whose flags are unset, and a run that fails on one. Each
test writes its own small project; one daemon and GUILD_HOME serve the module."""

import json
import pathlib

import pytest
import yaml

from tests.e2e.conftest import run, serve_module, write


@pytest.fixture(scope="module")
def g(tmp_path_factory):
    yield from serve_module(tmp_path_factory, "deps")


def latest(g, proj):
    return json.loads(g.ctl("runs", "info", "--json", cwd=proj).stdout)


def attr(run_dir, name):
    path = pathlib.Path(run_dir) / ".guild" / "attrs" / name
    return yaml.safe_load(path.read_text()) if path.exists() else None


def test_config_dependency_keeps_the_files_values_for_null_flags(g, proj):
    write(proj, {
        "config.yml": "batch-size: 100\nlr: 0.01\n",
        "show.py": "print(open('config.yml').read().replace(chr(10), ' '))\n",
        "guild.yml": """
            train:
              main: show
              default-flag-arg-skip: yes
              requires:
                - config: config.yml
              flags:
                lr: null
                batch-size: null
                dropout: null
        """,
    })
    assert run(g, proj, "train").stdout.splitlines()[-1].split() == ["batch-size:", "100", "lr:", "0.01"]
    assert run(g, proj, "train", "lr=0.5").stdout.splitlines()[-1].split() == ["batch-size:", "100", "lr:", "0.5"]
    assert latest(g, proj)["flags"] == {"batch-size": None, "dropout": None, "lr": 0.5}


def test_a_run_failing_on_a_dependency_has_no_exit_status(g, proj):
    # Guild 0.9 leaves exit_status unset for a run whose dependencies were not met (its
    # process never started); both read its status as error.
    write(proj, {"guild.yml": """
        needy:
          exec: echo should not run
          requires:
            - file: missing.txt
    """})
    r = run(g, proj, "needy", check=False)
    assert r.returncode == 1
    assert "dependency was not met" in r.stderr and "missing.txt" in r.stderr
    info = latest(g, proj)
    assert (info["status"], info["exit_status"]) == ("error", "")  # as Guild 0.9 shows it
    assert attr(info["run_dir"], "exit_status") is None
    assert g.ctl("runs", "--error", cwd=proj).stdout.split()[1] == "needy"
    assert json.loads(g.ctl("runs", "--json", cwd=proj).stdout)[0]["exit_status"] is None


def test_model_resources_are_found_by_reference(g, proj):
    write(proj, {
        "msg.txt": "hello\n",
        "data.txt": "data\n",
        "show.py": "import os; print(open('msg.txt').read().strip(), sorted(os.listdir('d')) if os.path.isdir('d') else '-')\n",
        "guild.yml": """
            - model: m
              resources:
                msg-file:
                  - file: msg.txt
                data:
                  path: d
                  sources:
                    - file: data.txt
              operations:
                hello:
                  main: show
                  requires: msg-file
                bad:
                  main: show
                  requires: nope
            - model: other
              operations:
                both:
                  main: show
                  requires:
                    - m:msg-file
                    - resource: m:data
        """,
    })
    assert run(g, proj, "m:hello").stdout.splitlines()[-1] == "hello -"
    info = latest(g, proj)
    deps = attr(info["run_dir"], "deps")
    assert list(deps) == ["msg-file"] and deps["msg-file"]["file:msg.txt"]["uri"] == "file:msg.txt"
    assert info["flags"] == {}  # a file resource is no flag
    assert run(g, proj, "other:both").stdout.splitlines()[-1] == "hello ['data.txt']"
    assert sorted(attr(latest(g, proj)["run_dir"], "deps")) == ["data", "msg-file"]
    before = g.ctl("runs", "--json", cwd=proj).stdout
    r = run(g, proj, "m:bad", check=False)
    assert r.returncode != 0
    assert r.stderr.strip().splitlines()[-1] == "guildctl: resource 'nope' required by operation 'm:bad' is not defined"
    assert g.ctl("runs", "--json", cwd=proj).stdout == before  # no run made


UPSTREAM = {
    "msg.txt": "hi\n",
    "up.py": "open('out.txt', 'w').write('up')\n",
    "down.py": "import os; print(sorted(f for f in os.listdir('.') if f.endswith('.txt')))\n",
    "guild.yml": """
        up:
          main: up
        down:
          main: down
          requires:
            - operation: up
        named:
          main: down
          requires:
            - operation: up
              name: upstream
            - file: msg.txt
    """,
}


def test_operation_dependency_records_its_flag_with_the_run_chosen(g, proj):
    # Guild 0.9: an unnamed operation dependency's flag is `operation:up` (`up=` sets it
    # too), a named one's is its name; file dependencies are no flags; the default label
    # shows the run chosen.
    write(proj, UPSTREAM)
    run(g, proj, "up")
    up = latest(g, proj)["id"]
    run(g, proj, "down")
    info = latest(g, proj)
    assert info["flags"] == {"operation:up": up}
    assert info["label"] == f"operation:up={up}"
    assert list(attr(info["run_dir"], "deps")) == ["operation:up"]
    run(g, proj, "down", f"up={up[:8]}")
    assert latest(g, proj)["flags"] == {"operation:up": up}
    run(g, proj, "named")
    info = latest(g, proj)
    assert info["flags"] == {"upstream": up}
    assert info["label"] == f"upstream={up}"
    assert g.ctl("runs", cwd=proj).stdout.splitlines()[0].endswith(f"completed  upstream={up}")
    assert sorted(attr(info["run_dir"], "deps")) == ["file:msg.txt", "upstream"]
    r = run(g, proj, "named", "up=x", check=False)
    assert r.returncode != 0 and "unsupported flag 'up'" in r.stderr


def test_flag_name_on_a_file_dependency_selects_the_file(g, proj):
    # Guild 0.9: `flag-name: src` is a flag whose default is the file; `src=file-2.txt`
    # puts only file-2.txt in the run (the default file is no source code either).
    write(proj, {
        "file-1.txt": "one\n",
        "file-2.txt": "two\n",
        "other.txt": "other\n",
        "show.py": "import glob; print(sorted(glob.glob('*.txt')))\n",
        "guild.yml": """
            pick:
              main: show
              requires:
                - file: file-1.txt
                  flag-name: src
        """,
    })
    assert run(g, proj, "pick").stdout.splitlines()[-1] == "['file-1.txt', 'file-2.txt', 'other.txt']"
    info = latest(g, proj)
    assert (info["flags"], info["label"]) == ({"src": "file-1.txt"}, "src=file-1.txt")
    assert run(g, proj, "pick", "src=file-2.txt").stdout.splitlines()[-1] == "['file-2.txt', 'other.txt']"
    info = latest(g, proj)
    assert (info["flags"], info["label"]) == ({"src": "file-2.txt"}, "src=file-2.txt")
    assert attr(info["run_dir"], "deps")["src"]["src"]["config"] == "file-2.txt"
    assert (pathlib.Path(info["run_dir"]) / "file-2.txt").read_text() == "two\n"
    assert "--src" not in info["command"]
