"""Runs on a Ray cluster: the decisions (guildd.rayjobs), the wrapper's copy-back framing
(guildd.raywrap) and the follower's output filter (guildd.rayfollow.Output), as tables.
None of this needs Ray installed."""

import asyncio
import io
import os
import shlex
import subprocess
import sys
import tarfile

import pytest

from guild_common import errors
from guild_common.pb import guild_pb2 as pb
from guildd import convert, rayjobs, raywrap
from guildd.rayfollow import Output

RUN = "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d"


@pytest.mark.parametrize("text, expected", [
    ("", None),
    ("ray", ""),
    ("ray:127.0.0.1:8265", "http://127.0.0.1:8265"),
    ("ray:http://head:8265/", "http://head:8265"),
    ("ray:https://ray.example.com", "https://ray.example.com"),
])
def test_executor_values(text, expected):
    assert rayjobs.parse_executor(text) == expected


@pytest.mark.parametrize("text, says", [
    ("slurm", "unknown executor"),
    ("ray:", "no address"),
    ("ray:ray://head:10001", "bad Ray address"),
    ("ray:http://:8265", "bad Ray address"),
    ("ray:head:port", "bad Ray address"),
    ("ray:http://head:8265?x=1", "bad Ray address"),
])
def test_bad_executors_are_one_line(text, says):
    with pytest.raises(errors.InvalidArgument) as e:
        rayjobs.parse_executor(text)
    assert says in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("given, client_env, default, expected", [
    ("http://a:1", {"RAY_ADDRESS": "http://b:2"}, "http://c:3", "http://a:1"),  # named: that one
    ("", {"RAY_ADDRESS": "b:2"}, "http://c:3", "http://b:2"),  # the client's RAY_ADDRESS
    ("", {"RAY_ADDRESS": "auto"}, "http://c:3", "http://c:3"),  # `auto` is no address for the job API
    ("", {}, "c:3", "http://c:3"),  # the daemon's --ray-address
    ("", {}, "", rayjobs.DEFAULT_ADDRESS),  # as `ray job submit`: the local head's dashboard
])
def test_address_resolution(given, client_env, default, expected):
    assert rayjobs.resolve_address(given, client_env, default) == expected


def test_job_env_leaves_out_the_client_machines_own_variables():
    env = {
        "LR": "0.1", "RUN_ID": RUN, "PYTHONUNBUFFERED": "1", "WANDB_API_KEY": "k",
        "PATH": "/usr/bin", "HOME": "/root", "CUDA_VISIBLE_DEVICES": "0", "RAY_ADDRESS": "http://x:1",
        "SSH_AUTH_SOCK": "/tmp/s", "XDG_RUNTIME_DIR": "/run", "GUILD_RAY_GRACE": "5", "VIRTUAL_ENV": "/v",
    }
    assert rayjobs.job_env(env) == {"LR": "0.1", "RUN_ID": RUN, "PYTHONUNBUFFERED": "1", "WANDB_API_KEY": "k"}


M = 2**20


@pytest.mark.parametrize("request_, expected", [
    (pb.ResourceRequest(), {"entrypoint_num_cpus": 1.0}),  # nothing asked: one CPU, no memory
    (pb.ResourceRequest(gpus=2), {"entrypoint_num_cpus": 1.0, "entrypoint_num_gpus": 2.0}),
    (pb.ResourceRequest(devices=[0, 3]), {"entrypoint_num_cpus": 1.0, "entrypoint_num_gpus": 2.0}),  # Ray picks which
    (pb.ResourceRequest(cpus=2), {"entrypoint_num_cpus": 2.0}),
    (pb.ResourceRequest(cpus=0.5), {"entrypoint_num_cpus": 0.5}),  # fractional, as Ray's
    (pb.ResourceRequest(memory=100 * M), {"entrypoint_num_cpus": 1.0, "entrypoint_memory": 100 * M}),
    (pb.ResourceRequest(gpus=1, cpus=4, memory=2**30),
     {"entrypoint_num_cpus": 4.0, "entrypoint_num_gpus": 1.0, "entrypoint_memory": 2**30}),
])
def test_resource_mapping(request_, expected):
    resources = rayjobs.entrypoint_resources(request_)
    assert resources == expected
    assert all(isinstance(v, int) for k, v in resources.items() if k == "entrypoint_memory")  # Ray takes whole bytes


