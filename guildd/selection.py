"""Which runs a request is about: a RunFilter turned into SQL over the index, a filter
expression checked in Python, an order, and run specs (index, id, prefix, range) applied to
the ordered list, as Guild's run arguments work everywhere a command takes RUN."""

import dataclasses
import datetime
import json
import re
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Optional

from guild_common import errors, query, runfilter

RANGE = re.compile(r"^([0-9]*):([0-9]*)$")
INDEX = re.compile(r"^[0-9]+$")
# An index with more digits than this is past the end of any list; int() of a few thousand
# digits raises (Python's conversion limit), and a run spec may be any text a client sends.
_INDEX_DIGITS = 18


def _index(digits: str) -> int:
    """A run index from ASCII digits (unicode digits such as '²' are not an index)."""
    return int(digits) if len(digits.lstrip("0")) <= _INDEX_DIGITS else 10**_INDEX_DIGITS

# Scalar summary columns for a column's qualifier (`min loss` -> min_val).
QUALIFIER_COLUMNS = {
    "last": ("last_val", "last_step"),
    "first": ("first_val", "first_step"),
    "min": ("min_val", "min_step"),
    "max": ("max_val", "max_step"),
    "total": ("total", None),
    "count": ("count", None),
    "avg": ("(s.total / s.count)", None),
}

# Attribute columns that are index columns.
ATTR_COLUMNS = {
    "id": "runs.id",
    "run": "runs.id",
    "label": "runs.label",
    "status": "runs.status",
    "started": "runs.started_us",
    "stopped": "runs.stopped_us",
    "time": "(runs.stopped_us - runs.started_us)",
    "op": "runs.op_name",
    "operation": "runs.op_name",
    "exit_status": "runs.exit_status",
    "user": "runs.user",
    "marked": "runs.marked",
    "sourcecode": "runs.digest",
    "sourcecode_digest": "runs.digest",
}


@dataclasses.dataclass(frozen=True)
class Criteria:
    statuses: tuple = ()
    not_statuses: tuple = ()
    labels: tuple = ()
    unlabeled: bool = False
    marked: bool = False
    unmarked: bool = False
    started_after_us: int = 0
    started_before_us: int = 0
    digests: tuple = ()
    ops: tuple = ()
    tags: tuple = ()
    comments: tuple = ()
    expr: str = ""
    deleted: bool = False
    exclude_batch: bool = False


def _contains(column: str) -> str:
    """SQL that is true when `column` holds the parameter, ignoring ASCII case (as LIKE
    '%text%' does): instr(), because SQLite refuses a LIKE pattern over 50,000 bytes, and a
    filter's text is whatever the client sent."""
    return f"instr(lower({column}), lower(?)) > 0"


def where_clause(c: Criteria) -> tuple[str, list[Any]]:
    """SQL conditions and parameters for everything in `c` but the expression."""
    conds: list[str] = ["runs.deleted = ?"]
    params: list[Any] = [1 if c.deleted else 0]

    def any_of(template: str, values: Sequence[Any]) -> None:
        conds.append("(" + " OR ".join(template for _ in values) + ")")
        params.extend(values)

    if c.statuses:
        any_of("runs.status = ?", c.statuses)
    for status in c.not_statuses:
        conds.append("runs.status != ?")
        params.append(status)
    if c.labels:
        any_of(_contains("runs.label"), list(c.labels))
    if c.unlabeled:
        conds.append("runs.label = ''")
    if c.marked:
        conds.append("runs.marked = 1")
    if c.unmarked:
        conds.append("runs.marked = 0")
    if c.started_after_us:
        conds.append("runs.started_us >= ?")
        params.append(c.started_after_us)
    if c.started_before_us:
        conds.append("runs.started_us > 0 AND runs.started_us < ?")
        params.append(c.started_before_us)
    if c.digests:
        any_of("instr(lower(runs.digest), lower(?)) = 1", list(c.digests))  # a prefix
    if c.ops:
        any_of(_contains("runs.op_name"), list(c.ops))
    if c.tags:
        any_of(_contains("runs.tags_json"), [json.dumps(t) for t in c.tags])
    if c.exclude_batch:
        conds.append("runs.batch = 0")
    return " AND ".join(conds), params


