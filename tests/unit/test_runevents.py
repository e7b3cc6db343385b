"""Event files a run's process writes itself (guildd.runevents), as a real writer writes them
(tensorboardX's SummaryWriter): found anywhere in the run dir but `.guild/`, named as Guild
names them (`val#acc`), and read forward as they grow."""

import logging
import os

import pytest
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.plugins.scalar import metadata as scalar_metadata
from tensorboard.util import tensor_util
from tensorboardX import SummaryWriter, summary
from tensorboardX.event_file_writer import EventsWriter
from tensorboardX.proto import event_pb2 as tbx_event_pb2

from guild_common import eventfiles
from guildd import runevents, tfevents
from guildd.tfevents import frame_record


def log_scalars(logdir, scalars):
    """Writes (tag, value, step) with tensorboardX, the file closed after."""
    with SummaryWriter(str(logdir)) as writer:
        for tag, value, step in scalars:
            writer.add_scalar(tag, value, step)


class Growing:
    """tensorboardX's own event file writer without SummaryWriter's thread (whose flush
    doesn't wait for it): each add is on disk when it returns, as a running script's are
    once its writer flushes."""

    def __init__(self, logdir):
        os.makedirs(logdir, exist_ok=True)
        self.writer = EventsWriter(os.path.join(logdir, "events"))

    def add_scalar(self, tag, value, step):
        self.writer.write_event(tbx_event_pb2.Event(summary=summary.scalar(tag, value), step=step, wall_time=1.0))
        self.writer.flush()


def the_file(logdir):
    [name] = [n for n in os.listdir(logdir) if eventfiles.is_event_file(n)]
    return logdir / name


@pytest.mark.parametrize(
    "path, tag, key",
    [
        ("events.out.tfevents.1.host", "loss", "loss"),
        ("val/events.out.tfevents.1.host", "acc", "val#acc"),
        ("a/b/events.out.tfevents.1.host", "x/y", "a/b#x/y"),
    ],
)
def test_scalar_names(path, tag, key):
    assert tfevents.scalar_key(runevents.prefix_of(path), tag) == key


@pytest.mark.parametrize(
    "name, is_events",
    [
        ("events.out.tfevents.1796416523.vm", True),
        ("events.out.tfevents.1796416523.vm.22542.0.v2", True),
        ("train.tfevents.1", True),
        ("events.out", False),
        ("tfevents", False),
    ],
)
def test_event_file_names(name, is_events):
    assert eventfiles.is_event_file(name) is is_events


def test_tags_at_the_root_and_in_subdirs(tmp_path):
    log_scalars(tmp_path, [("loss", 1.0, 0), ("acc", 0.5, 0), ("loss", 0.5, 1), ("acc", 0.75, 1)])
    log_scalars(tmp_path / "val", [("acc", 0.7, 0), ("acc", 0.8, 1)])
    log_scalars(tmp_path / "a" / "b", [("x/y", 4.0, 2)])
    scalars = runevents.RunEvents(tmp_path).read_all()
    assert scalars == [
        ("loss", 1.0, 0), ("acc", 0.5, 0), ("loss", 0.5, 1), ("acc", 0.75, 1),
        ("val#acc", pytest.approx(0.7), 0), ("val#acc", pytest.approx(0.8), 1),
        ("a/b#x/y", 4.0, 2),
    ]


def test_guilds_own_events_and_linked_dirs_are_not_read(tmp_path):
    log_scalars(tmp_path / ".guild", [("loss", 1.0, 0)])
    log_scalars(tmp_path / "elsewhere", [("acc", 1.0, 0)])
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "linked").symlink_to(tmp_path / "elsewhere")
    (run_dir / "events.out.tfevents.1.link").symlink_to(the_file(tmp_path / "elsewhere"))
    os.mkfifo(run_dir / "events.out.tfevents.2.fifo")
    (run_dir / ".guild").symlink_to(tmp_path / ".guild")
    assert eventfiles.find_event_files(run_dir) == ([], False)
    assert [p for p, _ in eventfiles.find_event_files(tmp_path)[0]] == [os.path.join("elsewhere", the_file(tmp_path / "elsewhere").name)]


def test_a_growing_file_is_read_forward(tmp_path):
    events = runevents.RunEvents(tmp_path)
    assert events.read() == ([], {})
    writer = Growing(tmp_path)
    writer.add_scalar("loss", 1.0, 0)
    writer.add_scalar("acc", 0.5, 0)
    first, offsets = events.read()
    assert first == [("loss", 1.0, 0), ("acc", 0.5, 0)]
    assert events.read() == ([], {})  # nothing new
    writer.add_scalar("loss", 0.5, 1)
    second, later = events.read()
    assert second == [("loss", 0.5, 1)]
    [(path, size)] = eventfiles.find_event_files(tmp_path)[0]
    assert later == {path: size} and later[path] > offsets[path]