@pytest.mark.parametrize("request_, on_ray, says", [
    (pb.ResourceRequest(gpus=1), False, None),
    (pb.ResourceRequest(cpus=2, memory=M), True, None),
    (pb.ResourceRequest(cpus=2), False, rayjobs.NOT_ON_RAY),
    (pb.ResourceRequest(memory=M), False, rayjobs.NOT_ON_RAY),
    (pb.ResourceRequest(cpus=-1), True, "invalid --cpus -1: expected a positive number"),
    (pb.ResourceRequest(cpus=float("nan")), True, "invalid --cpus nan"),
    (pb.ResourceRequest(cpus=float("inf")), True, "invalid --cpus inf"),
    (pb.ResourceRequest(memory=-5), True, "invalid --memory -5: must be more than 0"),
])
def test_cpus_and_memory_from_any_client_are_checked(request_, on_ray, says):
    """The daemon's own check, for a request guildctl did not make (guildctl checks first)."""
    if says is None:
        rayjobs.check_request(request_, on_ray)
        return
    with pytest.raises(errors.InvalidArgument) as e:
        rayjobs.check_request(request_, on_ray)
    assert str(e.value).startswith(says) and "\n" not in str(e.value)


def test_a_local_run_asking_cpus_is_refused_before_anything_is_made():
    spec = pb.RunSpec(resources=pb.ResourceRequest(cpus=2))
    with pytest.raises(errors.InvalidArgument, match="the local queue places GPUs only"):
        asyncio.run(rayjobs.admit(spec, False, rayjobs.Settings()))


def test_a_restart_cannot_change_a_ray_runs_cpus_or_memory():
    with pytest.raises(errors.InvalidArgument, match="a restart keeps them"):
        convert.restart(pb.RestartRunRequest(run="x", resources=pb.ResourceRequest(cpus=2), set_resources=True))
    assert convert.restart(pb.RestartRunRequest(run="x", resources=pb.ResourceRequest(gpus=1), set_resources=True)).resources.gpus == 1


@pytest.mark.parametrize("previous, expected", [
    (None, f"guild-{RUN}"),
    (f"guild-{RUN}", f"guild-{RUN}-2"),
    (f"guild-{RUN}-2", f"guild-{RUN}-3"),
    ("guild-someoneelse", f"guild-{RUN}"),
])
def test_each_start_gets_its_own_submission_id(previous, expected):
    assert rayjobs.submission_id(RUN, previous) == expected


@pytest.mark.parametrize("status, code, expected", [
    ("PENDING", None, None),
    ("RUNNING", None, None),
    ("SUCCEEDED", 0, 0),  # completed
    ("FAILED", 3, 3),  # error, with the command's exit code
    ("FAILED", None, 1),  # error (the runtime env failed: no command ran)
    ("FAILED", -9, 1),
    ("STOPPED", None, -15),  # terminated, as Guild reads a signal
])
def test_job_states_to_exit_status(status, code, expected):
    assert rayjobs.exit_status(status, code) == expected


@pytest.mark.parametrize("status, started", [
    ("SUBMITTING", False),  # the follower has not submitted it yet
    ("PENDING", False),  # the cluster finds room: the run is pending
    ("RUNNING", True),  # the run is running from now
    ("SUCCEEDED", True),  # it ran, however briefly
    ("FAILED", False),  # may never have run (its runtime env failed): ends from pending
    ("STOPPED", False),
    ("UNREACHABLE", False),
    (None, False),  # no attr (yet), or one its owner may not read
    (7, False),  # a damaged attr
    (["RUNNING"], False),
])
def test_which_job_states_start_the_run(status, started):
    assert rayjobs.job_started(status) is started


