"""The view's JSON API: each handler turns an HTTP request into the servicer request the CLI
would send for the same thing, calls it as the token's user (guildd.web.calls), and answers
its JSON (guildd.web.jsonview). Reads are GET; what changes something is POST with a JSON
body (guildd.web.auth checks the CSRF header first). Bad input is a 400 with one line."""

from __future__ import annotations

import datetime
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from guild_common import errors, flags as flaglib, timerange
from guild_common.pb import guild_pb2 as pb
from guildd.web import jsonview
from guildd.web.calls import Calls

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

STATUSES = ("running", "completed", "error", "terminated", "staged", "pending")
MAX_PER_PAGE = 500
FILE_LIMIT = 1 << 20  # bytes of a file the page shows
SERIES_POINTS = 5000  # values per scalar a plot gets


class BadInput(Exception):
    """A request the view can't make sense of: 400 with this one line."""


def int_param(text: str | None, name: str, default: int, low: int, high: int) -> int:
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise BadInput(f"{name} must be a whole number, not {text[:40]!r}") from None
    if not low <= value <= high:
        raise BadInput(f"{name} must be between {low} and {high}, not {value}")
    return value


def run_filter(query: Any, now: datetime.datetime | None = None) -> pb.RunFilter:
    """A RunFilter from the runs page's query, as `guildctl runs` options make one."""
    statuses = query.getall("status", [])
    for status in statuses:
        if status not in STATUSES:
            raise BadInput(f"unknown status {status[:40]!r}: expected one of {', '.join(STATUSES)}")
    f = pb.RunFilter(
        ops=query.getall("op", []), labels=query.getall("label", []), tags=query.getall("tag", []),
        digests=query.getall("digest", []), comments=query.getall("comment", []), statuses=statuses,
        expr=query.get("filter", ""), unlabeled=query.get("unlabeled") == "1", marked=query.get("marked") == "1",
        unmarked=query.get("unmarked") == "1", deleted=query.get("deleted") == "1",
    )
    started = query.get("started", "")
    if started:
        start, end = timerange.parse(started, now or datetime.datetime.now())
        f.started_after_us = timerange.to_us(start) or 0
        f.started_before_us = timerange.to_us(end) or 0
    return f


def list_request(query: Any) -> tuple[pb.ListRunsRequest, int, int]:
    """The ListRuns request of a runs page, its page number and page size."""
    per = int_param(query.get("per"), "per", 50, 1, MAX_PER_PAGE)
    page = int_param(query.get("page"), "page", 1, 1, (2**31 - 1) // per + 1)  # ListRuns' offset is 32-bit
    request = pb.ListRunsRequest(filter=run_filter(query), limit=per, offset=(page - 1) * per, with_scalars=True)
    sort, order = query.get("sort", "started"), query.get("order", "")
    if order not in ("", "asc", "desc"):
        raise BadInput(f"order must be asc or desc, not {order[:40]!r}")
    if sort != "started" or order == "asc":
        if order == "desc":
            request.max = sort
        else:
            request.min = sort
    return request, page, per


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise BadInput("the request's body is not JSON") from None
    if not isinstance(body, dict):
        raise BadInput("the request's body must be a JSON object")
    return body


def _strs(body: dict[str, Any], name: str, required: bool = True) -> list[str]:
    value = body.get(name, [] if not required else None)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value) or (required and not value):
        raise BadInput(f"{name!r} must be a list of {'run ids' if name == 'runs' else 'strings'}")
    return value


def _str(body: dict[str, Any], name: str, default: str | None = None) -> str:
    value = body.get(name, default)
    if not isinstance(value, str):
        raise BadInput(f"{name!r} must be a string")
    return value


