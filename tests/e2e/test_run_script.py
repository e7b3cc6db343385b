"""A script run end to end: real guildd, real guildctl, real processes."""

import json
import os
import pathlib
import subprocess

import pytest
import yaml



def attrs(run_dir):
    adir = pathlib.Path(run_dir) / ".guild" / "attrs"
    return {p.name: yaml.safe_load(p.read_text()) for p in adir.iterdir()}


def test_get_started_run_is_recorded_as_guild_does(guild):
    r = guild.ctl("run", "train.py", "x=0.2", "-y")
    assert r.stdout.startswith("loss: ")
    info = guild.info()
    assert info["status"] == "completed"
    assert info["exit_status"] == 0
    assert info["flags"] == {"noise": 0.1, "x": 0.2}
    assert info["label"] == "noise=0.1 x=0.2"
    assert len(info["id"]) == 32 and info["run_dir"].endswith(info["id"])
    a = attrs(info["run_dir"])
    for name in ("id", "initialized", "flags", "cmd", "env", "exit_status", "started", "stopped",
                 "label", "host", "user", "platform", "sourcecode_digest", "op"):
        assert name in a, name
    assert a["started"] <= a["stopped"] and a["stopped"] - a["started"] < 60_000_000
    gdir = pathlib.Path(info["run_dir"]) / ".guild"
    assert (gdir / "opref").read_text().startswith(f"script:{guild.project} '' '' train.py")
    assert (gdir / "output").read_text() == r.stdout
    # The source snapshot sits in the run dir's root, listed in the manifest (Guild 0.9).
    assert (pathlib.Path(info["run_dir"]) / "train.py").read_text() == (guild.project / "train.py").read_text()
    assert "s train.py " in (gdir / "manifest").read_text()
    # The printed loss is an output scalar, in the index and in a TF event file.
    printed = float(r.stdout.split()[1])
    assert abs(info["scalars"]["loss"][0] - printed) < 1e-5
    assert list(gdir.glob("events.out.tfevents.*"))


def test_run_environment_and_working_dir(guild):
    (guild.project / "env.py").write_text(
        "import os, json\n"
        "print(json.dumps({k: os.environ.get(k) for k in "
        "['RUN_DIR', 'RUN_ID', 'GUILD_HOME', 'GUILD_OP', 'CMD_DIR', 'FLAG_A']} | {'cwd': os.getcwd()}))\n"
        "a = 1\n"
    )
    r = guild.ctl("run", "env.py", "a=2", "-y")
    seen = json.loads(r.stdout)
    info = guild.info()
    assert seen["RUN_DIR"] == info["run_dir"] == seen["cwd"]
    assert seen["RUN_ID"] == info["id"]
    assert seen["GUILD_HOME"] == str(guild.home)
    assert seen["GUILD_OP"] == str(guild.project / "env.py")
    assert seen["CMD_DIR"] == str(guild.project)
    assert seen["FLAG_A"] == "2"
    # Its recorded environment may hold tokens: only its owner reads it; the rest stays readable.
    attrs = pathlib.Path(info["run_dir"]) / ".guild" / "attrs"
    assert (attrs / "env").stat().st_mode & 0o077 == 0
    assert (attrs / "cmd").stat().st_mode & 0o044 == 0o044


def test_argparse_flags_are_passed_as_options(guild):
    (guild.project / "args.py").write_text(
        "import argparse\n"
        "p = argparse.ArgumentParser()\n"
        "p.add_argument('--lr', type=float, default=0.1)\n"
        "p.add_argument('--epochs', type=int, default=2)\n"
        "p.add_argument('--fast', action='store_true')\n"
        "a = p.parse_args()\n"
        "print(a.lr, a.epochs, a.fast)\n"
    )
    r = guild.ctl("run", "args.py", "lr=1e-3", "fast=yes", "-y")
    assert r.stdout.split() == ["0.001", "2", "True"]
    assert guild.info()["flags"] == {"lr": 0.001, "epochs": 2, "fast": True}


def test_stdout_and_stderr_are_captured_in_order(guild):
    (guild.project / "both.py").write_text(
        "import sys\n"
        "for i in range(3):\n"
        "    print('out', i, flush=True)\n"
        "    print('err', i, file=sys.stderr, flush=True)\n"
        "    import time; time.sleep(0.05)\n"
    )
    guild.ctl("run", "both.py", "-y")
    out = (pathlib.Path(guild.info()["run_dir"]) / ".guild" / "output").read_text().splitlines()
    assert out == ["out 0", "err 0", "out 1", "err 1", "out 2", "err 2"]


def test_exit_code_of_the_script_is_the_exit_code(guild):
    (guild.project / "fail.py").write_text("import sys\nprint('bye')\nsys.exit(3)\n")
    r = guild.ctl("run", "fail.py", "-y", check=False)
    assert r.returncode == 3
    assert guild.info()["status"] == "error"
    assert guild.info()["exit_status"] == 3