@pytest.mark.parametrize("message, expected", [
    ("Job entrypoint command failed with exit code 3, last available logs (truncated to 20,000 chars):\nboom",
     "guildd: Ray job J failed: Job entrypoint command failed with exit code 3"),
    ("Failed to set up runtime environment.\ntrace", "guildd: Ray job J failed: Failed to set up runtime environment."),
    ("", "guildd: Ray job J failed: no reason given"),
])
def test_failure_line(message, expected):
    assert rayjobs.failure_line("J", message) == expected


def test_ray_runs_ask_nothing_of_the_local_queue():
    gpus = pb.ResourceRequest(gpus=2)
    assert rayjobs.local_request(pb.RunSpec(executor="ray:http://h:1", resources=gpus)) == pb.ResourceRequest()
    assert rayjobs.local_request(pb.RunSpec(resources=gpus)) == gpus


def test_a_shared_daemon_refuses_ray_unless_allowed():
    with pytest.raises(errors.PermissionDenied, match="--allow-ray"):
        rayjobs.check_identity(True, rayjobs.Settings())
    rayjobs.check_identity(True, rayjobs.Settings(allow_shared=True))
    rayjobs.check_identity(False, rayjobs.Settings())


@pytest.mark.parametrize("shared, address, allow, expected", [
    (False, "127.0.0.1:8265", False, "http://127.0.0.1:8265"),
    (False, "", False, ""),
    (False, "ray://head:10001", False, "bad Ray address"),
    (False, "", True, "--allow-ray needs --shared"),
])
def test_daemon_ray_options(shared, address, allow, expected):
    from guildd import main

    if expected.startswith("http") or not expected:
        assert main._options(False, shared, None, False, 24.0, 30.0, None, address, allow).ray_address == expected
    else:
        with pytest.raises(errors.InvalidArgument, match=expected):
            main._options(False, shared, None, False, 24.0, 30.0, None, address, allow)


