"""A run's stderr kept apart in its output: the byte ranges the shim (and guildd's own
lines) note, and the split that watchers give back as stdout and stderr."""

import marshal
import os
import subprocess
import sys

import pytest

from guildd import outputs, shim, tfevents


@pytest.fixture
def run_dir(tmp_path):
    (tmp_path / ".guild" / "attrs").mkdir(parents=True)
    return tmp_path


def _ranges(run_dir, text):
    (run_dir / ".guild" / "output.stderr").write_text(text)


def test_split_follows_ranges_across_chunks(run_dir):
    _ranges(run_dir, "5 10\n15 20\n")
    data = b"aaaaaEEEEEbbbbbFFFFFccc"
    streams = outputs.Streams(run_dir)
    assert streams.split(0, data[:7]) == [(False, b"aaaaa"), (True, b"EE")]
    assert streams.split(7, data[7:17]) == [(True, b"EEE"), (False, b"bbbbb"), (True, b"FF")]
    assert streams.split(17, data[17:]) == [(True, b"FFF"), (False, b"ccc")]


def test_split_reads_ranges_noted_since_and_skips_a_partial_or_damaged_line(run_dir):
    streams = outputs.Streams(run_dir)
    assert streams.split(0, b"abc") == [(False, b"abc")]  # no ranges file: all stdout
    _ranges(run_dir, "3 4\nx y\n5 6\n7")
    assert streams.split(3, b"defg") == [(True, b"d"), (False, b"e"), (True, b"f"), (False, b"g")]
    _ranges(run_dir, "3 4\nx y\n5 6\n7 8\n")  # the shim finished its line
    assert streams.split(7, b"hi") == [(True, b"h"), (False, b"i")]


def test_append_notes_stderr_before_its_bytes(run_dir):
    outputs.append(run_dir, b"out\n")
    outputs.append(run_dir, b"INFO: [guild] x\n", stderr=True)
    outputs.append(run_dir, b"more\n")
    data = (run_dir / ".guild" / "output").read_bytes()
    assert outputs.Streams(run_dir).split(0, data) == [(False, b"out\n"), (True, b"INFO: [guild] x\n"), (False, b"more\n")]


SCRIPT = """\
import os, sys
for i in range(200):
    os.write(1, b"out %d\\n" % i)
    os.write(2, b"err %d\\n" % i)
os.write(2, b"E" * 200000 + b"\\n")  # more than a pipe holds
if os.fork() == 0:  # a child left behind, still holding stderr
    os.write(2, b"from the child\\n")
    os._exit(0)
os.wait()
sys.exit(4)
"""


def _run_shim(run_dir):
    spec = {"run_dir": str(run_dir), "cmd": [sys.executable, "-c", SCRIPT], "env": dict(os.environ)}
    subprocess.run([sys.executable, "-I", "-S", shim.__file__], input=marshal.dumps(spec), check=True, timeout=60)
    return (run_dir / ".guild" / "output").read_bytes()


def test_the_shim_keeps_stderr_apart_and_every_byte_of_both(run_dir):
    data = _run_shim(run_dir)
    assert (run_dir / ".guild" / "attrs" / "exit_status").read_text() == "4\n"
    parts = outputs.Streams(run_dir).split(0, data)
    out = b"".join(p for is_err, p in parts if not is_err)
    err = b"".join(p for is_err, p in parts if is_err)
    assert out == b"".join(b"out %d\n" % i for i in range(200))
    assert err == b"".join(b"err %d\n" % i for i in range(200)) + b"E" * 200000 + b"\nfrom the child\n"


def test_without_room_for_the_ranges_stderr_still_reaches_the_output(run_dir):
    (run_dir / ".guild" / "output.stderr").mkdir()  # can't be opened as a file
    data = _run_shim(run_dir)
    assert data.count(b"err ") == 200 and data.count(b"out ") == 200 and b"from the child\n" in data


# Scalars from a run's output (ScalarReader), read as the daemon follows the run


def _write_output(run_dir, text):
    with open(run_dir / ".guild" / "output", "a") as f:
        f.write(text)


def _last(summaries):
    return {s.tag: (s.last_val, s.last_step, s.count) for s in summaries}


def test_reader_takes_whole_lines_and_the_rest_later(run_dir):
    reader = outputs.ScalarReader(run_dir, 0)
    _write_output(run_dir, "loss: 2.0\nstep: 3\nloss: 1")
    assert _last(reader.read()) == {"loss": (2.0, 0, 1)}
    assert reader.read() is None  # only the partial line is new
    _write_output(run_dir, ".5\n")
    assert _last(reader.read()) == {"loss": (1.5, 3, 1)}  # the step carries from line to line
    assert reader.offset == len("loss: 2.0\nstep: 3\nloss: 1.5\n")


READS = {
    "no output yet": (None, None, None),
    "lines without scalars": ("epoch one\ndone\n", None, []),
    "capture switched off": ("loss: 1\n", False, []),
    "a config that doesn't compile captures nothing": ("loss: 1\n", {"loss": "("}, []),
}


@pytest.mark.parametrize("text, config, expected", READS.values(), ids=READS.keys())
def test_reader_reads(run_dir, text, config, expected):
    if text is not None:
        _write_output(run_dir, text)
    assert outputs.ScalarReader(run_dir, 0, config).read() == expected


def test_reader_starts_where_the_index_left_off(run_dir):
    _write_output(run_dir, "loss: 9\nloss: 1\n")
    assert _last(outputs.ScalarReader(run_dir, len("loss: 9\n")).read()) == {"loss": (1.0, 0, 1)}


def test_reader_writes_what_it_reads_as_events(run_dir):
    reader = outputs.ScalarReader(run_dir, 0)
    _write_output(run_dir, "step: 1\nloss: 0.5\nacc: 0.25\n")
    reader.read()
    reader.close()
    events = tfevents.read_scalars(str(run_dir / ".guild"))
    assert sorted((tag, value, step) for tag, value, step, _t in events) == [("acc", 0.25, 1), ("loss", 0.5, 1)]


def test_reader_reads_a_long_output_in_chunks(run_dir, monkeypatch):
    monkeypatch.setattr(outputs, "READ_CHUNK", 64)
    _write_output(run_dir, "".join(f"loss: {i}\n" for i in range(30)))
    reader, counts = outputs.ScalarReader(run_dir, 0), []
    while True:
        summaries = reader.read()
        counts.append(_last(summaries)["loss"][2])
        if not reader.more:
            break
    assert sum(counts) == 30 and len(counts) > 1


def test_reader_goes_past_a_line_longer_than_a_chunk(run_dir, monkeypatch):
    """A line of megabytes with no newline used to hold the reader at its start for ever (a
    core spinning, and no scalar after it indexed): it is skipped, and what follows is read."""
    monkeypatch.setattr(outputs, "READ_CHUNK", 64)
    _write_output(run_dir, "loss: 1\n" + "y" * 3 * 64 + " loss: 9\nloss: 2\n")
    reader, seen = outputs.ScalarReader(run_dir, 0), []
    for _ in range(10):
        summaries = reader.read()
        if summaries:
            seen.append(_last(summaries)["loss"][0])
        if not reader.more:
            break
    assert reader.offset == (run_dir / ".guild" / "output").stat().st_size
    assert seen == [1.0, 2.0]  # the long line's own "loss: 9" is not a scalar line
