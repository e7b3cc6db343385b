"""The view's live updates, as server-sent events: `changed` when the daemon's state moves
(the page refetches what it shows), and a run's output as it is written (WatchRun, the
stream `guildctl watch` reads). Both end when the daemon stops (`closing`)."""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Hashable
from typing import Any

from aiohttp import web

from guild_common.pb import guild_pb2 as pb
from guildd.web import api, jsonview
from guildd.web.calls import Calls

CHECK_EVERY = 0.5  # seconds between looks at the daemon's state version
PING_EVERY = 15.0  # seconds of silence before a comment keeps proxies and the browser from closing
DEFAULT_TAIL = 200


def event(name: str, data: Any) -> bytes:
    """One server-sent event (its data JSON: one line, whatever it holds)."""
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


async def _open(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                       "X-Accel-Buffering": "no"})
    await resp.prepare(request)
    return resp


class Live:
    """The two streams. `version` is the daemon's state version (any change of the index or
    the queue changes it); `closing` is set when the daemon stops."""

    def __init__(self, calls: Calls, version: Callable[[], Hashable], closing: asyncio.Event) -> None:
        self.calls = calls
        self.version = version
        self.closing = closing

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/api/events", self.events), web.get("/api/runs/{run}/output", self.output)]

    async def _pause(self, seconds: float) -> bool:
        """Sleeps; False once the daemon is stopping."""
        try:
            await asyncio.wait_for(self.closing.wait(), seconds)
        except asyncio.TimeoutError:
            return True
        return False

    async def events(self, request: web.Request) -> web.StreamResponse:
        resp = await _open(request)
        seen = self.version()
        count = 0
        quiet = 0.0
        try:
            await resp.write(event("changed", {"version": count}))
            while await self._pause(CHECK_EVERY):
                now = self.version()
                if now != seen:
                    seen, count, quiet = now, count + 1, 0.0
                    await resp.write(event("changed", {"version": count}))
                else:
                    quiet += CHECK_EVERY
                    if quiet >= PING_EVERY:
                        quiet = 0.0
                        await resp.write(b": ping\n\n")
        except ConnectionError:
            pass  # the page went away
        return resp

    async def output(self, request: web.Request) -> web.StreamResponse:
        tail = api.int_param(request.query.get("tail"), "tail", DEFAULT_TAIL, 0, 1 << 20)
        message = pb.WatchRunRequest(run=request.match_info["run"], tail=tail)
        stream = self.calls.stream(request["token"], "WatchRun", message)
        pending: asyncio.Future[Any] = asyncio.ensure_future(anext(stream))
        stop = asyncio.ensure_future(self.closing.wait())
        try:
            first = await pending  # an unknown run fails here, before the stream's headers
            resp = await _open(request)
            await resp.write(event("run", {"run": jsonview.run(first.run)}))
            await self._relay(resp, stream, stop)
            return resp
        finally:
            stop.cancel()
            await _close(stream)

    async def _relay(self, resp: web.StreamResponse, stream: AsyncIterator[Any], stop: "asyncio.Future[Any]") -> None:
        """Writes the stream's output and end as events, with a ping after each PING_EVERY
        seconds of silence, until it ends, the page goes or the daemon stops."""
        decoders = {False: codecs.getincrementaldecoder("utf-8")("replace"),
                    True: codecs.getincrementaldecoder("utf-8")("replace")}
        pending: asyncio.Future[Any] | None = None
        try:
            while True:
                pending = pending or asyncio.ensure_future(anext(stream))
                done, _ = await asyncio.wait({pending, stop}, timeout=PING_EVERY, return_when=asyncio.FIRST_COMPLETED)
                if stop in done:
                    return
                if pending not in done:
                    await resp.write(b": ping\n\n")
                    continue
                try:
                    item = pending.result()
                except StopAsyncIteration:
                    return
                pending = None
                kind = item.WhichOneof("event")
                if kind in ("output", "stderr"):
                    text = decoders[kind == "stderr"].decode(getattr(item, kind))
                    if text:
                        await resp.write(event("output", {"text": text, "stderr": kind == "stderr"}))
                elif kind == "ended":
                    await resp.write(event("ended", {"run": jsonview.run(item.ended)}))
        except ConnectionError:
            pass  # the page went away
        finally:
            if pending is not None and not pending.done():
                pending.cancel()
                with contextlib.suppress(BaseException):
                    await pending


async def _close(stream: AsyncIterator[Any]) -> None:
    """Ends a servicer stream (an async generator) whose next item no one waits for."""
    with contextlib.suppress(BaseException):
        await stream.aclose()  # type: ignore[attr-defined]  # an async generator's
