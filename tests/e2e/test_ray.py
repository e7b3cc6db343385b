"""Runs on a Ray cluster (`guildctl run --executor ray`), end to end: a real Ray head started
here (`ray start --head` in a temp dir, stopped after), the real daemon and guildctl, and the
run's record kept locally. Skipped when Ray isn't installed (`pip install '.[ray]'`)."""

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import grpc
import psutil
import pytest

from guild_common import home as homelib
from guild_common.pb import guild_pb2 as pb, guild_pb2_grpc

from tests.conftest import wait_for
from tests.e2e.conftest import Guild, serve_module

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None or shutil.which("ray", path=os.path.dirname(sys.executable)) is None,
    reason="Ray is not installed (pip install '.[ray]'): the Ray executor's tests need a real Ray head",
)

TRAIN = """
import os, time
x = 1.0
print("start", flush=True)
for i in range(3):
    print(f"loss: {x / (i + 1)}", flush=True)
    time.sleep(0.1)
open("model.txt", "w").write("weights")
"""

TICKS = """
import time
n = 5
pause = 0.5
for i in range(n):
    print("tick", i, flush=True)
    time.sleep(pause)
"""

TRIAL = """
import os, time
x = 1.0
log = ""
start = time.time()
time.sleep(1.5)
print(f"loss: {x}")
with open(log, "a") as f:
    f.write(f"{start} {time.time()}\\n")
"""


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Head:
    """A Ray head of the tests' own: its temp dir and ports name its processes, so that
    stopping it stops only them (never another Ray on the machine)."""

    def __init__(self):
        self.temp_dir = tempfile.mkdtemp(prefix="guildray", dir="/tmp")  # short: Ray's socket paths must fit
        self.port = _free_port()
        self.dashboard_port = _free_port()
        self.address = f"http://127.0.0.1:{self.dashboard_port}"
        ray = os.path.join(os.path.dirname(sys.executable), "ray")
        subprocess.run(
            [ray, "start", "--head", "--temp-dir", self.temp_dir, "--port", str(self.port), "--dashboard-host", "127.0.0.1",
             "--dashboard-port", str(self.dashboard_port), "--num-cpus", "4", "--num-gpus", "0", "--include-dashboard", "true",
             "--disable-usage-stats", *self._own_ports()],
            check=True, capture_output=True, timeout=120,
        )
        wait_for(self._answers, timeout=60, interval=0.2, what="the Ray head's job API")

    @staticmethod
    def _own_ports():
        """Free ports for what Ray would put on fixed ones, so that two heads can run at once."""
        options = ("--ray-client-server-port", "--dashboard-agent-listen-port", "--dashboard-agent-grpc-port",
                   "--runtime-env-agent-port", "--metrics-export-port", "--node-manager-port", "--object-manager-port")
        return [arg for option in options for arg in (option, str(_free_port()))]

    def _answers(self):
        try:
            with urllib.request.urlopen(f"{self.address}/api/jobs/", timeout=2):
                return True
        except OSError:
            return False

    def processes(self):
        marks = (self.temp_dir, f":{self.port}")
        found = {}
        for proc in psutil.process_iter(["pid", "cmdline"]):
            cmd = " ".join(proc.info["cmdline"] or [])
            if any(mark in cmd for mark in marks):
                found[proc.pid] = proc
                try:
                    found.update({c.pid: c for c in proc.children(recursive=True)})
                except psutil.Error:
                    pass
        return list(found.values())

    def stop(self):
        procs = self.processes()
        for proc in procs:
            try:
                proc.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(procs, timeout=10)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def _job_status(address, submission):
    from ray.job_submission import JobSubmissionClient

    return str(JobSubmissionClient(address).get_job_status(submission))


def _job_resources(address, submission):
    """What Ray itself reserved for a job's entrypoint: the resources of its supervisor actor
    (Ray's job details over HTTP leave entrypoint_num_cpus / entrypoint_memory out; the state
    API keeps the actor, ended too)."""
    from ray.util.state import list_actors

    actors = list_actors(address=address, filters=[("name", "=", f"_ray_internal_job_actor_{submission}")], detail=True)
    assert len(actors) == 1
    return actors[0].required_resources


