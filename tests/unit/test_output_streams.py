"""A run's stderr kept apart in its output: the byte ranges the shim (and guildd's own
lines) note, and the split that watchers give back as stdout and stderr."""

import marshal
import os
import subprocess
import sys

import pytest

from guildd import outputs, shim


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
