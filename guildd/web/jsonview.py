"""The view's JSON: the servicer's answers (protobuf) as the page reads them (the shapes: ARCHITECTURE.md,
'The web view'). Times are milliseconds since the
epoch, or null; int64 fields are numbers, not the strings protobuf's JSON mapping makes."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from guild_common.pb import guild_pb2 as pb

QUEUED = ("staged", "pending")


def _ms(us: int) -> int | None:
    return us // 1000 if us else None


def _json(text: str) -> Any:
    try:
        return json.loads(text) if text else {}
    except ValueError:
        return {}


def run(msg: pb.Run, full: bool = False) -> dict[str, Any]:
    """A Run object; `full` adds what only a run's own page shows."""
    out: dict[str, Any] = {
        "id": msg.id,
        "short_id": msg.id[:8],
        "op": msg.op_name,
        "status": msg.status,
        "label": msg.label,
        "started": _ms(msg.started_us),
        "stopped": _ms(msg.stopped_us),
        "user": msg.user,
        "tags": list(msg.tags),
        "marked": msg.marked,
        "deleted": msg.deleted,
        "pid": msg.pid or None,
        "exit_status": msg.exit_status if msg.has_exit_status else None,
        "flags": _json(msg.flags_json),
        "scalars": {s.tag: s.last for s in msg.scalars},
        "is_batch": "+" in msg.op_name,
        "queued": msg.status in QUEUED,
    }
    if full:
        out.update({
            "run_dir": msg.run_dir,
            "opref": msg.opref,
            "sourcecode_digest": msg.sourcecode_digest,
            "command": msg.command,
            "from": getattr(msg, "from"),
            "vcs_commit": msg.vcs_commit,
            "attrs": _json(msg.attrs_json),
            "env": dict(msg.env),
            "deps": _json(msg.deps_json),
            "comments": [{"user": c.user, "host": c.host, "time": _ms(c.time_us), "body": c.body} for c in msg.comments],
            "scalar_summaries": [
                {"tag": s.tag, "first": s.first, "first_step": s.first_step, "last": s.last, "last_step": s.last_step,
                 "min": s.min, "min_step": s.min_step, "max": s.max, "max_step": s.max_step, "count": s.count}
                for s in msg.scalars
            ],
        })
    return out


def runs(msgs: Iterable[pb.Run]) -> list[dict[str, Any]]:
    return [run(m) for m in msgs]


def columns(rows: Iterable[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """The flag names and scalar tags the rows have, in first-seen order (the table's columns)."""
    flags: dict[str, None] = {}
    scalars: dict[str, None] = {}
    for row in rows:
        flags.update(dict.fromkeys(row["flags"]))
        scalars.update(dict.fromkeys(row["scalars"]))
    return list(flags), list(scalars)


def queue(msg: pb.ListQueueResponse) -> dict[str, Any]:
    return {
        "paused": msg.paused,
        "entries": [
            {"position": e.position, "run": run(e.run), "priority": e.options.priority, "reason": e.reason,
             "queue": e.options.queue, "queued": _ms(e.queued_us),
             "eta": _ms(e.eta_us) if e.HasField("eta_us") else None,
             "gpus": e.resources.gpus or len(e.resources.devices)}
            for e in msg.entries
        ],
        "holdings": [{"run_id": h.run_id, "user": h.user, "devices": list(h.devices)} for h in msg.holdings],
        "users": [{"user": u.user, "gpus_held": u.gpus_held, "share": u.share, "waiting": u.waiting} for u in msg.users],
        "gpu_count": msg.gpu_count,
    }


def gpus(msg: pb.GetResourcesResponse) -> dict[str, Any]:
    return {
        "backend": msg.backend,
        "reason": msg.reason,
        "gpus": [
            {"index": g.index, "name": g.name, "uuid": g.uuid, "memory_total": g.memory_total,
             "memory_used": g.memory_used, "utilization": g.utilization,
             "processes": [{"pid": p.pid, "user": p.user, "used_memory": p.used_memory, "run_id": p.run_id}
                           for p in g.processes]}
            for g in msg.gpus
        ],
        "cpu_count": msg.cpu_count,
        "memory_total": msg.memory_total,
        "memory_available": msg.memory_available,
    }


def batch(msg: pb.GetBatchResponse) -> dict[str, Any]:
    trials = [{"number": t.number, "run": run(t.run), "objective": t.objective if t.HasField("objective") else None}
              for t in msg.trials]
    names: dict[str, None] = {}
    for t in msg.trials:
        names.update(dict.fromkeys(_json(t.run.flags_json)))
    return {"run": run(msg.run), "objective": {"column": msg.objective, "maximize": msg.maximize},
            "flag_names": list(names), "trials": trials}


def _cell(cell: pb.Cell) -> Any:
    kind = cell.WhichOneof("value")
    return getattr(cell, kind) if kind else None


def compare(msg: pb.CompareRunsResponse) -> dict[str, Any]:
    return {"columns": [{"header": c.header, "kind": c.kind} for c in msg.columns],
            "rows": [{"run_id": r.run_id, "cells": [_cell(c) for c in r.cells]} for r in msg.rows]}


def series(msg: pb.GetRunScalarsResponse) -> dict[str, Any]:
    return {"series": [{"tag": s.tag, "steps": list(s.steps), "values": list(s.values)} for s in msg.series]}


def files(msg: pb.ListRunFilesResponse) -> dict[str, Any]:
    return {"files": [{"path": f.path, "is_dir": f.is_dir, "is_link": f.is_link, "size": f.size} for f in msg.files]}