@pytest.fixture(scope="module")
def head():
    h = Head()
    yield h
    h.stop()
    assert h.processes() == []


@pytest.fixture(scope="module")
def g(tmp_path_factory, head):
    yield from serve_module(tmp_path_factory, "ray")


@pytest.fixture
def proj(g, tmp_path):
    p = tmp_path / "proj"
    p.mkdir()
    for name, text in (("train.py", TRAIN), ("ticks.py", TICKS), ("trial.py", TRIAL)):
        (p / name).write_text(text.lstrip())
    return p


def _output(g, run_id):
    return (g.home / "runs" / run_id / ".guild" / "output").read_text()


def test_a_script_runs_on_ray_with_its_record_here(g, head, proj):
    # No address given: RAY_ADDRESS from guildctl's environment, as `ray job submit` finds it.
    r = g.ctl("run", "train.py", "x=2", "--executor", "ray", "-y", cwd=proj, env={**g.env, "RAY_ADDRESS": head.address})
    assert r.stdout.splitlines() == ["start", "loss: 2.0", "loss: 1.0", "loss: 0.6666666666666666"]
    info = g.info()
    assert info["status"] == "completed" and info["exit_status"] == 0
    assert info["started"] and info["stopped"]  # pending while the job waited, running once it ran
    assert info["ray_address"] == head.address and info["ray_status"] == "SUCCEEDED"
    assert info["ray_submission_id"] == f"guild-{info['id']}"
    assert _job_status(head.address, info["ray_submission_id"]) == "SUCCEEDED"
    assert info["scalars"]["loss"][0] == pytest.approx(2 / 3)
    assert (g.home / "runs" / info["id"] / "model.txt").read_text() == "weights"  # written in place
    assert "train.py" in g.ctl("compare", "--csv", "-").stdout


def test_a_failing_job_is_an_error_with_rays_reason(g, head, proj):
    (proj / "fail.py").write_text("print('about to fail')\nraise SystemExit(3)\n")
    r = g.ctl("run", "fail.py", "--executor", f"ray:{head.address}", "-y", cwd=proj, check=False)
    assert r.returncode == 3
    info = g.info()
    assert info["status"] == "error" and info["ray_status"] == "FAILED"
    out = _output(g, info["id"]).splitlines()
    assert out[0] == "about to fail"
    assert out[-1] == f"guildd: Ray job {info['ray_submission_id']} failed: Job entrypoint command failed with exit code 3"


def test_stop_stops_the_job(g, head, proj):
    r = g.ctl("run", "ticks.py", "n=200", "--executor", f"ray:{head.address}", "--background", "-y", cwd=proj)
    run_id = r.stdout.split(" as ")[1].split()[0]
    wait_for(lambda: "tick 1" in _output(g, run_id), timeout=60, what="the job's output")
    assert g.wait_status(run_id, "running")["started"]  # its job runs: so does the run
    g.ctl("stop", run_id[:8], "-y")
    info = g.wait_status(run_id, "terminated")
    assert info["ray_status"] == "STOPPED" and _job_status(head.address, info["ray_submission_id"]) == "STOPPED"


def test_a_job_waiting_for_room_is_pending_through_a_daemon_restart_until_stopped(g, head, proj):
    # The head has 4 CPUs: Ray keeps a job asking for 64 PENDING, and its run is pending.
    r = g.ctl("run", "ticks.py", "--executor", f"ray:{head.address}", "--cpus", "64", "--background", "-y", cwd=proj)
    run_id = r.stdout.split(" as ")[1].split()[0]
    wait_for(lambda: g.info(run_id)["ray_status"] == "PENDING", timeout=60, what="the job to be pending")
    listed = {x["id"]: x for x in g.runs()}[run_id]
    assert listed["status"] == "pending" and listed["started"] is None
    assert run_id[:8] in g.ctl("runs", "-Sp").stdout and run_id[:8] not in g.ctl("runs", "-Sr").stdout
    assert run_id[:8] not in g.ctl("queue").stdout  # it waits on the cluster, not in this box's queue
    g.kill_daemon(signal.SIGKILL)
    time.sleep(1)
    g.start_daemon()
    assert g.info(run_id)["status"] == "pending"  # taken back as it was
    g.ctl("stop", run_id[:8], "-y")
    info = g.wait_status(run_id, "terminated", timeout=30)
    assert not info["started"]
    # Ray's stop reaches a pending job only once it is placed: the run ends now, and says so.
    assert info["ray_status"] == "PENDING" == _job_status(head.address, info["ray_submission_id"])
    assert _output(g, run_id).splitlines()[-1] == (
        f"guildd: stopped while Ray job {info['ray_submission_id']} was pending: Ray stops the job once the cluster places it")


