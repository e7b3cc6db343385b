"""The staged-run queue and GPU scheduler end to end: a real guildd with simulated GPUs,
runs staged and started with guildctl, each run reporting the GPUs it saw."""

import json
import os
import signal

import pytest

from tests.conftest import wait_for
from tests.e2e.conftest import Guild

# Prints what GPUs the run sees, and when it ran.
GPUJOB = """\
import json, os, time
sleep = 0.3
fail = False
start = time.time()
time.sleep(sleep)
print("GPUS " + json.dumps({
    "cvd": os.environ.get("CUDA_VISIBLE_DEVICES"),
    "guild_gpus": os.environ.get("GUILD_GPUS"),
    "order": os.environ.get("CUDA_DEVICE_ORDER"),
    "start": start,
    "end": time.time(),
}))
if fail:
    raise SystemExit(3)
"""


@pytest.fixture
def start_guild(tmp_path, project):
    """Starts a daemon whose GPUs are simulated by GUILD_SIMULATED_GPUS=setting."""
    (project / "gpujob.py").write_text(GPUJOB)
    started = []

    def start(setting, home=None):
        g = Guild(home or tmp_path / "guild-home", project, extra_env={"GUILD_SIMULATED_GPUS": str(setting)})
        started.append(g)
        g.start_daemon()
        return g

    yield start
    for g in started:
        g.stop()


def _staged_id(result):
    return result.stdout.split(" staged as ")[1].split()[0]


def _seen(guild, run_id):
    """What the run printed about its GPUs."""
    text = (guild.home / "runs" / run_id / ".guild" / "output").read_text()
    line = next(line for line in text.splitlines() if line.startswith("GPUS "))
    return json.loads(line[5:])


def _queue(guild):
    return json.loads(guild.ctl("queue", "--json").stdout)


def _wait_ended(guild, ids, timeout=60):
    wait_for(
        lambda: all(guild.info(i)["status"] in ("completed", "error", "terminated") for i in ids),
        timeout=timeout,
        what="runs to end",
    )


def test_mixed_sizes_never_share_or_overcommit_gpus(start_guild):
    guild = start_guild("4x80G")
    sizes = [1, 2, 1, 4, 1, 2, 3, 1, 1, 2]
    ids = []
    for i, n in enumerate(sizes):
        r = guild.ctl("run", "gpujob.py", f"sleep={0.2 + 0.1 * (i % 3)}", "--gpus", str(n), "--stage", "-y")
        ids.append(_staged_id(r))
    _wait_ended(guild, ids)
    seen = {}
    for run_id, n in zip(ids, sizes):
        assert guild.info(run_id)["status"] == "completed"
        s = _seen(guild, run_id)
        devices = [int(d) for d in s["cvd"].split(",")]
        assert len(devices) == n and len(set(devices)) == n, s  # exactly the GPUs it asked for
        assert all(0 <= d < 4 for d in devices)
        assert s["guild_gpus"] == s["cvd"] and s["order"] == "PCI_BUS_ID"
        seen[run_id] = (devices, s["start"], s["end"])
    # Runs that overlapped in time never shared a GPU, and never used more than 4 at once.
    for a, (da, sa, ea) in seen.items():
        overlapping = [b for b, (db, sb, eb) in seen.items() if b != a and sb < ea and sa < eb]
        for b in overlapping:
            assert not set(da) & set(seen[b][0]), (a, b)
        moments = [sa] + [seen[b][1] for b in overlapping if seen[b][1] >= sa]
        for t in moments:
            in_use = sum(len(d) for d, s, e in seen.values() if s <= t < e)
            assert in_use <= 4