def test_without_ray_installed_says_how_to_install_it(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    with pytest.raises(errors.FailedPrecondition) as e:
        rayjobs.check_installed()
    assert str(e.value) == "--executor ray needs Ray's job submission client: pip install -e '.[ray]' in guildd's checkout (the ray extra: ray[default])"


def test_unreachable_cluster_is_one_line():
    with pytest.raises(errors.FailedPrecondition) as e:
        rayjobs.check_reachable("http://127.0.0.1:1", timeout=2)
    assert "Ray cluster at http://127.0.0.1:1 is unreachable" in str(e.value) and "\n" not in str(e.value)


def _unframe(lines):
    unframer = rayjobs.Unframer()
    taken = [line for line in lines if not unframer.take(line)]
    return taken, unframer


@pytest.mark.parametrize("size", [0, 10, raywrap.LINE_CHARS * 3])
def test_copy_back_framing_round_trip(size):
    data = os.urandom(size)
    taken, unframer = _unframe(["out\n", *raywrap.frame(data), "after\n"])
    assert taken == ["out\n", "after\n"] and unframer.data() == data


@pytest.mark.parametrize("damage, says", [
    (lambda lines: lines[:-1], "ended before"),
    (lambda lines: [lines[0], lines[1][:-5] + "\n", *lines[2:]], "damaged"),
    (lambda lines: [lines[0].replace("begin 1", "begin 2"), *lines[1:]], "damaged"),
])
def test_damaged_copy_back_is_refused(damage, says):
    _, unframer = _unframe(damage(list(raywrap.frame(b"x" * 100))))
    with pytest.raises(ValueError, match=says):
        unframer.data()


def test_no_copy_back_is_none():
    assert _unframe(["a\n"])[1].data() is None


def test_pack_over_the_cap_is_one_plain_line(tmp_path):
    (tmp_path / "big.bin").write_bytes(os.urandom(5000))
    text = raywrap.pack_lines(["big.bin"], 1000, str(tmp_path))
    assert text.startswith("guildd: files not copied back: 1 files") and "cap of 1000 bytes" in text
    assert raywrap.MARK not in text
    assert raywrap.pack_lines([], 1000, str(tmp_path)) == ""


def test_wrapper_copy_mode_sends_what_the_command_wrote(tmp_path):
    """The entrypoint as Ray runs it, in a working dir that is not the run dir: the files the
    command wrote come back in marked lines, its own output as it was, and its exit code."""
    (tmp_path / "old.txt").write_text("snapshot")
    cmd = [sys.executable, "-c", "import os; open('new.txt','w').write('made'); os.makedirs('d'); "
                                 "open('d/x','w').write('x'); print('hi'); raise SystemExit(4)"]
    entry = rayjobs.entrypoint(cmd, "/nonexistent/run", "auto", 10**6)
    r = subprocess.run(entry, shell=True, cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 4
    lines = r.stdout.splitlines(keepends=True)
    assert lines[0] == raywrap.START + "\n"
    taken, unframer = _unframe(lines[1:])
    assert taken == ["hi\n"]
    with tarfile.open(fileobj=io.BytesIO(unframer.data())) as tar:
        assert sorted(tar.getnames()) == ["d/x", "new.txt"]


def test_wrapper_runs_in_the_run_dir_when_it_is_there(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    cmd = [sys.executable, "-c", "import os; print(os.getcwd()); open('f','w').write('1')"]
    r = subprocess.run(rayjobs.entrypoint(cmd, str(run_dir), "auto", 10**6), shell=True, cwd=tmp_path,
                       capture_output=True, text=True)
    assert r.stdout.splitlines()[1:] == [str(run_dir)] and (run_dir / "f").exists()


def test_follower_cmd_keeps_the_command_after_its_options():
    cmd = rayjobs.follower_cmd("/py", "http://h:1", "guild-x", "/r", {"entrypoint_num_cpus": 1.0}, ["python", "--address", "t.py"])
    assert cmd[:4] == ["/py", "-I", "-m", "guildd.rayfollow"] and cmd[-4:] == ["--", "python", "--address", "t.py"]
    assert shlex.split(shlex.join(cmd)) == cmd


@pytest.mark.parametrize("attrs, attaches", [
    ({"ray_submission_id": f"guild-{RUN}", "ray_address": "http://h:1", "cmd": ["python", "t.py"]}, True),
    ({"ray_submission_id": f"guild-{RUN}", "ray_address": "http://h:1", "cmd": ["python", "t.py"], "exit_status": 0}, False),
    ({"cmd": ["python", "t.py"]}, False),  # a local run
])
def test_a_run_whose_follower_is_gone_is_followed_again_only_when_on_ray_and_not_ended(tmp_path, attrs, attaches):
    from guild_common import rundir

    rundir.write_attrs(tmp_path, attrs)
    cmd = rayjobs.reattach_cmd(tmp_path)
    if not attaches:
        assert cmd is None
        return
    i = cmd.index("--")
    assert "--attach" in cmd[:i] and cmd[i + 1:] == ["python", "t.py"]
    assert cmd[cmd.index("--submission-id") + 1] == f"guild-{RUN}"


def _output(lines, skip=0):
    written = []
    out = Output(skip, written.append)
    for line in lines:
        out.feed(line)
    out.close()
    return out, b"".join(written).decode()


@pytest.mark.parametrize("chunks, skip, expected", [
    # Ray's lines before the wrapper's first are not the run's.
    (["Runtime env is setting up.\n", "Running entrypoint for job x: python -c ...\n", raywrap.START + "\n", "a\nb\n"], 0, "a\nb\n"),
    # Lines split across chunks, a last line without its newline.
    ([raywrap.START + "\nab", "c\nde", "f"], 0, "abc\ndef"),
    # Attached: the output has the first line already.
    ([raywrap.START + "\n", "a\n", "b\n"], 2, "b\n"),
    # Copy-back lines never reach the output.
    ([raywrap.START + "\n", "a\n", *raywrap.frame(b"zz"), "b\n"], 0, "a\nb\n"),
])
def test_output_filter(chunks, skip, expected):
    assert _output(chunks, skip)[1] == expected


def test_output_followed_again_writes_nothing_twice():
    written = []
    out = Output(0, written.append)
    out.feed(raywrap.START + "\na\nb")
    out.restart()  # the log broke off; followed again from its start
    out.feed("Runtime env is setting up.\n" + raywrap.START + "\na\nb\nc\n")
    out.close()
    assert b"".join(written).decode() == "a\nb\nc\n"