def test_copied_back_when_forced_with_the_cpus_and_memory_asked(g, head, proj):
    g.ctl("run", "train.py", "--executor", f"ray:{head.address}", "--cpus", "2", "--memory", "100M", "-y", cwd=proj,
          env={**g.env, "GUILD_RAY_FILES": "copy"})
    info = g.info()
    assert info["status"] == "completed"
    assert (g.home / "runs" / info["id"] / "model.txt").read_text() == "weights"
    assert "::guildd" not in _output(g, info["id"])
    assert _job_resources(head.address, info["ray_submission_id"]) == {"CPU": 2.0, "memory": 100.0 * 2**20}
    assert info["ray_resources"] == "2 CPUs, 100M memory"


def test_an_unreachable_cluster_makes_no_run(g, proj):
    before = len(g.run_dirs())
    r = g.ctl("run", "train.py", "--executor", f"ray:127.0.0.1:{_free_port()}", "-y", cwd=proj, check=False)
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1
    assert "is unreachable" in r.stderr and len(g.run_dirs()) == before
    r = g.ctl("run", "train.py", "--executor", "slurm", "-y", cwd=proj, check=False)
    assert r.returncode != 0 and r.stderr.strip() == "guildctl: --executor slurm: unknown executor (expected ray or ray:ADDRESS)"
    for args, says in ((["--cpus", "2"], "--cpus and --memory apply to runs on Ray (--executor ray): the local queue places GPUs only"),
                       (["--memory", "1G"], "--cpus and --memory apply to runs on Ray (--executor ray): the local queue places GPUs only"),
                       (["--cpus", "0", "--executor", "ray"], "invalid --cpus '0': expected a positive number of CPUs (2, 0.5)"),
                       (["--memory", "lots", "--executor", "ray"], "invalid --memory 'lots': expected a size such as 20G or 512M")):
        r = g.ctl("run", "train.py", *args, "-y", cwd=proj, check=False)
        assert r.returncode != 0 and r.stderr.strip() == f"guildctl: {says}"
    # Another client's request is refused the same way by the daemon.
    channel = grpc.insecure_channel(f"unix:{homelib.socket_connect_path(g.home)}")
    try:
        stub = guild_pb2_grpc.GuildStub(channel)
        for executor, resources, says in (("", pb.ResourceRequest(cpus=2), "--cpus and --memory apply to runs on Ray"),
                                          ("ray", pb.ResourceRequest(cpus=-1), "invalid --cpus -1"),
                                          ("ray", pb.ResourceRequest(memory=-1), "invalid --memory -1")):
            spec = pb.RunSpec(op_name="x.py", cmd_args=[sys.executable, "-c", "pass"], flags_json="{}", user_flags_json="{}",
                              python_exe=sys.executable, executor=executor, resources=resources)
            with pytest.raises(grpc.RpcError) as e:
                stub.StartRun(pb.StartRunRequest(spec=spec), timeout=30)
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and e.value.details().startswith(says)
            assert len(e.value.details().splitlines()) == 1
    finally:
        channel.close()
    assert len(g.run_dirs()) == before


