"""The staged-run queue and GPU scheduler end to end: a real guildd with simulated GPUs,
runs staged and started with guildctl, each run reporting the GPUs it saw."""

import json
import os
import pwd
import signal

import pytest

from tests.conftest import wait_for

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
def start_guild(simulated_daemons, project):
    """Starts a daemon whose GPUs are simulated by GUILD_SIMULATED_GPUS=setting."""
    (project / "gpujob.py").write_text(GPUJOB)
    return simulated_daemons


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
    guild.ctl("queue", "start")
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
    guild.ctl("queue", "start")
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
    guild.ctl("queue", "start")
    _wait_ended(guild, ids)
    a, b = (_seen(guild, i) for i in ids)
    assert a["cvd"] == b["cvd"] == "0"
    assert a["start"] < b["end"] and b["start"] < a["end"]  # they ran side by side


OFF = "queue processing is off ('guildctl queue start')"


def test_queue_priority_cancel_and_restart_while_processing_is_off(start_guild, tmp_path):
    guild = start_guild("1x80G")
    ids = [_staged_id(guild.ctl("run", "gpujob.py", f"sleep=0.{i + 1}", "--gpus", "1", "--stage", "-y")) for i in range(4)]
    q = _queue(guild)
    assert q["paused"] is True  # a fresh daemon starts with processing off, as Guild does
    assert [e["run"]["id"] for e in q["entries"]] == ids
    assert all(e["reason"] == OFF for e in q["entries"])
    guild.ctl("queue", "priority", ids[2], "10")
    r = guild.ctl("queue", "cancel", ids[1])
    assert "Cancelled run " + ids[1][:8] in r.stdout
    assert guild.info(ids[1])["status"] == "terminated"
    assert [e["run"]["id"] for e in _queue(guild)["entries"]] == [ids[2], ids[0], ids[3]]
    # The queue survives a daemon killed outright, in order, processing still off.
    guild.kill_daemon(signal.SIGKILL)
    guild = start_guild("1x80G", home=guild.home)
    q = _queue(guild)
    assert q["paused"] is True
    assert [e["run"]["id"] for e in q["entries"]] == [ids[2], ids[0], ids[3]]
    assert [e["options"].get("priority", 0) for e in q["entries"]] == [10, 0, 0]
    guild.ctl("queue", "start")
    _wait_ended(guild, [ids[0], ids[2], ids[3]])
    starts = [_seen(guild, i)["start"] for i in (ids[2], ids[0], ids[3])]
    assert starts == sorted(starts)  # priority first, then submission order
    assert guild.info(ids[1])["status"] == "terminated"


def test_start_runs_a_staged_run_while_processing_is_off(start_guild):
    guild = start_guild("2x80G")
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
    guild.ctl("queue", "start")
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


def test_guild_queue_op_run_once_runs_staged_runs_one_at_a_time_and_waits(start_guild):
    guild = start_guild("4x80G")
    ids = [_staged_id(guild.ctl("run", "gpujob.py", "sleep=0.5", "--stage", "-y")) for _ in range(3)]
    r = guild.ctl("run", "queue", "run-once=yes", "-y")
    assert r.returncode == 0, r.stderr
    # It returned once they had ended, and ran them one at a time, in order (as Guild's queue).
    assert [guild.info(i)["status"] for i in ids] == ["completed"] * 3
    seen = [_seen(guild, i) for i in ids]
    assert seen[0]["end"] <= seen[1]["start"] and seen[1]["end"] <= seen[2]["start"]
    assert _queue(guild)["paused"] is True  # run-once switched processing off when done
    later = _staged_id(guild.ctl("run", "gpujob.py", "--stage", "-y"))
    assert guild.info(later)["status"] == "staged"
    r = guild.ctl("run", "queue", "nope=1", "-y", check=False)
    assert r.returncode != 0 and "unsupported flag 'nope'" in r.stderr


PIPELINE_YML = """\
job:
  main: gpujob
  flags-import: all
two:
  flags:
    sleep: 0.3
  steps:
    - job sleep=${sleep} -l first
    - job sleep=${sleep} -l second
"""


