"""Compare rows: for each run, the core attributes, flags, and scalar summaries, plus any
columns asked for in Guild's column syntax (`min loss`, `=lr`, `.label`, `... as NAME`).

Pure over index records and scalar summaries; the daemon fetches both on its I/O thread.
"""

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from guild_common import query, rundir
from guildd.store import RunRecord, Summary

CORE = ("operation", "started", "time", "status", "label")


@dataclasses.dataclass(frozen=True)
class Column:
    header: str
    kind: str  # core, flag, scalar, attr
    spec: query.Column | None = None  # for asked-for columns
    name: str = ""


def fmt_duration(rec: RunRecord) -> str | None:
    if not rec.started_us or not rec.stopped_us:
        return None
    secs = max(0, (rec.stopped_us - rec.started_us) // 1_000_000)
    return f"{secs // 3600}:{secs // 60 % 60:02d}:{secs % 60:02d}"


def columns_for(recs: Iterable[RunRecord], scalars_by_run: Mapping[str, Iterable[Summary]], extra: str = "",
                strict: bool = False, skip_core: bool = False, skip_op: bool = False,
                op_columns: Iterable[str] = ()) -> list[Column]:
    """The columns of a compare table over these runs: run, core, the operations' own
    `compare` columns, each run's flags, step and scalars in the order first seen, then the
    asked-for columns (or only run and those, when strict)."""
    asked = [Column(header=c.header, kind=c.kind, spec=c) for c in query.parse_columns(extra)] if extra else []
    cols = [Column("run", "core", name="run")]
    if not strict:
        if not skip_core:
            cols += [Column(name, "core", name=name) for name in CORE if not (skip_op and name == "operation")]
        for spec in op_columns:
            parsed = query.parse_column(spec)
            cols.append(Column(header=parsed.header, kind=parsed.kind, spec=parsed))
        for r in recs:
            cols += _run_columns(r, scalars_by_run.get(r.id, ()))
    seen: set[tuple[str, str]] = set()
    unique: list[Column] = []
    for c in cols:  # an operation's column shadows the default one with its header
        if (c.kind, c.header) not in seen:
            seen.add((c.kind, c.header))
            unique.append(c)
    cols = unique
    for c in asked:
        if (c.kind, c.header) not in seen:
            cols.append(c)
            seen.add((c.kind, c.header))
    return cols


def _run_columns(rec: RunRecord, scalars: Iterable[Summary]) -> list[Column]:
    """One run's default columns as Guild 0.9 takes them: its flags, step, its scalars, each
    sorted. Guild joins the runs' lists in the order it first sees each column, so a column
    only some runs have comes after those of the runs listed before it."""
    cols = [Column(name, "flag", name=name) for name in sorted(json.loads(rec.flags_json))]
    # Guild hides system stats, in a subdir's events (`val#sys/...`) too.
    tags = sorted({s.tag for s in scalars if not s.tag.rpartition("#")[2].startswith("sys/")})
    if tags:
        cols.append(Column("step", "core", name="step"))
    return cols + [Column(tag, "scalar", name=tag) for tag in tags]


def cell(col: Column, rec: RunRecord, scalars: Mapping[str, Summary]) -> Any:
    """The value of one column for one run (None when it has none)."""
    if col.spec is not None:
        return _asked(col.spec, rec, scalars)
    if col.kind == "core":
        return _core(col.name, rec, scalars)
    if col.kind == "flag":
        return json.loads(rec.flags_json).get(col.name)
    summary = scalars.get(col.name)
    return None if summary is None else summary.last_val


def _core(name: str, rec: RunRecord, scalars: Mapping[str, Summary]) -> Any:
    if name == "run":
        return rec.id[:8]
    if name == "operation":
        return rec.op_name + (" [marked]" if rec.marked else "")
    if name == "started":
        return rundir.format_us(rec.started_us)
    if name == "time":
        return fmt_duration(rec)
    if name == "status":
        return rec.status
    if name == "label":
        return rec.label
    if name == "step":
        return max((s.last_step for s in scalars.values()), default=None)
    raise KeyError(name)


def _asked(spec: query.Column, rec: RunRecord, scalars: Mapping[str, Summary]) -> Any:
    if spec.kind == "flag":
        return json.loads(rec.flags_json).get(spec.name)
    if spec.kind == "attr":
        return attr_value(spec.name, rec)
    summary = scalars.get(spec.name)
    if summary is None:
        return None
    return summary_value(summary, spec.qualifier, spec.step)


def summary_value(s: Summary, qualifier: str | None, step: bool = False) -> Any:
    if qualifier == "avg":
        return None if step else (s.total / s.count if s.count else None)
    if qualifier in ("total", "count"):
        return None if step else getattr(s, qualifier)
    return getattr(s, f"{qualifier}_step" if step else f"{qualifier}_val")


def attr_value(name: str, rec: RunRecord) -> Any:
    values = {
        "id": rec.id,
        "run": rec.id[:8],
        "label": rec.label,
        "status": rec.status,
        "started": rundir.format_us(rec.started_us),
        "stopped": rundir.format_us(rec.stopped_us),
        "time": fmt_duration(rec),
        "op": rec.op_name,
        "operation": rec.op_name,
        "exit_status": rec.exit_status,
        "user": rec.user,
        "marked": rec.marked,
        "tags": " ".join(json.loads(rec.tags_json)),
        "sourcecode": rec.digest[:8],
        "sourcecode_digest": rec.digest,
    }
    return values.get(name)


def rows(cols: Sequence[Column], recs: Iterable[RunRecord],
         scalars_by_run: Mapping[str, Iterable[Summary]]) -> list[tuple[str, list[Any]]]:
    out = []
    for rec in recs:
        scalars = {s.tag: s for s in scalars_by_run.get(rec.id, ())}
        out.append((rec.id, [cell(c, rec, scalars) for c in cols]))
    return out