def order_values(db: sqlite3.Connection, spec: str) -> dict[str, Any]:
    """{run id: value} of the column `spec` names, for the runs that have one."""
    col = parse_sort_column(spec)
    if col.kind == "scalar":
        value, step = QUALIFIER_COLUMNS[col.qualifier]  # type: ignore[index]  # a scalar column has one
        expr = f"s.{step}" if col.step and step else value if value.startswith("(") else f"s.{value}"
        return dict(db.execute(f"SELECT s.run_id, {expr} FROM scalars s WHERE s.tag = ?", (col.name,)))
    if col.kind == "flag":
        return dict(db.execute("SELECT id, json_extract(flags_json, ?) FROM runs", (f'$."{col.name}"',)))
    column = ATTR_COLUMNS.get(col.name)
    if column is None:
        raise errors.InvalidArgument(f"cannot order runs by attribute '{col.name}'")
    return dict(db.execute(f"SELECT runs.id, {column} FROM runs"))


def _sortable(value: Any) -> tuple[int, Any, str]:
    # Numbers before text when a column mixes them; text compares case-insensitively.
    if isinstance(value, (int, float)):
        return (0, value, "")
    return (1, 0, str(value).lower())


def sort_ids(ids: Iterable[str], values: Mapping[str, Any], descending: bool) -> list[str]:
    """`ids` ordered by their values (runs without one last, either way); ties keep the
    order they came in (latest first)."""
    have = [i for i in ids if values.get(i) is not None]
    missing = [i for i in ids if values.get(i) is None]
    have.sort(key=lambda i: _sortable(values[i]), reverse=descending)
    return have + missing


def parse_sort_column(spec: str) -> query.Column:
    return query.parse_column(spec, what="col spec")


def ordered_ids(db: sqlite3.Connection, criteria: Criteria, order: tuple[str, bool] | None = None,
                want: int = 0) -> list[str]:
    """Ids of the runs `criteria` keeps, latest first (or by `order`: (spec, descending)).
    With `want`, only the first `want` need be right (the rest may be left out)."""
    where, params = where_clause(criteria)
    sql = f"SELECT runs.id FROM runs WHERE {where} ORDER BY runs.sort_us DESC, runs.id"
    if want and order is None and not criteria.expr and not criteria.comments:
        sql += f" LIMIT {int(want)}"
    ids = [row[0] for row in db.execute(sql, params)]
    if criteria.comments:
        ids = _matching_comments(db, ids, criteria.comments)
    if criteria.expr:
        ids = _matching_expr(db, ids, criteria.expr)
    if order is not None:
        spec, descending = order
        col = parse_sort_column(spec)
        if want and col.kind == "scalar" and col.qualifier == "last" and not col.step:
            return _top_by_last(db, ids, col.name, descending, want)
        ids = sort_ids(ids, order_values(db, spec), descending)
    return ids


def _top_by_last(db: sqlite3.Connection, ids: list[str], tag: str, descending: bool, want: int) -> list[str]:
    """The first `want` of `ids` by a scalar's last value, read in order from its index and
    stopping early: `compare --min loss --top 10` over 100k runs reads a few rows."""
    keep = set(ids)
    direction = "DESC" if descending else "ASC"
    rows = db.execute(
        f"SELECT run_id, last_val FROM scalars WHERE tag = ? AND last_val IS NOT NULL ORDER BY last_val {direction}",
        (tag,),
    )
    top: list[tuple[str, Any]] = []
    for run_id, value in rows:
        if run_id not in keep:
            continue
        if len(top) >= want and value != top[-1][1]:
            break
        top.append((run_id, value))
    # Ties keep the latest-first order, as the full sort does.
    position = {run_id: i for i, run_id in enumerate(ids)}
    top.sort(key=lambda r: (-r[1] if descending else r[1], position[r[0]]))
    chosen = [run_id for run_id, _ in top[:want]]
    if len(chosen) < want:
        have = set(chosen) | {r for r, _ in top}
        chosen += [i for i in ids if i not in have][: want - len(chosen)]
    return chosen


def count(db: sqlite3.Connection, criteria: Criteria) -> int:
    """How many runs `criteria` keeps."""
    if criteria.expr or criteria.comments:
        return len(ordered_ids(db, criteria))
    where, params = where_clause(criteria)
    return db.execute(f"SELECT count(*) FROM runs WHERE {where}", params).fetchone()[0]


