"""Scalars as TensorFlow event files, the format TensorBoard and Guild AI read.

TFRecord framing is done here, with google_crc32c, for writing and reading alike:
tensorboard's own writer and loader (without TensorFlow installed) compute crc32c in pure
Python, ~14-27 µs a record, and its EventFileLoader's compat migrations bring a 100k-event
read to ~12 s; a chatty run logs 100k events and the daemon rebuilds its index from them.
The protos are tensorboard's, and a summary value counts as a scalar by TensorBoard's rules.
"""

import dataclasses
import itertools
import math
import os
import socket
import struct
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, BinaryIO

import google_crc32c
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.plugins.scalar import metadata as scalar_metadata
from tensorboard.util import tensor_util

EVENTS_PREFIX = "events.out.tfevents."
FILE_VERSION = "brain.Event:2"
_WRITE_BUFFER = 256 * 1024  # bytes; the daemon flushes explicitly, this only batches syscalls


def masked_crc(data: bytes) -> int:
    # TFRecord masks CRCs so a CRC of data that itself holds CRCs stays well distributed.
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def frame_record(data: bytes) -> bytes:
    """One TFRecord: length, masked CRC of the length, data, masked CRC of the data."""
    length = struct.pack("<Q", len(data))
    return b"".join((length, struct.pack("<I", masked_crc(length)), data,
                     struct.pack("<I", masked_crc(data))))


def scalar_event(step: int, wall_time: float, tag_values: Iterable[tuple[str, float]]) -> Any:
    """An Event holding one simple_value per (tag, value), as TF1 / tensorboardX writers do."""
    values = [summary_pb2.Summary.Value(tag=tag, simple_value=value) for tag, value in tag_values]
    return event_pb2.Event(
        wall_time=wall_time, step=step, summary=summary_pb2.Summary(value=values)
    )


def events_filename(now: float, hostname: str) -> str:
    return f"{EVENTS_PREFIX}{int(now)}.{hostname}"


class EventWriter:
    """Appends scalar events to one event file in `logdir`.

    Not thread-safe: the daemon gives each writer to a single worker thread.
    """

    def __init__(self, logdir: str) -> None:
        os.makedirs(logdir, exist_ok=True)
        now = time.time()
        self.path = os.path.join(logdir, events_filename(now, socket.gethostname()))
        # Append: a writer reopened within the same second continues the same file.
        self._file = open(self.path, "ab", buffering=_WRITE_BUFFER)
        if self._file.tell() == 0:
            header = event_pb2.Event(wall_time=now, file_version=FILE_VERSION)
            self._file.write(frame_record(header.SerializeToString()))
            self._file.flush()

    def add_scalars(self, scalars: Iterable[tuple[str, float, int, float]]) -> None:
        """Writes (tag, value, step, wall_time) tuples; one event per run of equal step and time."""
        # One reusable single-value Event for the common case (a value per step): building a
        # new message per scalar costs more than framing and writing it.
        single = event_pb2.Event()
        value = single.summary.value.add()
        records = []
        for (step, wall_time), grouped in itertools.groupby(scalars, key=lambda s: (s[2], s[3])):
            group = list(grouped)
            if len(group) == 1:
                single.step = step
                single.wall_time = wall_time
                value.tag = group[0][0]
                value.simple_value = group[0][1]
                event = single
            else:
                event = scalar_event(step, wall_time, [(t, v) for t, v, _, _ in group])
            records.append(frame_record(event.SerializeToString()))
        self._file.write(b"".join(records))

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()

    def __enter__(self) -> "EventWriter":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def event_files(logdir: str) -> list[str]:
    """Event file paths directly in `logdir`, oldest first (names start with a timestamp)."""
    try:
        entries = list(os.scandir(logdir))
    except FileNotFoundError:
        return []
    return sorted(
        e.path for e in entries if e.name.startswith(EVENTS_PREFIX) and e.is_file(follow_symlinks=False)
    )


def _is_scalar(metadata: Any) -> bool:
    return (
        metadata.data_class == summary_pb2.DATA_CLASS_SCALAR
        or metadata.plugin_data.plugin_name == scalar_metadata.PLUGIN_NAME
    )


