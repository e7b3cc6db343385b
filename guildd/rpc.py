"""The daemon's seam around each servicer method: errors and the audit trail.

Errors: GuildError -> gRPC status, a full disk -> RESOURCE_EXHAUSTED naming GUILD_HOME (a
disk that filled is no bug of ours), anything else -> INTERNAL (logged with its traceback,
never sent to the client).

Limits: the text a request stores in the index (labels, op names, tags, comments, flag
values) is checked against guild_common.limits before the servicer sees it (LIMITED), so every
client, not just guildctl, is refused the same way: INVALID_ARGUMENT, one line naming the
field and its limit.

Audit: every request that changes something (AUDITED) leaves one line in the daemon's log,
logger "guildd.audit": who asked (the kernel-vouched caller), what (the RPC and its runs or
arguments, never a run's environment or source), and how it ended (ok with the runs it
touched, refused with the reason, or the error). Reads are not logged.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import os
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, NoReturn

import grpc
from google.protobuf import text_format

from guild_common import errors, limits
from guild_common.pb import guild_pb2 as pb
from guildd import convert, daemonlog, diskspace

log = logging.getLogger("guildd.rpc")
audit_log = logging.getLogger("guildd.audit")

MAX_LISTED = 20  # run specs or ids an audit line names; more are counted


def _code(err: errors.GuildError) -> grpc.StatusCode:
    return getattr(grpc.StatusCode, err.grpc_code, grpc.StatusCode.UNKNOWN)


async def _abort_for(context: grpc.aio.ServicerContext[Any, Any], e: Exception, name: str,
                     home: str | os.PathLike[str]) -> NoReturn:
    if diskspace.is_full(e):
        log.warning("%s: %s: %s", name, type(e).__name__, e)
        e = diskspace.full_error(home, e)
    if isinstance(e, errors.GuildError):
        await context.abort(_code(e), _bounded(e.message))
    log.exception("internal error in %s", name)
    await context.abort(grpc.StatusCode.INTERNAL, f"internal error in {name}: {type(e).__name__}: {e} (see guildd.log)")


MAX_MESSAGE = 2000  # characters of an error sent back: what a request held is echoed only in part


def _bounded(message: str) -> str:
    """An error message as sent: a huge one (a 1 MB run id echoed back) is cut, or the status
    itself would be refused for its size."""
    if len(message) <= MAX_MESSAGE:
        return message
    return f"{message[:MAX_MESSAGE]}... ({len(message) - MAX_MESSAGE} more characters)"


def mapped(method: Callable[..., Any]) -> Callable[..., Any]:
    """Wraps a servicer method (unary or server-streaming) with the error mapping, and a
    unary one that changes something (AUDITED) with its audit line. The servicer has the
    daemon (`self.daemon`), whose GUILD_HOME a full disk's error names and whose identities
    name the caller."""
    if inspect.isasyncgenfunction(method):

        @functools.wraps(method)
        async def stream(self: Any, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            try:
                async for item in method(self, request, context):
                    yield item
            except grpc.aio.AbortError:
                raise
            except Exception as e:  # the seam: every error leaves as a status
                await _abort_for(context, e, method.__name__, self.daemon.home)

        return stream

    name = method.__name__

    def audit(self: Any, request: Any, context: grpc.aio.ServicerContext[Any, Any], outcome: str) -> None:
        if name in AUDITED:  # before the answer: an abort sends its status at once
            _audit(self.daemon.identities, name, request, context, outcome)

    @functools.wraps(method)
    async def unary(self: Any, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            check_limits(name, request)
            response = await method(self, request, context)
        except grpc.aio.AbortError:
            audit(self, request, context, "aborted")
            raise
        except asyncio.CancelledError:
            audit(self, request, context, "cancelled: the client went away")
            raise
        except Exception as e:  # the seam: every error leaves as a status
            audit(self, request, context, _failure(e))
            await _abort_for(context, e, name, self.daemon.home)
        audit(self, request, context, f"ok{_touched(response)}")
        return response

    return unary


def _audit(identities: Any, name: str, request: Any, context: grpc.aio.ServicerContext[Any, Any], outcome: str) -> None:
    """Logs the audit line of a request that changes something (`identities`: the daemon's
    guildd.tokens.Identities, which name the caller)."""
    try:
        who = identities.caller(dict(context.invocation_metadata() or ())).describe()
    except errors.GuildError:
        who = "an unidentified caller"
    audit_log.info("%s", audit_line(who, name, AUDITED[name](request), outcome))


def audit_line(who: str, name: str, what: str, outcome: str) -> str:
    """One line of the audit trail: "alice (uid 1001) StopRuns runs '1' -> ok: <id>". Kept
    on one line whatever the request carried (names and values are quoted, newlines escaped)."""
    line = f"{who} {name}{' ' + what if what else ''} -> {outcome}"
    return line.replace("\r", "\\r").replace("\n", "\\n")


def _failure(e: Exception) -> str:
    if isinstance(e, errors.PermissionDenied):
        return f"refused: {e.message}"
    return f"error: {daemonlog.describe(e)}"


def _touched(response: Any) -> str:
    """": <run ids>" of the runs a response names (its `run`, its `runs`), or ""."""
    fields = {f.name: v for f, v in response.ListFields()}
    msgs = [*fields.get("runs", ()), *([fields["run"]] if "run" in fields else [])]
    ids = [getattr(m, "id", "") or getattr(m, "run_id", "") for m in msgs]
    return f": {_listed(ids)}" if ids else ""


def _listed(items: Iterable[str], sep: str = " ") -> str:
    items = list(items)
    more = f" (+{len(items) - MAX_LISTED} more)" if len(items) > MAX_LISTED else ""
    return sep.join(items[:MAX_LISTED]) + more


def _specs(specs: Iterable[str]) -> str:
    """Run specs as a request gave them (indexes, ids, prefixes), quoted."""
    return _listed((repr(s) for s in specs), ",")


def _selection(sel: pb.RunSelection) -> str:
    runs = f"runs {_specs(sel.runs)}" if sel.runs else "all runs"
    run_filter = text_format.MessageToString(sel.filter, as_one_line=True)
    return f"{runs} where {{{run_filter}}}" if run_filter else runs


def _flag(on: bool, word: str) -> str:
    return f" {word}" if on else ""


# The requests that change something, and what each one's audit line says it asked for.
AUDITED: dict[str, Callable[[Any], str]] = {
    "StartRun": lambda r: f"op {r.spec.op_name!r}{_flag(r.stage, 'staged')}{_flag(r.needed, 'needed')}",
    "StartBatch": lambda r: f"op {r.batch_op_name!r}{_flag(r.stage, 'staged')}{_flag(r.needed, 'needed')}",
    "StartProtoRun": lambda r: f"like run {r.proto!r}{_flag(r.stage, 'staged')}",
    "RestartRun": lambda r: f"run {r.run!r}{_flag(r.start, 'start')}{_flag(r.needed, 'needed')}",
    "StopRuns": lambda r: f"runs {_specs(r.runs)}" if r.runs else "every running run",
    "LabelRuns": lambda r: f"{_selection(r.selection)} {convert.LABEL_ACTIONS.get(r.action, '?')} {r.value!r}",
    "MarkRuns": lambda r: f"{_selection(r.selection)}{_flag(r.clear, 'clear')}",
    "TagRuns": lambda r: (f"{_selection(r.selection)}{_flag(r.clear, 'clear')} add {list(r.add)!r} remove {list(r.remove)!r}"
                          f"{_flag(r.sync_labels, 'sync-labels')}"),
    "CommentRuns": lambda r: f"{_selection(r.selection)} {convert.COMMENT_ACTIONS.get(r.action, '?')}"
                             f"{f' {r.index}' if r.action == pb.COMMENT_DELETE else ''}",
    "DeleteRuns": lambda r: f"{_selection(r.selection)}{_flag(r.permanent, 'permanent')}",
    "RestoreRuns": lambda r: _selection(r.selection),
    "PurgeRuns": lambda r: _selection(r.selection),
    "ExportRuns": lambda r: f"{_selection(r.selection)} to {r.dir!r}{_flag(r.move, 'move')}",
    "ImportRuns": lambda r: f"{_selection(r.selection)} from {r.dir!r}{_flag(r.move, 'move')}",
    "ConfigureQueue": lambda r: text_format.MessageToString(r, as_one_line=True),
    "SetQueuePriority": lambda r: f"runs {_specs(r.runs)} priority {r.priority}",
    "CancelQueued": lambda r: f"runs {_specs(r.runs)}",
    "ShutdownDaemon": lambda r: "",
    "StartView": lambda r: f"host {r.host or '127.0.0.1'!r} port {r.port}",  # never the token it answers with
}


def check_limits(name: str, request: Any) -> None:
    """Refuses (InvalidArgument) a request whose text for the index is over a limit."""
    check = LIMITED.get(name)
    problem = check(request) if check else None
    if problem:
        raise errors.InvalidArgument(problem)


def _spec_problem(spec: pb.RunSpec) -> str | None:
    """A run spec's stored text, and its pipeline steps' specs."""
    return limits.first_problem([
        limits.too_long("the op name", spec.op_name, limits.MAX_OP_NAME),
        limits.too_long("the label", spec.label, limits.MAX_LABEL),
        limits.tags_problem("tags", spec.tags),
        limits.flags_json_problem(spec.flags_json),
        *(limits.too_long("a step name", step.name, limits.MAX_OP_NAME) or _spec_problem(step.spec) for step in spec.steps),
    ])


# The requests that store text in the index, and the check each gets at the edge.
LIMITED: dict[str, Callable[[Any], str | None]] = {
    "StartRun": lambda r: _spec_problem(r.spec),
    "StartBatch": lambda r: limits.first_problem([
        limits.too_long("the batch op name", r.batch_op_name, limits.MAX_OP_NAME),
        limits.too_long("the label", r.label, limits.MAX_LABEL),
        limits.tags_problem("tags", r.tags),
        _spec_problem(r.proto),
    ]),
    "StartProtoRun": lambda r: limits.first_problem([
        limits.too_long("the label", r.label, limits.MAX_LABEL),
        limits.tags_problem("tags", r.tags),
        limits.flags_json_problem(r.flags_json),
    ]),
    "RestartRun": lambda r: limits.first_problem([
        limits.too_long("the label", r.label, limits.MAX_LABEL),
        limits.flags_json_problem(r.flags_json),
    ]),
    "LabelRuns": lambda r: limits.too_long("the label", r.value, limits.MAX_LABEL),
    "TagRuns": lambda r: limits.tags_problem("tags", r.add),
    "CommentRuns": lambda r: limits.too_long("the comment", r.body, limits.MAX_COMMENT),
}
