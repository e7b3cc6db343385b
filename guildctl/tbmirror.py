"""The log dir `guildctl tensorboard` shows: one dir per selected run, named as Guild AI 0.9
names it (`<short id> <op> <started> <label>`), holding links to the run's event files and
the HParams summaries TensorBoard's hparams plugin reads, kept in step with the runs.

TensorBoard names a run after its dir, so the dir name is what a user sees; a relabelled run
gets a new dir (and TensorBoard a new run), a run no longer selected loses its dir. Links
only: the run dirs are never written, the mirror is a temp dir that goes with the command.

`plan` decides the mirror (pure, table-tested); `Mirror.sync` makes the disk match it and
appends to the HParams files as runs end or run on (event files are append-only to
TensorBoard, which reads each forward from where it was).
"""

import dataclasses
import datetime
import json
import os
import shutil
import time
from collections.abc import Iterable, Mapping
from typing import Any

from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.plugins.hparams import api_pb2, metadata as hp_metadata, plugin_data_pb2, summary_v2
from tensorboard.summary.writer.record_writer import RecordWriter

from guild_common import eventfiles

MAX_RUN_NAME_LEN = 200  # a dir name stays well under the 255 bytes file systems allow
GUILD_DIR = eventfiles.GUILD_DIR
# Sorted before and after any event file a run writes (TensorBoard reads a dir's files in
# name order), as Guild AI names them.
HPARAMS_FILE = "events.out.tfevents.0000000000.hparams"
TIME_FILE = "events.out.tfevents.9999999999.time"
OWN_FILES = frozenset({HPARAMS_FILE, TIME_FILE})
# HParams has no status for a run a user stopped: neither a success nor a failure.
ENDED_STATUS = {
    "completed": api_pb2.STATUS_SUCCESS,
    "error": api_pb2.STATUS_FAILURE,
    "terminated": api_pb2.STATUS_UNKNOWN,
}


@dataclasses.dataclass(frozen=True)
class MirrorRun:
    """What the mirror needs of a run: from the daemon, plus its event files (paths relative
    to its run dir, `.guild/...` for those guildd writes from the run's output)."""

    id: str
    op: str
    started_us: int
    label: str
    run_dir: str
    status: str = ""
    stopped_us: int = 0
    flags: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    event_files: tuple[str, ...] = ()


def run_name(run: MirrorRun, short_len: int = 8) -> str:
    """The dir name TensorBoard shows for `run`: short id, op, start time (local) and label,
    one line, no `/`; a label too long for a file name loses its head to a leading `...`."""
    started = ""
    if run.started_us:
        started = datetime.datetime.fromtimestamp(run.started_us / 1e6).strftime("%Y-%m-%d %H:%M:%S")
    head = " ".join(p for p in (run.id[:short_len], run.op, started) if p)
    label = " ".join(run.label.split())
    name = f"{head} {label}" if label else head
    if len(name) > MAX_RUN_NAME_LEN:
        room = max(MAX_RUN_NAME_LEN - len(head) - 4, 0)
        name = f"{head} ...{label[len(label) - room:]}" if room else head[:MAX_RUN_NAME_LEN]
    return name.replace("/", "_").replace("\0", "")


def link_name(rel: str) -> str:
    """Where a run's event file appears in its mirror dir: as it lies in the run dir, except
    guildd's own (`.guild/`), which are the run's root scalars and so go to the root."""
    parts = rel.split("/")
    return parts[-1] if parts[0] == GUILD_DIR and len(parts) == 2 else rel


def plan(runs: Iterable[MirrorRun]) -> dict[str, dict[str, str]]:
    """The mirror: {dir name: {link path in the dir: absolute target}} for `runs`. Two runs
    whose names meet (short ids that collide) are told apart by their full ids; a file that
    would take the place of the HParams files, or of another link, is left out."""
    out: dict[str, dict[str, str]] = {}
    for run in runs:
        name = run_name(run)
        if name in out:
            name = run_name(run, short_len=len(run.id))
        links: dict[str, str] = {}
        for rel in sorted(run.event_files):
            where = link_name(rel)
            if where in OWN_FILES or where in links:
                continue
            links[where] = os.path.join(run.run_dir, rel)
        out[name] = links
    return out


def listed_runs(mirror: Mapping[str, Mapping[str, str]], hparams: bool) -> list[str]:
    """The runs TensorBoard lists for a mirror (its `plan`): each dir that holds event
    files, a run's dir itself always when it holds the HParams files."""
    out: set[str] = set()
    for name, links in mirror.items():
        if hparams:
            out.add(name)
        out.update(f"{name}/{os.path.dirname(rel)}".rstrip("/") for rel in links)
    return sorted(out)


def find_event_files(run_dir: str, limit: int = eventfiles.MAX_WALK_ENTRIES) -> tuple[str, ...]:
    """Event files in `run_dir` (relative, `/`-separated): those in `.guild/` itself (guildd's,
    from the output), then anywhere the script wrote them (guild_common.eventfiles)."""
    found, _cut = eventfiles.find_event_files(run_dir, limit)
    return (*_guild_dir_events(run_dir), *(path for path, _size in found))


