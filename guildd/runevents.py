"""Scalars a run's own process writes as TF event files anywhere in its run dir (tensorboardX,
Keras' TensorBoard callback, PyTorch's SummaryWriter), named as Guild AI names them: a file
in the run dir's root gives its tags as they are, one in a subdirectory `SUBDIR#TAG` (`val#acc`,
`a/b#x`).

`.guild/` is not searched: its events are guildd's own, made from the run's output
(guildd.outputs) and read by themselves when a run is indexed from its dir
(guildd.manage.index_run_dir). Links are never followed, and a walk stops after
MAX_WALK_ENTRIES entries, so a run dir holding a data set costs a bounded walk. Event files
are read forward from how far the index has them (offsets kept per file), whole records only,
so a file being written is read as it grows.
"""

import errno
import logging
import os
import stat
import time
from collections.abc import Iterable, Mapping
from typing import BinaryIO, cast

from google.protobuf.message import DecodeError
from tensorboard.compat.proto import event_pb2

from guild_common.eventfiles import MAX_WALK_ENTRIES, find_event_files
from guild_common.paths import StrPath
from guildd import tfevents

log = logging.getLogger("guildd")

READ_BUDGET = 4 << 20  # bytes of event records read per file and pass (the rest at the next)

Scalar = tuple[str, float, int]  # (key, value, step)


def prefix_of(path: str) -> str:
    """The scalar prefix of an event file, from its path relative to the run dir: its
    directory ("" in the root), `/`-separated."""
    return os.path.dirname(path).replace(os.sep, "/")


def open_regular(path: StrPath) -> BinaryIO:
    """`path` opened for reading with the calling thread's rights, if it is a regular file
    (not a link, a FIFO or a device: those would hold the reading thread or read elsewhere)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY | os.O_NOFOLLOW)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        os.set_blocking(fd, True)
        return cast(BinaryIO, os.fdopen(fd, "rb"))
    except BaseException:
        os.close(fd)
        raise


class RunEvents:
    """A run's event files, read forward: each read returns the scalars written since the
    last one. Starts from `offsets` (path -> bytes of whole records already indexed) and
    `scalar_keys` (keys the index holds: a tag's first value, which says whether it is a
    scalar, may lie before the offsets). Reads take the calling thread's rights: the
    follower's are the run dir owner's (guildd.fsrights)."""

    def __init__(self, run_dir: StrPath, offsets: Mapping[str, int] | None = None,
                 scalar_keys: Iterable[str] = ()) -> None:
        self.run_dir = run_dir
        self.offsets = dict(offsets or {})
        self.scalar_tags = dict.fromkeys(scalar_keys, True)
        self.more = False  # the last read left records unread (READ_BUDGET)
        self.broken: set[str] = set()  # files with a record that doesn't parse: read no further
        self.cut = False  # a walk stopped at MAX_WALK_ENTRIES (logged once)
        self.walk_seconds = 0.0  # how long the last walk took: a big run dir is walked less often

    def read(self, budget: int = READ_BUDGET) -> tuple[list[Scalar], dict[str, int]]:
        """The scalars written since the last read, files oldest first within a dir, and the
        new offsets of the files they came from (empty when nothing was read)."""
        start = time.monotonic()
        files, cut = find_event_files(self.run_dir, MAX_WALK_ENTRIES)
        self.walk_seconds = time.monotonic() - start
        if cut and not self.cut:
            log.warning("run %s: more than %d entries in its run dir: event files past them are not read",
                        os.path.basename(self.run_dir)[:8], MAX_WALK_ENTRIES)
        self.cut = self.cut or cut
        self.more = False
        scalars: list[Scalar] = []
        read_to: dict[str, int] = {}
        for path, size in files:
            offset = self.offsets.get(path, 0)
            if size <= offset or path in self.broken:
                continue
            end = self._read_file(path, offset, budget, scalars)
            if end > offset:
                read_to[path] = self.offsets[path] = end
        return scalars, read_to

    def read_all(self) -> list[Scalar]:
        """Every scalar in the run's event files (an index rebuild: offsets start at 0)."""
        scalars, _ = self.read(budget=-1)
        return scalars

    def _read_file(self, path: str, offset: int, budget: int, scalars: list[Scalar]) -> int:
        """Appends the scalars of one file's records from `offset`; returns the offset past
        the last whole record read."""
        prefix = prefix_of(path)
        end = offset
        try:
            with open_regular(os.path.join(self.run_dir, path)) as f:
                f.seek(offset)
                for record, after in tfevents.scan_records(f, budget):
                    event = event_pb2.Event.FromString(record)
                    new = [(k, v, s) for k, v, s, _t in tfevents.event_scalars(event, self.scalar_tags, prefix)]
                    scalars.extend(new)  # a record's scalars all or none
                    end = after
                self.more = self.more or (budget >= 0 and end - offset >= budget)
        except OSError:
            pass  # gone, or one its reader may not read: what was read counts
        except (DecodeError, ValueError, TypeError) as e:
            log.warning("run %s: %s: a record at byte %d does not parse (%s): the file is read no further",
                        os.path.basename(self.run_dir)[:8], path, end, e)
            self.broken.add(path)
        return end
