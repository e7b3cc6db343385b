"""Every RPC of the Guild service, its fields fuzzed, sent straight through the generated stubs
to a real daemon on its Unix socket. Whatever a client sends: the status is never INTERNAL or
UNKNOWN, the daemon stays up, no run dir is left half-written, and nothing outside GUILD_HOME
and the run's own dir is read into a response or written."""

import grpc
import pytest
from hypothesis import given, settings

from guild_common.pb import guild_pb2 as pb
from tests.fuzz import messages
from tests.fuzz.figures import FIGURES

NOT_OURS = (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.DATA_LOSS)
STREAM_MESSAGES = 50  # a watch of a running run never ends: read this many, then cancel
TIMEOUT = 20


def call(stub, method, request):
    """(status code, the response bytes) of one call; a stream is read in part."""
    fn = getattr(stub, method.name)
    try:
        if method.server_streaming:
            stream = fn(request, timeout=TIMEOUT)
            data = b""
            for i, msg in enumerate(stream):
                data += msg.SerializeToString()
                if i + 1 >= STREAM_MESSAGES:
                    stream.cancel()
                    break
            return grpc.StatusCode.OK, data, ""
        return grpc.StatusCode.OK, fn(request, timeout=TIMEOUT).SerializeToString(), ""
    except grpc.RpcError as e:
        if e.code() == grpc.StatusCode.CANCELLED and method.server_streaming:
            return grpc.StatusCode.OK, b"", ""
        return e.code(), (e.details() or "").encode("utf-8", "replace"), e.details() or ""


def check_case(box, stub, method, request):
    """Sends `request` and records (then fails on) whatever the property forbids."""
    test = f"rpc {method.name}"
    FIGURES.tried(test)
    code, data, details = call(stub, method, request)
    shown = f"{method.name}({str(request)[:300]!r})"
    problems = []
    if code in NOT_OURS:
        problems.append(FIGURES.found("internal", f"{shown} -> {code.name}: {details[:300]}"))
    if "Traceback" in details:
        problems.append(FIGURES.found("tracebacks", f"{shown} -> {details[:300]}"))
    if box.guild.daemon.poll() is not None:
        problems.append(FIGURES.found("daemon_down", f"{shown}: guildd exited {box.guild.daemon.returncode}"))
    else:
        try:
            stub.GetDaemonInfo(pb.GetDaemonInfoRequest(), timeout=TIMEOUT)
        except grpc.RpcError as e:
            problems.append(FIGURES.found("daemon_down", f"{shown}: guildd stopped answering ({e.code().name})"))
    for what in box.leaked(data):
        problems.append(FIGURES.found("escapes", f"{shown}: the response holds the {what} file's content"))
    if box.other_token in data and ".." in str(request):
        problems.append(FIGURES.found("escapes", f"{shown}: the response holds another run's file, reached by '..'"))
    for what in box.escapes():
        problems.append(FIGURES.found("escapes", f"{shown}: {what}"))
    for what in box.half_written():
        problems.append(FIGURES.found("half_written", f"{shown}: {what}"))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("method", messages.METHODS, ids=[m.name for m in messages.METHODS])
def test_any_request_gets_a_clear_answer(box, stub, method):
    @settings(max_examples=max(10, settings().max_examples // 2))
    @given(messages.message(method.input_type))
    def prop(request):
        check_case(box, stub, method, request)

    prop()