def test_a_record_written_in_part_is_read_once_whole(tmp_path):
    log_scalars(tmp_path / "w", [("loss", 1.0, 0), ("loss", 0.5, 1)])
    data = the_file(tmp_path / "w").read_bytes()
    target = tmp_path / "run" / "events.out.tfevents.1.host"
    target.parent.mkdir()
    events = runevents.RunEvents(tmp_path / "run")
    target.write_bytes(data[:-5])
    assert events.read()[0] == [("loss", 1.0, 0)]
    with open(target, "ab") as f:
        f.write(data[-5:])
    assert events.read()[0] == [("loss", 0.5, 1)]


def test_a_new_reader_goes_on_from_the_offsets_the_index_holds(tmp_path):
    writer = Growing(tmp_path / "val")
    writer.add_scalar("acc", 0.5, 0)
    _, offsets = runevents.RunEvents(tmp_path).read()
    writer.add_scalar("acc", 0.75, 1)
    assert runevents.RunEvents(tmp_path, offsets).read()[0] == [("val#acc", 0.75, 1)]


def tensor_event(step, value, with_metadata):
    """An Event as TF2's summary API writes a scalar: a tensor, the tag's metadata on its first value only."""
    metadata = scalar_metadata.create_summary_metadata("", "") if with_metadata else None
    v = summary_pb2.Summary.Value(tag="acc", tensor=tensor_util.make_tensor_proto(value), metadata=metadata)
    return event_pb2.Event(step=step, wall_time=1.0, summary=summary_pb2.Summary(value=[v]))


def test_a_tensor_scalar_goes_on_counting_after_its_first_value_was_indexed(tmp_path):
    path = tmp_path / "train" / "events.out.tfevents.1.host"
    path.parent.mkdir()
    path.write_bytes(frame_record(tensor_event(0, 0.5, True).SerializeToString()))
    scalars, offsets = runevents.RunEvents(tmp_path).read()
    assert scalars == [("train#acc", 0.5, 0)]
    with open(path, "ab") as f:
        f.write(frame_record(tensor_event(1, 0.75, False).SerializeToString()))
    assert runevents.RunEvents(tmp_path, offsets, ["train#acc"]).read()[0] == [("train#acc", 0.75, 1)]
    assert runevents.RunEvents(tmp_path, offsets).read()[0] == []  # no metadata seen: not a scalar, as TensorBoard says


def test_a_read_takes_a_budget_of_bytes_and_says_there_is_more(tmp_path):
    log_scalars(tmp_path, [("loss", float(i), i) for i in range(100)])
    events = runevents.RunEvents(tmp_path)
    got = []
    while True:
        scalars, _ = events.read(budget=500)
        got += scalars
        if not events.more:
            break
        assert scalars
    assert [s for _, _, s in got] == list(range(100))


def test_a_record_that_does_not_parse_ends_the_file_with_a_warning(tmp_path, caplog):
    path = tmp_path / "events.out.tfevents.1.host"
    good = event_pb2.Event(step=1, wall_time=1.0, summary=summary_pb2.Summary(value=[
        summary_pb2.Summary.Value(tag="loss", simple_value=0.5)]))
    path.write_bytes(frame_record(good.SerializeToString()) + frame_record(b"\xff\xff\xff") + frame_record(good.SerializeToString()))
    events = runevents.RunEvents(tmp_path)
    with caplog.at_level(logging.WARNING, logger="guildd"):
        scalars, offsets = events.read()
        assert events.read() == ([], {})
    assert scalars == [("loss", 0.5, 1)]
    assert offsets == {path.name: len(frame_record(good.SerializeToString()))}
    assert len([r for r in caplog.records if "does not parse" in r.getMessage()]) == 1


def test_a_big_run_dir_is_walked_only_so_far_and_said_so_once(tmp_path, monkeypatch, caplog):
    log_scalars(tmp_path, [("loss", 1.0, 0)])
    data = tmp_path / "data"
    data.mkdir()
    for i in range(20):
        (data / f"{i:03}.bin").touch()
    log_scalars(data / "zz", [("acc", 1.0, 0)])
    monkeypatch.setattr(runevents, "MAX_WALK_ENTRIES", 10)
    events = runevents.RunEvents(tmp_path)
    with caplog.at_level(logging.WARNING, logger="guildd"):
        assert events.read()[0] == [("loss", 1.0, 0)]  # the root's files come first
        events.read()
    assert len([r for r in caplog.records if "more than 10 entries" in r.getMessage()]) == 1
    monkeypatch.setattr(runevents, "MAX_WALK_ENTRIES", 100)
    assert events.read()[0] == [("data/zz#acc", 1.0, 0)]