def _guild_dir_events(run_dir: str) -> list[str]:
    try:
        with os.scandir(os.path.join(run_dir, GUILD_DIR)) as it:
            return sorted(f"{GUILD_DIR}/{e.name}" for e in it if eventfiles.is_event_file(e.name) and e.is_file(follow_symlinks=False))
    except OSError:
        return []


def hparam_values(flags: Mapping[str, Any]) -> dict[str, bool | float | str]:
    """Flags as HParams values: numbers, booleans and strings as they are, anything else
    (lists, nulls) as its JSON text, so every flag shows."""
    out: dict[str, bool | float | str] = {}
    for name, value in sorted(flags.items()):
        if isinstance(value, (bool, int, float, str)):
            out[name] = value
        else:
            out[name] = json.dumps(value)
    return out


def run_seconds(run: MirrorRun, now_us: int) -> float | None:
    """The run's time so far (its whole time once stopped); None before it starts."""
    if not run.started_us:
        return None
    end = run.stopped_us if run.stopped_us else now_us
    return max(end - run.started_us, 0) / 1e6


def _event(wall_time: float, step: int = 0, summary: Any = None) -> bytes:
    event = event_pb2.Event(wall_time=wall_time, step=step)
    if summary is None:
        event.file_version = "brain.Event:2"
    else:
        event.summary.CopyFrom(summary)
    return event.SerializeToString()


def _append(path: str, records: Iterable[bytes]) -> None:
    new = not os.path.exists(path)
    with open(path, "ab") as f:
        writer = RecordWriter(f)
        if new:
            writer.write(_event(time.time()))
        for r in records:
            writer.write(r)
        writer.flush()


def session_start(run: MirrorRun) -> bytes:
    """The HParams session start: the run's flags as its hyperparameters."""
    summary = summary_v2.hparams_pb(hparam_values(run.flags), trial_id=run.id, start_time_secs=run.started_us / 1e6 or None)
    return _event(run.started_us / 1e6 or time.time(), 0, summary)


def session_end(run: MirrorRun) -> bytes:
    """The HParams session end: the run's end status and time."""
    info = plugin_data_pb2.SessionEndInfo(status=ENDED_STATUS[run.status], end_time_secs=run.stopped_us / 1e6)
    content = plugin_data_pb2.HParamsPluginData(session_end_info=info)
    meta = hp_metadata.create_summary_metadata(content)
    value = summary_pb2.Summary.Value(tag=hp_metadata.SESSION_END_INFO_TAG, metadata=meta, tensor=hp_metadata.NULL_TENSOR)
    return _event(run.stopped_us / 1e6 or time.time(), 0, summary_pb2.Summary(value=[value]))


def time_scalar(seconds: float, step: int) -> bytes:
    """The run's time as the scalar `time` (a metric in HParams, as in Guild AI)."""
    return _event(time.time(), step, summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag="time", simple_value=seconds)]))


@dataclasses.dataclass
class _Written:
    """What a mirror dir's HParams files hold so far."""

    ended: bool = False
    time_steps: int = 0
    last_time: float | None = None


class Mirror:
    """A log dir kept in step with the runs it's given (`sync`)."""

    def __init__(self, logdir: str, hparams: bool = True) -> None:
        self.logdir = logdir
        self.hparams = hparams
        self._written: dict[str, _Written] = {}

    def sync(self, runs: Iterable[MirrorRun], now_us: int | None = None) -> dict[str, dict[str, str]]:
        """Makes the log dir the mirror of `runs`; returns its plan."""
        runs = list(runs)
        wanted = plan(runs)
        for entry in os.listdir(self.logdir):
            if entry not in wanted:
                _remove(os.path.join(self.logdir, entry))
                self._written.pop(entry, None)
        now = now_us if now_us is not None else int(time.time() * 1e6)
        for run, (name, links) in zip(runs, wanted.items()):
            d = os.path.join(self.logdir, name)
            os.makedirs(d, exist_ok=True)
            _sync_links(d, links)
            if self.hparams:
                self._sync_hparams(d, self._written.setdefault(name, _Written()), run, now)
        return wanted

    def _sync_hparams(self, d: str, written: _Written, run: MirrorRun, now_us: int) -> None:
        hparams_path = os.path.join(d, HPARAMS_FILE)
        if not os.path.exists(hparams_path):
            _append(hparams_path, [session_start(run)])
        if not written.ended and run.status in ENDED_STATUS:
            _append(hparams_path, [session_end(run)])
            written.ended = True
        seconds = run_seconds(run, now_us)
        if seconds is not None and seconds != written.last_time:
            _append(os.path.join(d, TIME_FILE), [time_scalar(seconds, written.time_steps)])
            written.time_steps += 1
            written.last_time = seconds


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)  # links in it are removed, never followed
    else:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def _sync_links(d: str, links: Mapping[str, str]) -> None:
    """The links in `d` become `links`: missing ones made, wrong or stale ones removed."""
    for root, _dirs, files in os.walk(d):
        for f in files:
            path = os.path.join(root, f)
            rel = os.path.relpath(path, d).replace(os.sep, "/")
            if rel in OWN_FILES:
                continue
            if rel not in links or not os.path.islink(path) or os.readlink(path) != links[rel]:
                _remove(path)
    for rel, target in links.items():
        path = os.path.join(d, rel)
        if os.path.lexists(path):
            continue
        os.makedirs(os.path.dirname(path), exist_ok=True)
        os.symlink(target, path)