def test_foreign_process_keeps_new_runs_off_its_gpu(start_guild, tmp_path):
    gpus = tmp_path / "gpus.yml"
    gpus.write_text("gpus: 2x80G\nprocesses:\n  - {gpu: 0, pid: 999999, user: bob, memory: 10G}\n")
    guild = start_guild(gpus)
    first = _staged_id(guild.ctl("run", "gpujob.py", "sleep=5", "--gpus", "1", "--stage", "-y"))
    second = _staged_id(guild.ctl("run", "gpujob.py", "sleep=0.1", "--gpus", "1", "--stage", "-y"))
    guild.wait_status(first, "running")
    # GPU 0 is free of our runs but a foreign process holds it: the second run waits.
    entry = wait_for(lambda: [e for e in _queue(guild).get("entries", []) if e["run"]["id"] == second], what="queued")
    assert "needs 1 GPU, 0 free" in entry[0]["reason"]
    text = guild.ctl("queue").stdout
    assert second[:8] in text and "needs 1 GPU, 0 free" in text
    assert "run " + first[:8] in guild.ctl("gpus").stdout
    # The foreign process goes away: the second run starts on GPU 0 at once.
    tmp = gpus.with_name("gpus.tmp")
    tmp.write_text("gpus: 2x80G\n")
    os.replace(tmp, gpus)
    guild.wait_status(second, "completed", timeout=30)
    assert _seen(guild, second)["cvd"] == "0"
    guild.wait_status(first, "completed")
    assert _seen(guild, first)["cvd"] == "1"
    assert _seen(guild, second)["start"] < _seen(guild, first)["end"]  # it didn't wait for the first run


def test_memory_requests_share_a_gpu(start_guild):
    guild = start_guild("1x80G")
    ids = [
        _staged_id(guild.ctl("run", "gpujob.py", "sleep=1", "--gpu-memory", "30G", "--stage", "-y")) for _ in range(2)
    ]
    _wait_ended(guild, ids)
    a, b = (_seen(guild, i) for i in ids)
    assert a["cvd"] == b["cvd"] == "0"
    assert a["start"] < b["end"] and b["start"] < a["end"]  # they ran side by side


def test_queue_pause_priority_cancel_and_restart(start_guild, tmp_path):
    guild = start_guild("1x80G")
    guild.ctl("queue", "pause")
    ids = [_staged_id(guild.ctl("run", "gpujob.py", f"sleep=0.{i + 1}", "--gpus", "1", "--stage", "-y")) for i in range(4)]
    q = _queue(guild)
    assert q["paused"] is True
    assert [e["run"]["id"] for e in q["entries"]] == ids
    assert all(e["reason"] == "queue is paused" for e in q["entries"])
    guild.ctl("queue", "priority", ids[2], "10")
    r = guild.ctl("queue", "cancel", ids[1])
    assert "Cancelled run " + ids[1][:8] in r.stdout
    assert guild.info(ids[1])["status"] == "terminated"
    assert [e["run"]["id"] for e in _queue(guild)["entries"]] == [ids[2], ids[0], ids[3]]
    # The queue survives a daemon killed outright, in order, still paused.
    guild.kill_daemon(signal.SIGKILL)
    guild = start_guild("1x80G", home=guild.home)
    q = _queue(guild)
    assert q["paused"] is True
    assert [e["run"]["id"] for e in q["entries"]] == [ids[2], ids[0], ids[3]]
    assert [e["options"].get("priority", 0) for e in q["entries"]] == [10, 0, 0]
    guild.ctl("queue", "resume")
    _wait_ended(guild, [ids[0], ids[2], ids[3]])
    starts = [_seen(guild, i)["start"] for i in (ids[2], ids[0], ids[3])]
    assert starts == sorted(starts)  # priority first, then submission order
    assert guild.info(ids[1])["status"] == "terminated"


def test_start_runs_a_staged_run_ahead_of_a_paused_queue(start_guild):
    guild = start_guild("2x80G")
    guild.ctl("queue", "pause")
    waiting = _staged_id(guild.ctl("run", "gpujob.py", "--gpus", "1", "--stage", "-y"))
    chosen = _staged_id(guild.ctl("run", "gpujob.py", "--gpus", "0,", "--stage", "-y"))
    r = guild.ctl("run", "--start", chosen, "-y")
    assert r.returncode == 0 and "GPUS " in r.stdout
    assert _seen(guild, chosen)["cvd"] == "0"
    assert guild.info(waiting)["status"] == "staged"


def test_unstaged_run_waits_for_its_gpu_and_says_why(start_guild):
    guild = start_guild("1x80G")
    holder = guild.ctl("run", "gpujob.py", "sleep=2", "--gpus", "1", "--background", "-y")
    holder_id = holder.stdout.split(" as ")[1].split()[0]
    guild.wait_status(holder_id, "running")
    r = guild.ctl("run", "gpujob.py", "sleep=0.1", "--gpus", "1", "-y")
    assert r.returncode == 0
    assert "Waiting to start: needs 1 GPU, 0 free" in r.stderr
    assert "GPUS " in r.stdout
    assert _seen(guild, guild.info("1")["id"])["start"] >= _seen(guild, holder_id)["end"]


