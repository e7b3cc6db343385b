"""The values guildctl.api hands back (runs as plain Python objects, compare rows) and the
run filters its functions take, turned into the same RunFilter the CLI's options make."""

import dataclasses
import datetime

from guild_common import errors
from guildctl import filters as filterlib, output

STATUS_NAMES = tuple(status for status, _old, _new in filterlib.STATUSES)

# The filter keywords every run-selecting function takes, and the CLI option each one is.
FILTERS = {
    "ops": "f_ops",  # operation contains one of these
    "labels": "f_labels",  # label contains one of these
    "tags": "f_tags",  # tagged with one of these
    "unlabeled": "f_unlabeled",
    "marked": "f_marked",
    "unmarked": "f_unmarked",
    "started": "f_started",  # a time range: 'last hour', 'today', 'after 7 days ago'
    "digests": "f_digests",  # source code digest starts with one of these
    "expr": "f_expr",  # 'loss < 0.3 and x > 1'
    **{status: f"f_{status}" for status in STATUS_NAMES},  # True: only these; False: not these
}


def run_filter(deleted=False, **given):
    """The pb.RunFilter for filter keywords (FILTERS), exactly as the CLI's filter options
    make it; an unknown keyword is an InvalidArgument naming the ones there are."""
    unknown = sorted(set(given) - set(FILTERS))
    if unknown:
        raise errors.InvalidArgument(f"unknown run filter '{unknown[0]}' (filters: {', '.join(FILTERS)})")
    kw = {option: None for option in FILTERS.values()}
    for name, value in given.items():
        if name in ("ops", "labels", "tags", "digests"):
            value = (value,) if isinstance(value, str) else tuple(value or ())
        kw[FILTERS[name]] = value
    for name in ("f_ops", "f_labels", "f_tags", "f_digests"):
        kw[name] = kw[name] or ()
    for name in ("f_unlabeled", "f_marked", "f_unmarked"):
        kw[name] = bool(kw[name])
    f = filterlib.pop_filter(kw)
    f.deleted = deleted
    return f


def _time(us):
    return datetime.datetime.fromtimestamp(us / 1e6) if us else None


@dataclasses.dataclass(frozen=True)
class Run:
    """A run as `guildctl runs --json` shows it. `scalars` holds each scalar's last value;
    `started`/`stopped` are local datetimes (None until then); `exit_status` None until it
    ended."""

    id: str
    op: str
    status: str
    label: str
    tags: tuple
    flags: dict
    scalars: dict
    started: datetime.datetime | None
    stopped: datetime.datetime | None
    run_dir: str
    marked: bool
    exit_status: int | None
    user: str

    @property
    def short_id(self):
        return self.id[:8]

    @classmethod
    def from_msg(cls, msg):
        j = output.run_json(msg)
        return cls(
            id=j["id"], op=j["operation"], status=j["status"], label=j["label"], tags=tuple(j["tags"] or ()),
            flags=j["flags"], scalars={tag: last for tag, (last, _step) in j["scalars"].items()},
            started=_time(msg.started_us), stopped=_time(msg.stopped_us), run_dir=j["run_dir"],
            marked=bool(j["marked"]), exit_status=j["exit_status"], user=j["user"],
        )


class RunList(list):
    """Runs, latest first; `.to_dataframe()` makes a pandas DataFrame of them."""

    def to_dataframe(self):
        """One row per run: id, op, started, stopped, status, label, then a column per flag
        and one per scalar (`scalar:NAME` where a flag has the scalar's name). Needs pandas,
        which guildctl does not install."""
        try:
            import pandas
        except ImportError:
            raise errors.FailedPrecondition("to_dataframe() needs pandas: pip install pandas") from None
        return pandas.DataFrame(dataframe_rows(self))


def dataframe_rows(runs):
    """The rows to_dataframe() builds its frame from (dicts, in column order)."""
    rows = []
    for r in runs:
        row = {"id": r.id, "op": r.op, "started": r.started, "stopped": r.stopped, "status": r.status, "label": r.label}
        row.update(r.flags)
        for tag, value in r.scalars.items():
            row[f"scalar:{tag}" if tag in r.flags else tag] = value
        rows.append(row)
    return rows


def compare_rows(resp):
    """CompareRuns' table as dicts, header -> value (None for an empty cell), the operation
    without the ` [marked]` the table shows."""
    header = [c.header for c in resp.columns]
    kinds = [c.kind for c in resp.columns]
    rows = []
    for r in resp.rows:
        row = {}
        for name, kind, cell in zip(header, kinds, r.cells):
            which = cell.WhichOneof("value")
            value = None if which is None else getattr(cell, which)
            if name == "operation" and kind == "core" and isinstance(value, str) and value.endswith(" [marked]"):
                value = value[: -len(" [marked]")]
            row[name] = value
        rows.append(row)
    return rows


def output_lines(events):
    """Text lines from WatchRun events (stdout and stderr in the order written), each
    without its newline; the last one even when it has none."""
    pending = b""
    for msg in events:
        kind = msg.WhichOneof("event")
        if kind in ("output", "stderr"):
            pending += getattr(msg, kind)
            *lines, pending = pending.split(b"\n")
            for line in lines:
                yield line.decode("utf-8", "replace")
        elif kind == "ended":
            break
    if pending:
        yield pending.decode("utf-8", "replace")