def _bool(body: dict[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise BadInput(f"{name!r} must be true or false")
    return value


def _selection(runs: list[str]) -> pb.RunSelection:
    return pb.RunSelection(runs=runs)


class Api:
    """The handlers; `calls` reaches the servicer, `session` says who the token's user is."""

    def __init__(self, calls: Calls, session: Callable[[str], Awaitable[dict[str, Any]]]) -> None:
        self.calls = calls
        self.session = session

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/session", self.get_session),
            web.get("/api/runs", self.list_runs),
            web.get("/api/runs/{run}", self.get_run),
            web.get("/api/runs/{run}/scalars", self.get_scalars),
            web.get("/api/runs/{run}/files", self.list_files),
            web.get("/api/runs/{run}/file", self.read_file),
            web.get("/api/queue", self.get_queue),
            web.get("/api/gpus", self.get_gpus),
            web.get("/api/batches/{run}", self.get_batch),
            web.get("/api/compare", self.compare),
            web.post("/api/stop", self.stop),
            web.post("/api/start", self.start),
            web.post("/api/priority", self.priority),
            web.post("/api/cancel", self.cancel),
            web.post("/api/label", self.label),
            web.post("/api/tag", self.tag),
            web.post("/api/mark", self.mark),
            web.post("/api/delete", self.delete),
            web.post("/api/clone", self.clone),
        ]

    async def _call(self, request: web.Request, method: str, message: Any) -> Any:
        return await self.calls.unary(request["token"], method, message)

    async def get_session(self, request: web.Request) -> web.Response:
        return web.json_response(await self.session(request["token"]))

    async def list_runs(self, request: web.Request) -> web.Response:
        message, page, per = list_request(request.query)
        resp = await self._call(request, "ListRuns", message)
        rows = jsonview.runs(resp.runs)
        for i, row in enumerate(rows, (page - 1) * per + 1):
            row["index"] = i
        flag_columns, scalar_columns = jsonview.columns(rows)
        return web.json_response({"total": resp.total, "page": page, "per": per, "runs": rows,
                                  "flag_columns": flag_columns, "scalar_columns": scalar_columns})

    async def get_run(self, request: web.Request) -> web.Response:
        resp = await self._call(request, "GetRun", pb.GetRunRequest(run=request.match_info["run"]))
        return web.json_response({"run": jsonview.run(resp.run, full=True)})

    async def get_scalars(self, request: web.Request) -> web.Response:
        message = pb.GetRunScalarsRequest(run=request.match_info["run"], max_points=SERIES_POINTS)
        return web.json_response(jsonview.series(await self._call(request, "GetRunScalars", message)))

    async def list_files(self, request: web.Request) -> web.Response:
        path = request.query.get("path", "")
        message = pb.ListRunFilesRequest(selection=_selection([request.match_info["run"]]), path=path)
        return web.json_response(jsonview.files(await self._call(request, "ListRunFiles", message)))

    async def read_file(self, request: web.Request) -> web.Response:
        path = request.query.get("path", "")
        if not path:
            raise BadInput("path is missing: which file to show")
        message = pb.ReadRunFileRequest(selection=_selection([request.match_info["run"]]), path=path)
        data = b""
        truncated = False
        async for chunk in self.calls.stream(request["token"], "ReadRunFile", message):
            data += chunk.data
            if len(data) > FILE_LIMIT:
                data, truncated = data[:FILE_LIMIT], True
                break
        binary = b"\0" in data[:8192]
        text = "" if binary else data.decode("utf-8", errors="replace")
        return web.json_response({"path": path, "size": len(data), "text": text, "truncated": truncated, "binary": binary})

    async def get_queue(self, request: web.Request) -> web.Response:
        return web.json_response(jsonview.queue(await self._call(request, "ListQueue", pb.ListQueueRequest())))

    async def get_gpus(self, request: web.Request) -> web.Response:
        return web.json_response(jsonview.gpus(await self._call(request, "GetResources", pb.GetResourcesRequest())))

    async def get_batch(self, request: web.Request) -> web.Response:
        resp = await self._call(request, "GetBatch", pb.GetBatchRequest(run=request.match_info["run"]))
        return web.json_response(jsonview.batch(resp))

    async def compare(self, request: web.Request) -> web.Response:
        runs = [r for r in request.query.get("runs", "").split(",") if r]
        if not runs:
            raise BadInput("runs is missing: which runs to compare (ids, comma separated)")
        message = pb.CompareRunsRequest(selection=_selection(runs))
        return web.json_response(jsonview.compare(await self._call(request, "CompareRuns", message)))

    async def _runs_answer(self, resp: Any) -> web.Response:
        return web.json_response({"runs": jsonview.runs(resp.runs)})

    async def stop(self, request: web.Request) -> web.Response:
        body = await _body(request)
        return await self._runs_answer(await self._call(request, "StopRuns", pb.StopRunsRequest(runs=_strs(body, "runs"))))

    async def start(self, request: web.Request) -> web.Response:
        body = await _body(request)
        resp = await self._call(request, "RestartRun", pb.RestartRunRequest(run=_str(body, "run"), start=True))
        return web.json_response({"run": jsonview.run(resp.run)})

    async def priority(self, request: web.Request) -> web.Response:
        body = await _body(request)
        value = body.get("priority")
        if not isinstance(value, int) or isinstance(value, bool) or not -(2**31) <= value < 2**31:
            raise BadInput("'priority' must be a whole number (32-bit)")
        message = pb.SetQueuePriorityRequest(runs=_strs(body, "runs"), priority=value)
        return await self._runs_answer(await self._call(request, "SetQueuePriority", message))

    async def cancel(self, request: web.Request) -> web.Response:
        body = await _body(request)
        return await self._runs_answer(await self._call(request, "CancelQueued", pb.CancelQueuedRequest(runs=_strs(body, "runs"))))

    async def label(self, request: web.Request) -> web.Response:
        body = await _body(request)
        label = _str(body, "label", "")
        action = pb.LABEL_SET if label else pb.LABEL_CLEAR
        message = pb.LabelRunsRequest(selection=_selection(_strs(body, "runs")), action=action, value=label)
        return await self._runs_answer(await self._call(request, "LabelRuns", message))

    async def tag(self, request: web.Request) -> web.Response:
        body = await _body(request)
        message = pb.TagRunsRequest(selection=_selection(_strs(body, "runs")), add=_strs(body, "add", required=False),
                                    remove=_strs(body, "remove", required=False))
        return await self._runs_answer(await self._call(request, "TagRuns", message))

    async def mark(self, request: web.Request) -> web.Response:
        body = await _body(request)
        message = pb.MarkRunsRequest(selection=_selection(_strs(body, "runs")), clear=_bool(body, "clear"))
        return await self._runs_answer(await self._call(request, "MarkRuns", message))

    async def delete(self, request: web.Request) -> web.Response:
        body = await _body(request)
        message = pb.DeleteRunsRequest(selection=_selection(_strs(body, "runs")), permanent=_bool(body, "permanent"))
        return await self._runs_answer(await self._call(request, "DeleteRuns", message))

    async def clone(self, request: web.Request) -> web.Response:
        """A new run like `run`, with the flag values the form changed (strings, decoded as
        the CLI decodes NAME=VALUE); staged unless `start`."""
        body = await _body(request)
        proto = (await self._call(request, "GetRun", pb.GetRunRequest(run=_str(body, "run")))).run
        known = json.loads(proto.flags_json or "{}")
        given = body.get("flags", {})
        if not isinstance(given, dict) or not all(isinstance(v, str) for v in given.values()):
            raise BadInput("'flags' must be an object of flag names and values (strings)")
        for name in given:
            if name not in known:
                raise BadInput(f"unsupported flag {name[:80]!r} (run {proto.id[:8]} has no such flag)")
        try:
            flags = {name: flaglib.decode_flag_value(value) for name, value in given.items()}
        except errors.GuildError as e:
            raise BadInput(e.message) from None
        message = pb.StartProtoRunRequest(proto=proto.id, flags_json=json.dumps(flags), label=_str(body, "label", ""),
                                          stage=not _bool(body, "start"))
        resp = await self._call(request, "StartProtoRun", message)
        return web.json_response({"run": jsonview.run(resp.run)})