def test_a_random_search_runs_its_trials_on_ray_two_at_once(g, head, proj, tmp_path):
    log = tmp_path / "intervals"
    r = g.ctl("run", "trial.py", "x=[0.0:1.0]", f"log={log}", "-o", "random", "--max-trials", "4", "--parallel", "2",
              "--executor", f"ray:{head.address}", "--cpus", "2", "--keep-batch", "-y", cwd=proj, timeout=120)
    assert r.returncode == 0
    trials = [x for x in g.runs() if x["operation"] == "trial.py"]
    assert len(trials) == 4 and all(t["status"] == "completed" for t in trials)
    infos = [g.info(t["id"]) for t in trials]
    assert all(i["ray_status"] == "SUCCEEDED" and i["ray_resources"] == "2 CPUs" for i in infos)  # the batch's --cpus
    spans = [tuple(map(float, line.split())) for line in log.read_text().splitlines()]
    assert len(spans) == 4
    most = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
    assert most <= 2 and most == 2  # in parallel, never more than --parallel


def test_the_run_goes_on_through_a_daemon_restart(g, head, proj):
    r = g.ctl("run", "ticks.py", "n=12", "pause=0.5", "--executor", f"ray:{head.address}", "--background", "-y", cwd=proj)
    run_id = r.stdout.split(" as ")[1].split()[0]
    wait_for(lambda: "tick 2" in _output(g, run_id), timeout=60, what="the job's output")
    g.kill_daemon(signal.SIGKILL)
    time.sleep(1)
    g.start_daemon()
    info = g.wait_status(run_id, "completed", timeout=60)
    assert info["ray_status"] == "SUCCEEDED"
    assert _output(g, run_id).splitlines() == [f"tick {i}" for i in range(12)]  # each line once


def test_a_restarted_daemon_follows_a_job_whose_local_processes_died(g, head, proj):
    """The daemon, the run's shim and its follower all killed (-9) while the job runs on (as
    when this machine goes down and the cluster does not): the next daemon starts a follower
    that attaches to the same job, and the run completes with its output whole, each line once."""
    r = g.ctl("run", "ticks.py", "n=12", "pause=0.5", "--executor", f"ray:{head.address}", "--background", "-y", cwd=proj)
    run_id = r.stdout.split(" as ")[1].split()[0]
    wait_for(lambda: "tick 2" in _output(g, run_id), timeout=60, what="the job's output")
    follower = next(p for p in psutil.process_iter(["cmdline"]) if "guildd.rayfollow" in (p.info["cmdline"] or [])
                    and run_id in " ".join(p.info["cmdline"]))
    shim = follower.parent()
    g.kill_daemon(signal.SIGKILL)
    for proc in (shim, follower):
        proc.kill()
    psutil.wait_procs([shim, follower], timeout=10)
    g.start_daemon()
    info = g.wait_status(run_id, "completed", timeout=60)
    assert info["ray_submission_id"] == f"guild-{run_id}" and info["ray_status"] == "SUCCEEDED"  # the same job
    assert _output(g, run_id).splitlines() == [f"tick {i}" for i in range(12)]


def test_losing_the_cluster_mid_run_is_an_error_with_the_output_kept(tmp_path, proj):
    lost = Head()
    g2 = Guild(tmp_path / "home", proj, extra_env={"GUILD_RAY_GRACE": "2"})
    g2.env.pop("RAY_ADDRESS", None)
    g2.start_daemon("--ray-address", lost.address.removeprefix("http://"))  # the cluster when the client names none
    try:
        r = g2.ctl("run", "ticks.py", "n=200", "--executor", "ray", "--background", "-y", cwd=proj)
        run_id = r.stdout.split(" as ")[1].split()[0]
        wait_for(lambda: "tick 1" in _output(g2, run_id), timeout=60, what="the job's output")
        lost.stop()
        info = g2.wait_status(run_id, "error", timeout=60)
        out = _output(g2, run_id).splitlines()
        assert out[:2] == ["tick 0", "tick 1"]
        assert out[-1].startswith(f"guildd: lost the Ray cluster at {lost.address}: ")
        assert info["ray_status"] == "UNREACHABLE" and info["ray_address"] == lost.address
    finally:
        g2.stop()
        lost.stop()
