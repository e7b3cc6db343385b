"""The log dir `guildctl tensorboard` shows (guildctl.tbmirror): the names and links it
decides for runs, as tables, and the dir and HParams files it keeps in step with them."""

import os
import time

import pytest
from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
from tensorboard.compat.proto import event_pb2
from tensorboard.plugins.hparams import api_pb2, metadata as hp_metadata

from guildctl import tbmirror
from guildctl.tbmirror import HPARAMS_FILE, TIME_FILE, Mirror, MirrorRun, link_name, plan, run_name

ID = "0123456789abcdef0123456789abcdef"
ID2 = "0123456789ffffff0123456789ffffff"  # the same short id as ID
STARTED = 1_700_000_000_000_000  # 2023-11-14 22:13:20 UTC


@pytest.fixture(autouse=True)
def utc(monkeypatch):
    """Start times are shown in local time; the tables are written in UTC."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def run(id=ID, op="train.py", started=STARTED, label="", run_dir="/runs/r", **kw):
    return MirrorRun(id=id, op=op, started_us=started, label=label, run_dir=run_dir, **kw)


@pytest.mark.parametrize("r, name", [
    (run(), "01234567 train.py 2023-11-14 22:13:20"),
    (run(label="lr=0.1 best"), "01234567 train.py 2023-11-14 22:13:20 lr=0.1 best"),
    (run(label="  two\nlines  "), "01234567 train.py 2023-11-14 22:13:20 two lines"),
    (run(label="a/b"), "01234567 train.py 2023-11-14 22:13:20 a_b"),
    (run(op="mnist:train", started=0), "01234567 mnist:train"),
    (run(label="x" * 300), "01234567 train.py 2023-11-14 22:13:20 ..." + "x" * (200 - 37 - 4)),
])
def test_run_names_are_short_id_op_started_and_label(r, name):
    assert run_name(r) == name
    assert len(run_name(r)) <= tbmirror.MAX_RUN_NAME_LEN


@pytest.mark.parametrize("rel, where", [
    (".guild/events.out.tfevents.1.host", "events.out.tfevents.1.host"),  # guildd's: root scalars
    ("events.out.tfevents.2.host", "events.out.tfevents.2.host"),
    ("val/events.out.tfevents.3.host", "val/events.out.tfevents.3.host"),
    ("logs/.guild/events.out.tfevents.4", "logs/.guild/events.out.tfevents.4"),
])
def test_event_files_keep_their_place_but_guildds_go_to_the_root(rel, where):
    assert link_name(rel) == where


@pytest.mark.parametrize("runs, mirror", [
    ([], {}),
    ([run(event_files=(".guild/events.out.tfevents.1.h", "val/events.out.tfevents.2.h"))],
     {"01234567 train.py 2023-11-14 22:13:20": {"events.out.tfevents.1.h": "/runs/r/.guild/events.out.tfevents.1.h",
                                                "val/events.out.tfevents.2.h": "/runs/r/val/events.out.tfevents.2.h"}}),
    # two runs, one name: the second is told apart by its full id
    ([run(), run(id=ID2, run_dir="/runs/s")],
     {"01234567 train.py 2023-11-14 22:13:20": {}, f"{ID2} train.py 2023-11-14 22:13:20": {}}),
    # files that would stand in for the HParams files, or clash with another link, stay out
    ([run(event_files=(HPARAMS_FILE, f".guild/{TIME_FILE}", ".guild/events.out.tfevents.1", "events.out.tfevents.1"))],
     {"01234567 train.py 2023-11-14 22:13:20": {"events.out.tfevents.1": "/runs/r/.guild/events.out.tfevents.1"}}),
])
def test_plan_gives_each_run_a_dir_of_links_to_its_event_files(runs, mirror):
    assert plan(runs) == mirror


@pytest.mark.parametrize("flags, values", [
    ({"lr": 0.1, "epochs": 3, "opt": "adam", "shuffle": True}, {"lr": 0.1, "epochs": 3, "opt": "adam", "shuffle": True}),
    ({"layers": [1, 2], "seed": None}, {"layers": "[1, 2]", "seed": "null"}),
])
def test_every_flag_is_a_hyperparameter(flags, values):
    assert tbmirror.hparam_values(flags) == values


@pytest.mark.parametrize("r, now, seconds", [
    (run(started=0), STARTED, None),
    (run(stopped_us=STARTED + 2_500_000), STARTED + 9_000_000, 2.5),
    (run(), STARTED + 4_000_000, 4.0),  # still running: its time so far
])
def test_run_time(r, now, seconds):
    assert tbmirror.run_seconds(r, now) == seconds


def test_find_event_files_walks_the_run_dir_without_following_links(tmp_path):
    for rel in (".guild/events.out.tfevents.1.h", ".guild/output", ".guild/attrs/events.out.tfevents.x",
                "events.out.tfevents.2.h", "logs/train/events.out.tfevents.3.h", "model.pt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    elsewhere = tmp_path.parent / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "events.out.tfevents.9.h").write_bytes(b"")
    (tmp_path / "linked").symlink_to(elsewhere)
    assert sorted(tbmirror.find_event_files(str(tmp_path))) == [
        ".guild/events.out.tfevents.1.h", "events.out.tfevents.2.h", "logs/train/events.out.tfevents.3.h"]


def summaries(path):
    """The summary values of an event file, as (tag, step, value) with the hparams plugin's
    data parsed."""
    out = []
    for raw in RawEventFileLoader(str(path)).Load():
        event = event_pb2.Event.FromString(raw)
        for v in event.summary.value:
            if v.metadata.plugin_data.plugin_name == hp_metadata.PLUGIN_NAME:
                out.append((v.tag, event.step, hp_metadata.parse_session_start_info_plugin_data(v.metadata.plugin_data.content)
                            if v.tag == hp_metadata.SESSION_START_INFO_TAG else
                            hp_metadata.parse_session_end_info_plugin_data(v.metadata.plugin_data.content)))
            else:
                out.append((v.tag, event.step, v.simple_value))
    return out


def test_mirror_follows_the_runs_it_is_given(tmp_path):
    rundir = tmp_path / "run"
    (rundir / ".guild").mkdir(parents=True)
    (rundir / ".guild/events.out.tfevents.1.h").write_bytes(b"")
    logdir = tmp_path / "logdir"
    logdir.mkdir()
    mirror = Mirror(str(logdir))
    running = run(run_dir=str(rundir), status="running", flags={"lr": 0.1, "opt": "adam"},
                  event_files=(".guild/events.out.tfevents.1.h",))
    first = "01234567 train.py 2023-11-14 22:13:20"
    assert list(mirror.sync([running], now_us=STARTED + 1_000_000)) == [first]
    d = logdir / first
    assert os.readlink(d / "events.out.tfevents.1.h") == str(rundir / ".guild/events.out.tfevents.1.h")
    [(tag, _, start)] = summaries(d / HPARAMS_FILE)
    assert tag == hp_metadata.SESSION_START_INFO_TAG
    assert {k: v.WhichOneof("kind") for k, v in start.hparams.items()} == {"lr": "number_value", "opt": "string_value"}
    assert start.hparams["lr"].number_value == 0.1 and start.hparams["opt"].string_value == "adam"
    assert summaries(d / TIME_FILE) == [("time", 0, 1.0)]

    # it ends: the session ends, the time is its whole time, appended where TensorBoard reads on
    ended = run(run_dir=str(rundir), status="error", stopped_us=STARTED + 3_000_000, flags={"lr": 0.1},
                event_files=(".guild/events.out.tfevents.1.h",))
    mirror.sync([ended], now_us=STARTED + 9_000_000)
    mirror.sync([ended], now_us=STARTED + 12_000_000)
    hp = summaries(d / HPARAMS_FILE)
    assert [t for t, _, _ in hp] == [hp_metadata.SESSION_START_INFO_TAG, hp_metadata.SESSION_END_INFO_TAG]
    assert hp[1][2].status == api_pb2.STATUS_FAILURE
    assert summaries(d / TIME_FILE) == [("time", 0, 1.0), ("time", 1, 3.0)]

    # relabelled: a new dir, the old one gone; the run dir is never touched
    relabelled = run(run_dir=str(rundir), label="best", status="error", stopped_us=STARTED + 3_000_000)
    assert list(mirror.sync([relabelled])) == [f"{first} best"]
    assert sorted(os.listdir(logdir)) == [f"{first} best"]
    assert sorted(os.listdir(logdir / f"{first} best")) == [HPARAMS_FILE, TIME_FILE]  # its event file went
    assert sorted(os.listdir(rundir / ".guild")) == ["events.out.tfevents.1.h"]

    # no longer selected: gone
    assert mirror.sync([]) == {}
    assert os.listdir(logdir) == []
    assert (rundir / ".guild/events.out.tfevents.1.h").exists()


def test_skip_hparams_writes_links_only(tmp_path):
    mirror = Mirror(str(tmp_path), hparams=False)
    mirror.sync([run(status="completed", stopped_us=STARTED + 1, event_files=("events.out.tfevents.1.h",))])
    [d] = os.listdir(tmp_path)
    assert os.listdir(tmp_path / d) == ["events.out.tfevents.1.h"]


@pytest.mark.parametrize("mirror, hparams, listed", [
    ({}, True, []),
    ({"r1": {}}, True, ["r1"]),  # the HParams files alone make a run
    ({"r1": {}}, False, []),
    ({"r1": {"events.out.tfevents.1": "/a", "val/events.out.tfevents.2": "/b", "val/x/events.out.tfevents.3": "/c"}},
     False, ["r1", "r1/val", "r1/val/x"]),
    ({"r1": {"val/events.out.tfevents.2": "/b"}, "r2": {}}, True, ["r1", "r1/val", "r2"]),
])
def test_the_runs_tensorboard_lists_for_a_mirror(mirror, hparams, listed):
    assert tbmirror.listed_runs(mirror, hparams) == listed


def test_a_stop_waits_for_the_refresh_under_way_before_the_mirror_goes():
    import threading

    from guildctl.cmd_tensorboard import Refresher

    in_sync, finish = threading.Event(), threading.Event()
    done = []

    def sync():
        in_sync.set()
        finish.wait(5)
        done.append(True)  # a sync writes into the mirror until here

    refresher = Refresher(sync, 0.01)
    refresher.thread.start()
    assert in_sync.wait(5)
    threading.Timer(0.2, finish.set).start()
    refresher.stop()
    assert done == [True] and not refresher.thread.is_alive()