def test_script_crashing_at_import_is_an_error_with_a_clean_traceback(guild):
    (guild.project / "crash.py").write_text("import no_such_module_here\n")
    r = guild.ctl("run", "crash.py", "-y", check=False)
    assert r.returncode == 1
    assert "ModuleNotFoundError" in r.stderr + r.stdout
    assert "opmain.py" not in r.stderr + r.stdout
    assert guild.info()["status"] == "error"


def test_script_killed_by_a_signal_is_terminated(guild):
    (guild.project / "killed.py").write_text("import os, signal\nprint('dying', flush=True)\nos.kill(os.getpid(), signal.SIGKILL)\n")
    r = guild.ctl("run", "killed.py", "-y", check=False)
    assert r.returncode == 128 + 9
    info = guild.info()
    assert info["status"] == "terminated" and info["exit_status"] == -9


def test_unknown_flag_is_refused_before_anything_runs(guild):
    r = guild.ctl("run", "train.py", "nope=1", "-y", check=False)
    assert r.returncode == 1
    assert "unsupported flag 'nope'" in r.stderr
    assert "Traceback" not in r.stderr
    assert guild.run_dirs() == []


def test_bad_flag_value_is_refused_before_anything_runs(guild):
    r = guild.ctl("run", "train.py", "x=abc", "-y", check=False)
    assert r.returncode == 1
    assert "'x'" in r.stderr or " x" in r.stderr
    assert guild.run_dirs() == []


def test_force_flags_accepts_unknown_flags(guild):
    guild.ctl("run", "train.py", "extra=5", "--force-flags", "-y")
    assert guild.info()["flags"]["extra"] == 5


def test_nonexistent_script_is_a_clear_error(guild):
    r = guild.ctl("run", "missing.py", "-y", check=False)
    assert r.returncode == 1
    assert r.stderr.startswith("guildctl: cannot find operation missing.py")
    assert guild.run_dirs() == []


def test_confirmation_prompt_lists_flags_and_can_decline(guild):
    r = guild.ctl("run", "train.py", "x=0.3", input="n\n", check=False)
    assert "You are about to run train.py\n  noise: 0.1\n  x: 0.3\nContinue? (Y/n)" in r.stdout
    assert r.returncode == 1
    assert guild.run_dirs() == []
    r = guild.ctl("run", "train.py", input="\n")
    assert "loss:" in r.stdout


def test_print_cmd_runs_nothing(guild):
    r = guild.ctl("run", "train.py", "x=0.5", "--print-cmd")
    assert "train.py --noise 0.1 --x 0.5" in r.stdout
    assert guild.run_dirs() == []


def test_labels_and_tags(guild):
    guild.ctl("run", "train.py", "-t", "best", "-y")
    assert guild.info()["label"] == "best noise=0.1 x=0.1"
    guild.ctl("run", "train.py", "x=0.4", "--label", "try ${x}", "-y")
    assert guild.info()["label"] == "try 0.4"


def test_step_lines_set_the_step_of_scalars(guild):
    guild.ctl("run", "slow.py", "delay=0", "steps=5", "-y")
    info = guild.info()
    assert info["scalars"]["loss"] == [pytest.approx(0.2), 4]  # stored as float32, as Guild does
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(pathlib.Path(info["run_dir"]) / ".guild"))
    acc.Reload()
    assert [(e.step, round(e.value, 4)) for e in acc.Scalars("loss")] == [
        (0, 1.0), (1, 0.5), (2, 0.3333), (3, 0.25), (4, 0.2)
    ]


def test_source_snapshot_skips_virtualenvs_and_binaries(guild):
    venv = guild.project / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "activate").write_text("# venv\n")
    (venv / "lib.py").write_text("x = 1\n")
    (guild.project / "data.bin").write_bytes(b"\0\1\2" * 100)
    (guild.project / "helper.py").write_text("VALUE = 7\n")
    guild.ctl("run", "train.py", "-y")
    run_dir = pathlib.Path(guild.info()["run_dir"])
    assert (run_dir / "helper.py").exists()
    assert not (run_dir / "venv").exists()
    assert not (run_dir / "data.bin").exists()


def test_guild_home_from_active_virtualenv(tmp_path, project):
    venv = tmp_path / "venv"
    venv.mkdir()
    env = {**os.environ, "VIRTUAL_ENV": str(venv)}
    env.pop("GUILD_HOME", None)
    r = subprocess.run(["guildctl", "run", "train.py", "-y"], cwd=project, env=env, capture_output=True, text=True, timeout=60)
    try:
        assert r.returncode == 0, r.stderr
        assert "starting guildd" in r.stderr
        assert len(list((venv / ".guild" / "runs").iterdir())) == 1
    finally:
        subprocess.run(["guildctl", "daemon", "stop"], env=env, capture_output=True, timeout=30)