def _scalar_value(value: Any, key: str, scalar_tags: dict[str, bool]) -> float | None:
    """The float in a summary value, or None when the value is not a scalar."""
    if value.HasField("simple_value"):
        return value.simple_value
    # Writers put a tag's metadata on its first value only, so the first one decides.
    if scalar_tags.setdefault(key, _is_scalar(value.metadata)) and value.HasField("tensor"):
        array = tensor_util.make_ndarray(value.tensor)
        if array.size == 1:
            return float(array.item())
    return None


def scan_records(f: BinaryIO, budget: int = -1) -> Iterator[tuple[bytes, int]]:
    """(data, end) of each whole, intact record from `f`'s position on, `end` the offset
    just past it: a reader that stops can go on from there when the file has grown.

    Stops at a truncated record (a writer may be mid-append: a later read finds it whole),
    at a CRC mismatch, as TensorBoard's loader does, and once `budget` bytes are read (the
    record that crosses it included). A length past the file's end is a record not yet
    whole, never a read of that many bytes.
    """
    pos = start = f.tell()
    size = os.fstat(f.fileno()).st_size
    while budget < 0 or pos - start < budget:
        header = f.read(12)
        if len(header) < 12 or struct.unpack_from("<I", header, 8)[0] != masked_crc(header[:8]):
            return
        length = struct.unpack_from("<Q", header)[0]
        if pos + 16 + length > size:
            return
        data = f.read(length)
        footer = f.read(4)
        if len(data) < length or len(footer) < 4 or struct.unpack("<I", footer)[0] != masked_crc(data):
            return
        pos += 16 + length
        yield data, pos


def read_records(path: str) -> Iterator[bytes]:
    """The data of each whole, intact record in the file at `path` (see scan_records)."""
    with open(path, "rb") as f:
        for data, _end in scan_records(f):
            yield data


def scalar_key(prefix: str, tag: str) -> str:
    """A scalar's name in the index, as Guild names it: a tag of an event file in the run
    dir's root (prefix "") or in `.guild/` as it is, one in a subdirectory `PREFIX#TAG`."""
    return f"{prefix}#{tag}" if prefix else tag


def event_scalars(event: Any, scalar_tags: dict[str, bool], prefix: str = "") -> Iterator[tuple[str, float, int, float]]:
    """(key, value, step, wall_time) of each scalar in an Event, keyed by scalar_key.
    `scalar_tags` (key -> is a scalar) carries what the first value of each tag said
    from one event to the next."""
    if not event.HasField("summary"):
        return
    for value in event.summary.value:
        key = scalar_key(prefix, value.tag)
        val = _scalar_value(value, key, scalar_tags)
        if val is not None:
            yield key, val, event.step, event.wall_time


def read_scalars(logdir: str) -> list[tuple[str, float, int, float]]:
    """(tag, value, step, wall_time) for every scalar in `logdir`'s own event files, in order."""
    scalar_tags: dict[str, bool] = {}  # tag -> is a scalar, from the tag's first value across the run's files
    scalars: list[tuple[str, float, int, float]] = []
    for path in event_files(logdir):
        for record in read_records(path):
            scalars.extend(event_scalars(event_pb2.Event.FromString(record), scalar_tags))
    return scalars


@dataclasses.dataclass
class ScalarSummary:
    """Running summary of one tag, the columns Guild shows for a run's scalars.

    Ties keep the earliest step for min and max; nan values count but never become min/max.
    """

    first_val: float = math.nan
    first_step: int = 0
    last_val: float = math.nan
    last_step: int = 0
    min_val: float = math.nan
    min_step: int = 0
    max_val: float = math.nan
    max_step: int = 0
    total: float = 0.0
    count: int = 0

    def add(self, value: float, step: int) -> None:
        if self.count == 0:
            self.first_val, self.first_step = value, step
        self.last_val, self.last_step = value, step
        if not math.isnan(value):
            # Comparisons with the initial nan are False, so the first number always lands.
            if not value >= self.min_val:
                self.min_val, self.min_step = value, step
            if not value <= self.max_val:
                self.max_val, self.max_step = value, step
        self.total += value
        self.count += 1

    @property
    def avg(self) -> float:
        return self.total / self.count if self.count else math.nan


def summarize(scalars: Iterable[Sequence[Any]]) -> dict[str, ScalarSummary]:
    """{tag: ScalarSummary} over (tag, value, step, ...) tuples, in the order given."""
    summaries: dict[str, ScalarSummary] = {}
    for tag, value, step, *_ in scalars:
        summaries.setdefault(tag, ScalarSummary()).add(value, step)
    return summaries