def test_after_runs_in_order_and_cancels_on_failure(start_guild):
    guild = start_guild("0")
    first = _staged_id(guild.ctl("run", "gpujob.py", "sleep=0.5", "--stage", "-y"))
    then = _staged_id(guild.ctl("run", "gpujob.py", "sleep=0.1", "--after", first[:8], "--stage", "-y"))
    _wait_ended(guild, [first, then])
    assert _seen(guild, then)["start"] >= _seen(guild, first)["end"]
    assert guild.info(then)["status"] == "completed"
    failing = _staged_id(guild.ctl("run", "gpujob.py", "fail=yes", "--stage", "-y"))
    dependent = _staged_id(guild.ctl("run", "gpujob.py", "--after", failing, "--stage", "-y"))
    _wait_ended(guild, [failing, dependent])
    assert guild.info(failing)["status"] == "error"
    assert guild.info(dependent)["status"] == "terminated"
    output = (guild.home / "runs" / dependent / ".guild" / "output").read_text()
    assert f"after {failing[:8]} ended with status error" in output


def test_guild_queue_op_drains_staged_runs(start_guild):
    guild = start_guild("0")
    guild.ctl("queue", "pause")
    ids = [_staged_id(guild.ctl("run", "gpujob.py", "sleep=0.1", "--stage", "-y")) for _ in range(3)]
    r = guild.ctl("run", "queue", "run-once=yes", "-y")
    assert r.returncode == 0, r.stderr
    assert all(guild.info(i)["status"] == "completed" for i in ids)
    r = guild.ctl("run", "queue", "nope=1", "-y", check=False)
    assert r.returncode != 0 and "unsupported flag 'nope'" in r.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (("--gpus", "9"), "--gpus 9: this box has 4 GPUs"),
        (("--gpus", "0,7"), "there is no GPU 7"),
        (("--gpu-memory", "200G"), "the largest GPU has 80.0 GiB"),
        (("--gpus", "-1"), "invalid --gpus '-1'"),
        (("--gpus", "two"), "invalid --gpus 'two'"),
        (("--gpu-memory", "lots"), "invalid --gpu-memory 'lots'"),
        (("--after", "ffffffff"), "--after ffffffff: no such run"),
        (("--priority", "high"), "'high' is not a valid integer"),
        (("--no-gpus", "--gpus", "1"), "--no-gpus cannot be used with --gpus"),
    ],
)
def test_bad_requests_are_refused_and_nothing_is_queued(start_guild, args, message):
    guild = start_guild("4x80G")
    r = guild.ctl("run", "gpujob.py", *args, "--stage", "-y", check=False)
    assert r.returncode != 0
    assert message in r.stderr
    assert "Traceback" not in r.stderr
    assert guild.run_dirs() == []
    assert _queue(guild).get("entries", []) == []


def test_no_gpus_hides_gpus_and_gpu_requests_fail_without_gpus(start_guild):
    guild = start_guild("0")
    r = guild.ctl("run", "gpujob.py", "sleep=0", "--no-gpus", "-y")
    assert r.returncode == 0
    assert _seen(guild, guild.info("1")["id"])["cvd"] == ""
    r = guild.ctl("run", "gpujob.py", "--gpus", "1", "-y", check=False)
    assert r.returncode != 0 and "this box has no GPUs" in r.stderr


def test_guild_file_op_asks_for_gpus(start_guild):
    guild = start_guild("4x80G")
    (guild.project / "guild.yml").write_text("train:\n  main: gpujob\n  flags-import: all\n  gpus: 2\n")
    r = guild.ctl("run", "train", "sleep=0", "-y")
    assert r.returncode == 0
    assert len(_seen(guild, guild.info("1")["id"])["cvd"].split(",")) == 2
    r = guild.ctl("run", "train", "sleep=0", "--gpus", "3,", "-y")  # the option wins
    assert _seen(guild, guild.info("1")["id"])["cvd"] == "3"
