"""TF event files: what EventWriter writes, TensorBoard reads, and read_scalars reads back."""

import math
import os

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.plugin_event_accumulator import (
    EventAccumulator as PluginEventAccumulator,
)
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.plugins.scalar import metadata as scalar_metadata
from tensorboard.summary.writer.event_file_writer import EventFileWriter
from tensorboard.util import tensor_util

from guildd.tfevents import (
    EVENTS_PREFIX,
    EventWriter,
    ScalarSummary,
    frame_record,
    read_records,
    read_scalars,
    summarize,
)

SCALARS = [
    ("loss", 2.5, 1, 100.0),
    ("acc", 0.25, 1, 100.0),
    ("loss", 1.5, 2, 101.0),
    ("acc", 0.5, 2, 101.0),
    ("loss", 0.75, 3, 102.0),
]


def write(logdir, scalars):
    with EventWriter(str(logdir)) as writer:
        writer.add_scalars(scalars)
    return writer.path


def test_file_name_and_header(tmp_path):
    path = write(tmp_path, [])
    name = os.path.basename(path)
    assert name.startswith(EVENTS_PREFIX)
    assert name.split(".")[3].isdigit()
    [header] = [event_pb2.Event.FromString(r) for r in read_records(path)]
    assert header.file_version == "brain.Event:2"


def test_read_back(tmp_path):
    write(tmp_path, SCALARS)
    assert read_scalars(str(tmp_path)) == SCALARS


def test_one_event_per_step_and_time(tmp_path):
    path = write(tmp_path, SCALARS)
    events = [event_pb2.Event.FromString(r) for r in read_records(path)][1:]
    assert [(e.step, len(e.summary.value)) for e in events] == [(1, 2), (2, 2), (3, 1)]


def test_tensorboard_reads_it(tmp_path):
    write(tmp_path, SCALARS)
    acc = EventAccumulator(str(tmp_path))
    acc.Reload()
    assert sorted(acc.Tags()["scalars"]) == ["acc", "loss"]
    loss = [(e.step, e.wall_time, e.value) for e in acc.Scalars("loss")]
    assert loss == [(1, 100.0, 2.5), (2, 101.0, 1.5), (3, 102.0, 0.75)]


def test_tensorboard_server_side_reads_it(tmp_path):
    # What the TensorBoard server uses: simple_values migrate to tensors of the scalars plugin.
    write(tmp_path, SCALARS)
    acc = PluginEventAccumulator(str(tmp_path))
    acc.Reload()
    assert acc.PluginTagToContent("scalars").keys() == {"acc", "loss"}
    acc_values = [(e.step, float(tensor_util.make_ndarray(e.tensor_proto))) for e in acc.Tensors("acc")]
    assert acc_values == [(1, 0.25), (2, 0.5)]


def test_float32_precision(tmp_path):
    write(tmp_path, [("x", 0.1, 0, 1.0)])
    [(_, value, _, _)] = read_scalars(str(tmp_path))
    assert value == pytest.approx(0.1, rel=1e-7) and value != 0.1


def test_reopen_appends_without_a_second_header(tmp_path):
    write(tmp_path, SCALARS[:2])
    write(tmp_path, SCALARS[2:])  # the same file when within the same second
    assert read_scalars(str(tmp_path)) == SCALARS
    for name in os.listdir(tmp_path):
        events = [event_pb2.Event.FromString(r) for r in read_records(str(tmp_path / name))]
        assert sum(e.HasField("file_version") for e in events) == 1


def test_files_read_oldest_first(tmp_path):
    os.rename(write(tmp_path, SCALARS[:2]), tmp_path / (EVENTS_PREFIX + "0.old"))
    write(tmp_path, SCALARS[2:])
    assert len(os.listdir(tmp_path)) == 2
    assert read_scalars(str(tmp_path)) == SCALARS


def test_reads_tensorboard_written_tensor_and_simple_values(tmp_path):
    # As TF2's tf.summary.scalar writes them: tensors, plugin metadata on the first value only.
    meta = scalar_metadata.create_summary_metadata(display_name="", description="")
    values = [
        summary_pb2.Summary.Value(tag="t", tensor=tensor_util.make_tensor_proto(1.5), metadata=meta),
        summary_pb2.Summary.Value(tag="t", tensor=tensor_util.make_tensor_proto(2.5)),
        summary_pb2.Summary.Value(tag="s", simple_value=3.5),
        summary_pb2.Summary.Value(tag="h", tensor=tensor_util.make_tensor_proto([1.0, 2.0])),
    ]
    writer = EventFileWriter(str(tmp_path))
    for step, value in enumerate(values):
        writer.add_event(event_pb2.Event(step=step, wall_time=5.0, summary=summary_pb2.Summary(value=[value])))
    writer.close()
    assert read_scalars(str(tmp_path)) == [("t", 1.5, 0, 5.0), ("t", 2.5, 1, 5.0), ("s", 3.5, 2, 5.0)]


def test_truncated_and_corrupt_tails_are_skipped(tmp_path):
    path = write(tmp_path, SCALARS)
    record = frame_record(b"partial")
    with open(path, "ab") as f:
        f.write(record[:-3])
    assert read_scalars(str(tmp_path)) == SCALARS
    with open(path, "r+b") as f:
        f.seek(-(len(record) - 3) - 2, os.SEEK_END)  # last byte of the last good record's data
        f.write(b"\xff")
    assert read_scalars(str(tmp_path)) == SCALARS[:4]


def test_ignores_other_files_and_subdirs(tmp_path):
    write(tmp_path / "sub", SCALARS)
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / (EVENTS_PREFIX + "dir")).mkdir()
    assert read_scalars(str(tmp_path)) == []
    assert read_scalars(str(tmp_path / "missing")) == []


def test_100k_events(tmp_path):
    scalars = [("loss", 1.0 / (i + 1), i, 1000.0 + i) for i in range(100_000)]
    write(tmp_path, scalars)
    back = read_scalars(str(tmp_path))
    assert len(back) == 100_000
    assert back[-1] == ("loss", pytest.approx(1e-5), 99_999, 100_999.0)


def test_summary_math():
    s = ScalarSummary()
    for value, step in [(1.0, 1), (2.0, 2), (3.0, 3), (4.0, 3)]:
        s.add(value, step)
    assert (s.first_val, s.first_step, s.last_val, s.last_step) == (1.0, 1, 4.0, 3)
    assert (s.min_val, s.min_step, s.max_val, s.max_step) == (1.0, 1, 4.0, 3)
    assert (s.total, s.count, s.avg) == (10.0, 4, 2.5)


def test_summary_ties_keep_first_step_and_nan_is_never_min_or_max():
    s = ScalarSummary()
    for value, step in [(math.nan, 0), (2.0, 1), (1.0, 2), (1.0, 3), (2.0, 4)]:
        s.add(value, step)
    assert (s.min_val, s.min_step, s.max_val, s.max_step) == (1.0, 2, 2.0, 1)
    assert math.isnan(s.first_val) and s.count == 5


def test_empty_summary_avg_is_nan():
    assert math.isnan(ScalarSummary().avg)


def test_summarize():
    summaries = summarize(SCALARS)
    assert sorted(summaries) == ["acc", "loss"]
    loss = summaries["loss"]
    assert (loss.first_val, loss.last_val, loss.last_step, loss.count) == (2.5, 0.75, 3, 3)
    assert loss.avg == pytest.approx(4.75 / 3)
    assert summarize([("x", 1.0, 0)])["x"].total == 1.0