def test_staged_pipelines_start_with_start_and_queue_run_once_one_at_a_time(start_guild, project):
    # Guild's queue starts staged pipelines (and batches), run-once one at a time, and
    # returns once they ended; `--start` starts one now.
    (project / "guild.yml").write_text(PIPELINE_YML)
    guild = start_guild("0")
    started = _staged_id(guild.ctl("run", "two", "--stage", "-y"))
    r = guild.ctl("run", "--start", started, "-y")
    assert r.returncode == 0 and r.stdout.count("GPUS ") == 2
    assert guild.info(started)["status"] == "completed"
    ids = [_staged_id(guild.ctl("run", "two", "--stage", "-y")) for _ in range(2)]
    r = guild.ctl("run", "queue", "run-once=yes", "-y")
    assert r.returncode == 0, r.stderr
    assert [guild.info(i)["status"] for i in ids] == ["completed"] * 2
    steps = [json.loads(line[5:]) for i in ids
             for line in (guild.home / "runs" / i / ".guild" / "output").read_text().splitlines()
             if line.startswith("GPUS ")]
    assert len(steps) == 4
    assert all(a["end"] <= b["start"] for a, b in zip(steps, steps[1:]))
    # Staged while processing is on (Guild's README: a queue running, then `--stage`): taken.
    guild.ctl("queue", "start")
    later = _staged_id(guild.ctl("run", "two", "sleep=0", "--stage", "-y"))
    _staged_id(guild.ctl("run", "gpujob.py", "sleep=[0,0.1]", "--stage", "-y"))
    _wait_ended(guild, [later])
    assert guild.info(later)["status"] == "completed"
    wait_for(lambda: guild.ctl("runs", "-Fo", "gpujob.py").stdout.count("completed") == 2,
             what="the staged batch's trials")


def test_run_once_leaves_staged_runs_whose_gpus_do_not_match(start_guild):
    guild = start_guild("2x80G")
    mismatched = _staged_id(guild.ctl("run", "gpujob.py", "--gpus", "0,", "--stage", "-y"))
    taken = _staged_id(guild.ctl("run", "gpujob.py", "--stage", "-y"))
    r = guild.ctl("queue", "start", "gpus=1", "run-once=yes")  # returns: nothing left for it to take
    assert "Staged runs have ended" in r.stdout
    assert _seen(guild, taken)["cvd"] == "1"
    assert guild.info(mismatched)["status"] == "staged" and _queue(guild)["paused"] is True


def test_run_once_in_the_background_goes_on_in_the_daemon(start_guild):
    guild = start_guild("0")
    ids = [_staged_id(guild.ctl("run", "gpujob.py", "sleep=0.5", "--stage", "-y")) for _ in range(2)]
    r = guild.ctl("queue", "start", "run-once=yes", "--background")
    assert r.stdout.startswith("Queue processing on (run-once): ")
    _wait_ended(guild, ids)
    assert _seen(guild, ids[0])["end"] <= _seen(guild, ids[1])["start"]
    wait_for(lambda: _queue(guild)["paused"], what="run-once processing to end")


def test_staged_runs_wait_for_queue_processing_which_survives_a_restart(start_guild):
    guild = start_guild("2x80G")
    first = _staged_id(guild.ctl("run", "gpujob.py", "--gpus", "1", "--stage", "-y"))
    assert guild.info(first)["status"] == "staged"
    text = guild.ctl("queue").stdout
    assert "Queue processing off" in text and "Staged runs wait for queue processing" in text
    assert guild.info(first)["status"] == "staged"  # nothing took it meanwhile
    r = guild.ctl("queue", "start")
    assert "Queue processing on: " in r.stdout
    guild.wait_status(first, "completed")
    # On in the daemon: across a daemon killed outright, until `queue stop`.
    guild.kill_daemon(signal.SIGKILL)
    guild = start_guild("2x80G", home=guild.home)
    second = _staged_id(guild.ctl("run", "gpujob.py", "--stage", "-y"))
    guild.wait_status(second, "completed")
    guild.ctl("queue", "stop")
    third = _staged_id(guild.ctl("run", "gpujob.py", "--stage", "-y"))
    assert "Queue processing off" in guild.ctl("queue").stdout
    assert guild.info(third)["status"] == "staged"


def test_a_settings_file_with_values_of_the_wrong_type_leaves_the_queue_working(start_guild, tmp_path):
    home = tmp_path / "guild-home"
    home.mkdir()
    settings = {"processing": {"on": True, "run_once": "yes"}, "queue_limits": [1], "user_gpu_cap": "x", "cpu_slots": "many"}
    (home / "guildd-queue.json").write_text(json.dumps(settings))
    guild = start_guild("1x80G", home=home)
    staged = _staged_id(guild.ctl("run", "gpujob.py", "--stage", "-y"))
    guild.wait_status(staged, "completed")  # processing's valid "on" was kept
    queue = _queue(guild)
    assert queue["user_gpu_cap"] == 0 and queue["queue_limits"] == {}
    log = (home / "guildd.log").read_text()
    assert "ignoring in" in log and "cpu_slots 'many'" in log and "processing.run_once 'yes'" in log
    guild.ctl("queue", "stop")  # the file is written whole again, with good values
    assert json.loads((home / "guildd-queue.json").read_text())["cpu_slots"] is None


