"""The web view's requests go through the gRPC servicer itself, in-process: the same daemon
operations as the CLI's, with the same ownership checks, size limits, audit lines and error
mapping (guildd.rpc), attributed to the view token's user (guildd.tokens.VIEW_KEY). Only
the transport differs: a `Context` stands in for gRPC's, and an abort becomes `CallFailed`,
which the handlers answer with the HTTP status of its code."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, NoReturn

import grpc

from guildd.tokens import VIEW_KEY

# gRPC status -> HTTP status of the view's JSON error.
HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 507,
    grpc.StatusCode.UNAVAILABLE: 503,
}


class CallFailed(Exception):
    """A servicer call ended with an error status: `status` is its HTTP status, `message`
    the one line the servicer gave."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.status = HTTP_STATUS.get(code, 500)
        self.message = message


class Context:
    """What the servicer reads of a gRPC context: the metadata naming the caller, and abort."""

    def __init__(self, token: str) -> None:
        self._metadata = ((VIEW_KEY, token),)

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    async def abort(self, code: grpc.StatusCode, details: str = "") -> NoReturn:
        raise CallFailed(code, details)


class Calls:
    """The servicer's methods, called as the holder of a web view token."""

    def __init__(self, servicer: Any) -> None:
        self._servicer = servicer

    async def unary(self, token: str, method: str, request: Any) -> Any:
        """The response of a unary method; CallFailed for an error status."""
        return await getattr(self._servicer, method)(request, Context(token))

    async def stream(self, token: str, method: str, request: Any) -> AsyncIterator[Any]:
        """The messages of a server-streaming method; CallFailed for an error status."""
        async for message in getattr(self._servicer, method)(request, Context(token)):
            yield message