def _matching_expr(db: sqlite3.Connection, ids: list[str], expr: str) -> list[str]:
    flt = runfilter.parse_filter(expr)
    wanted = set(ids)
    scalars: dict[str, dict[str, Any]] = {}
    for run_id, tag, last in db.execute("SELECT run_id, tag, last_val FROM scalars"):
        if run_id in wanted:
            scalars.setdefault(run_id, {})[tag] = last
    rows: dict[str, _Row] = {}
    for r in db.execute("SELECT id, op_name, label, status, flags_json, tags_json, started_us, stopped_us, marked FROM runs"):
        if r[0] in wanted:
            rows[r[0]] = _Row(
                flags=json.loads(r[4]),
                scalars=scalars.get(r[0], {}),
                attrs={"id": r[0], "op": r[1], "operation": r[1], "label": r[2], "status": r[3],
                       "tags": json.loads(r[5]), "started": _shown_time(r[6]), "stopped": _shown_time(r[7]),
                       "marked": bool(r[8])},
            )
    return [i for i in ids if flt.matches(rows[i])]


def comments_match(comments: Iterable[Mapping[str, Any]], texts: Iterable[str]) -> bool:
    """Guild's `--comment VAL`: a comment whose body, user or host contains one of `texts`,
    ignoring case."""
    wanted = [t.lower() for t in texts]
    return any(t in str(c.get(key) or "").lower() for c in comments for key in ("body", "user", "host") for t in wanted)


def _matching_comments(db: sqlite3.Connection, ids: list[str], texts: Sequence[str]) -> list[str]:
    wanted = set(ids)
    rows = db.execute("SELECT id, comments_json FROM runs WHERE comments_json != '[]'")
    keep = {run_id for run_id, comments in rows if run_id in wanted and comments_match(json.loads(comments), texts)}
    return [i for i in ids if i in keep]


def _shown_time(us: int) -> Optional[str]:
    """A time as Guild shows and compares it in filters: local 'YYYY-MM-DD HH:MM:SS'."""
    return datetime.datetime.fromtimestamp(us / 1e6).strftime("%Y-%m-%d %H:%M:%S") if us else None


@dataclasses.dataclass(frozen=True)
class _Row:
    flags: dict
    scalars: dict
    attrs: dict


def apply_specs(ids: Sequence[str], specs: Iterable[str]) -> list[str]:
    """The ids that run specs name, in the order given (each spec's runs latest first)."""
    if not specs:
        return list(ids)
    chosen: list[str] = []
    seen: set[str] = set()
    for spec in specs:
        for run_id in _ids_for_spec(ids, spec.strip()):
            if run_id not in seen:
                seen.add(run_id)
                chosen.append(run_id)
    return chosen


def one_id(ids: Sequence[str], spec: str) -> str:
    """The one run `spec` names among `ids` (a range names its first); NotFound when it names
    none, as a range past the end does (`5:9` of three runs)."""
    chosen = apply_specs(ids, [spec])
    if not chosen:
        raise errors.NotFound(f"no run matches '{spec[:100]}'")
    return chosen[0]


def _ids_for_spec(ids: Sequence[str], spec: str) -> Sequence[str]:
    m = RANGE.match(spec)
    if m:
        start = _index(m.group(1)) if m.group(1) else 1
        end = _index(m.group(2)) if m.group(2) else len(ids)
        if start < 1 or end < start:
            raise errors.InvalidArgument(f"invalid run range '{spec[:100]}'")
        return ids[start - 1 : end]
    if INDEX.match(spec) and 1 <= _index(spec) <= len(ids):
        return [ids[_index(spec) - 1]]
    # An id or a unique prefix (a number past the end of the list is tried as a prefix too).
    matches = [i for i in ids if i.startswith(spec)] if spec else []
    if not matches:
        raise errors.NotFound(f"could not find run '{spec}'")
    if len(matches) > 1:
        shown = ", ".join(m[:8] for m in matches[:5])
        raise errors.InvalidArgument(
            f"run '{spec}' is ambiguous: it matches {len(matches)} runs ({shown}{', ...' if len(matches) > 5 else ''})"
        )
    return matches