def test_queue_flags_gpus_and_wait_for_running(start_guild, tmp_path):
    guild = start_guild("2x80G")
    go = tmp_path / "go"
    (guild.project / "wait.py").write_text(f"import os, time\nwhile not os.path.exists({str(go)!r}):\n    time.sleep(0.05)\n")
    other = guild.ctl("run", "wait.py", "--background", "-y").stdout.split(" as ")[1].split()[0]
    guild.wait_status(other, "running")
    staged = _staged_id(guild.ctl("run", "gpujob.py", "--stage", "-y"))
    named = _staged_id(guild.ctl("run", "gpujob.py", "--gpus", "0,", "--stage", "-y"))
    r = guild.ctl("queue", "start", "gpus=1", "wait-for-running=yes")
    assert "Queue processing on (wait-for-running, gpus=1)" in r.stdout
    reasons = {e["run"]["id"]: e["reason"] for e in _queue(guild)["entries"]}
    assert reasons[staged] == f"wait-for-running: run {other[:8]} running"
    go.write_text("")
    guild.wait_status(staged, "completed")
    assert _seen(guild, staged)["cvd"] == "1"  # no GPU request: the queue's GPUs, as Guild's queue
    reasons = {e["run"]["id"]: e["reason"] for e in _queue(guild)["entries"]}
    assert reasons[named] == "GPU spec mismatch: the run asks for GPUs 0, the queue has 1"


def test_a_shared_box_daemon_can_keep_processing_always_on(start_guild):
    guild = start_guild("1x80G", options=("--queue-always-on",))
    run_id = _staged_id(guild.ctl("run", "gpujob.py", "--stage", "-y"))
    guild.wait_status(run_id, "completed")
    r = guild.ctl("queue", "stop", check=False)
    assert r.returncode != 0 and "always on for this daemon" in r.stderr
    assert "Queue processing on (always on)" in guild.ctl("queue").stdout


def test_queue_shows_each_users_recent_gpu_use_which_survives_a_restart(start_guild):
    guild = start_guild("2x80G", options=("--fair-share-half-life", "2"))
    user = pwd.getpwuid(os.getuid()).pw_name
    holder = guild.ctl("run", "gpujob.py", "sleep=1", "--gpus", "2", "--background", "-y")
    holder_id = holder.stdout.split(" as ")[1].split()[0]
    guild.wait_status(holder_id, "running")
    # While it runs: the user holds 2 GPUs and their use grows.
    [line] = wait_for(lambda: [u for u in _queue(guild)["users"] if u["gpus_held"] == 2], what="the user's share")
    assert (line["user"], line["waiting"], line["cap"]) == (user, 0, 0)
    guild.wait_status(holder_id, "completed")
    q = _queue(guild)
    assert q["fair_share_half_life"] == 7200.0
    [line] = q["users"]
    assert (line["user"], line["gpus_held"], line["share"]) == (user, 0, 1.0)
    used = line["usage_gpu_seconds"]
    assert 2.0 <= used < 120.0  # 2 GPUs for a second or more (the run's start and end included)
    text = guild.ctl("queue").stdout
    assert "Fair share (half-life 2h" in text
    assert any(row.split()[:2] == [user, "0"] and "GPU-h" in row and "100%" in row for row in text.splitlines())
    # A daemon killed outright doesn't forget it.
    guild.kill_daemon(signal.SIGKILL)
    guild = start_guild("2x80G", home=guild.home, options=("--fair-share-half-life", "2"))
    [line] = _queue(guild)["users"]
    assert line["user"] == user and line["usage_gpu_seconds"] == pytest.approx(used, rel=0.01)


def test_run_start_follows_a_staged_run_like_run(start_guild):
    guild = start_guild("0")
    failing = _staged_id(guild.ctl("run", "gpujob.py", "fail=yes", "--stage", "-y"))
    r = guild.ctl("run", "--start", failing, "-y", check=False)
    assert r.returncode == 3 and "GPUS " in r.stdout  # its output streamed, the script's exit code
    background = _staged_id(guild.ctl("run", "gpujob.py", "sleep=1", "--stage", "-y"))
    r = guild.ctl("run", "--start", background, "--background", "-y")
    assert "started in background as " + background in r.stdout
    assert guild.info(background)["status"] in ("pending", "running")
    guild.wait_status(background, "completed")


def test_run_start_follows_a_run_the_queue_took_meanwhile(start_guild):
    guild = start_guild("0")
    run_id = _staged_id(guild.ctl("run", "gpujob.py", "sleep=3", "--stage", "-y"))
    guild.ctl("queue", "start")
    guild.wait_status(run_id, "running")
    r = guild.ctl("run", "--start", run_id, "-y")
    assert r.returncode == 0 and "GPUS " in r.stdout
    assert f"Run {run_id[:8]} was started by queue processing: following it" in r.stderr
    assert guild.info(run_id)["status"] == "completed"


@pytest.mark.parametrize(
    "args, message",
    [
        (("run", "--start", "ffffffff", "-y"), "ffffffff"),
        (("run", "--start", "{done}", "-y"), "is completed, not staged: --start starts a staged run"),
        (("queue", "start", "gpus=abc"), "invalid queue gpus=abc: expected GPU indices"),
        (("queue", "start", "gpus=7"), "queue gpus=7: there is no GPU 7"),
        (("queue", "start", "run-once=maybe"), "invalid queue run-once=maybe: expected yes or no"),
        (("run", "queue", "gpus=abc", "-y"), "invalid queue gpus=abc"),
    ],
)
def test_bad_starts_are_one_clear_line(start_guild, args, message):
    guild = start_guild("2x80G")
    done = guild.ctl("run", "gpujob.py", "sleep=0", "-y")
    done_id = guild.info("1")["id"]
    assert done.returncode == 0
    r = guild.ctl(*(a.format(done=done_id) for a in args), check=False)
    assert r.returncode != 0
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert _queue(guild)["paused"] is True  # nothing switched on
    assert guild.info(done_id)["status"] == "completed"


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


def test_gpu_requests_say_what_the_run_sees(start_guild):
    guild = start_guild("2x80G")
    guild.ctl("run", "gpujob.py", "sleep=0", "--gpus", "0", "-y")
    assert _seen(guild, guild.info("1")["id"])["cvd"] == ""  # --gpus 0 is no GPUs, as --no-gpus
    r = guild.ctl("run", "gpujob.py", "sleep=0", "-y")
    assert _seen(guild, guild.info("1")["id"])["cvd"] is None  # no request: every GPU, as in Guild
    assert "Running on GPU" not in r.stderr
    r = guild.ctl("run", "gpujob.py", "sleep=0", "--gpus", "1", "-y")
    assert _seen(guild, guild.info("1")["id"])["cvd"] == "0"
    assert "Running on GPU 0 (CUDA_VISIBLE_DEVICES=0)" in r.stderr  # which GPU `--gpus 1` got
    help_text = " ".join(guild.ctl("run", "--help").stdout.split())
    assert "--gpus N asks for N GPUs" in help_text and "--gpus 1, here" in help_text


USEGPU = """\
import os, pathlib, time
sim = ""
go = ""
def put(text):
    tmp = pathlib.Path(sim).with_name("gpus.tmp")
    tmp.write_text(text)
    os.replace(tmp, sim)
put("gpus: 1x80G\\nprocesses:\\n  - {gpu: 0, pid: %d, memory: 10G}\\n" % os.getpid())
while not os.path.exists(go):
    time.sleep(0.05)
put("gpus: 1x80G\\n")
"""


def test_a_run_without_a_gpu_request_holds_the_gpus_its_processes_use(start_guild, tmp_path):
    sim, go = tmp_path / "gpus.yml", tmp_path / "go"
    sim.write_text("gpus: 1x80G\n")
    guild = start_guild(sim)
    (guild.project / "usegpu.py").write_text(USEGPU)
    r = guild.ctl("run", "usegpu.py", f"sim={sim}", f"go={go}", "--background", "-y")
    user = r.stdout.split(" as ")[1].split()[0]
    wait_for(lambda: "run " + user[:8] in guild.ctl("gpus").stdout, what="the run's process on GPU 0")
    r = guild.ctl("run", "gpujob.py", "sleep=0", "--gpus", "0,", "--background", "-y")
    waiting = r.stdout.split(" as ")[1].split()[0]
    # The scheduler doesn't hand GPU 0 out as free: the run without a request uses it.
    assert f"GPU 0 has a foreign process: run {user[:8]} (no GPU request)" in r.stderr
    assert guild.info(waiting)["status"] == "pending"
    go.write_text("")
    guild.wait_status(waiting, "completed")
    assert guild.info(user)["status"] == "completed"
    assert _seen(guild, waiting)["cvd"] == "0"


def test_guild_file_op_asks_for_gpus(start_guild):
    guild = start_guild("4x80G")
    (guild.project / "guild.yml").write_text("train:\n  main: gpujob\n  flags-import: all\n  gpus: 2\n")
    r = guild.ctl("run", "train", "sleep=0", "-y")
    assert r.returncode == 0
    assert len(_seen(guild, guild.info("1")["id"])["cvd"].split(",")) == 2
    r = guild.ctl("run", "train", "sleep=0", "--gpus", "3,", "-y")  # the option wins
    assert _seen(guild, guild.info("1")["id"])["cvd"] == "3"
