"""The daemon's error seam: GuildError -> gRPC status, a full disk -> RESOURCE_EXHAUSTED
naming GUILD_HOME (a disk that filled is no bug of ours), anything else -> INTERNAL (logged
with its traceback, never sent to the client)."""

from __future__ import annotations

import functools
import inspect
import logging
import os
from collections.abc import AsyncIterator, Callable
from typing import Any, NoReturn

import grpc

from guild_common import errors
from guildd import diskspace

log = logging.getLogger("guildd.rpc")


def _code(err: errors.GuildError) -> grpc.StatusCode:
    return getattr(grpc.StatusCode, err.grpc_code, grpc.StatusCode.UNKNOWN)


async def _abort_for(context: grpc.aio.ServicerContext[Any, Any], e: Exception, name: str,
                     home: str | os.PathLike[str]) -> NoReturn:
    if diskspace.is_full(e):
        log.warning("%s: %s: %s", name, type(e).__name__, e)
        e = diskspace.full_error(home, e)
    if isinstance(e, errors.GuildError):
        await context.abort(_code(e), e.message)
    log.exception("internal error in %s", name)
    await context.abort(grpc.StatusCode.INTERNAL, f"internal error in {name}: {type(e).__name__}: {e} (see guildd.log)")


def mapped(method: Callable[..., Any]) -> Callable[..., Any]:
    """Wraps a servicer method (unary or server-streaming) with the error mapping. The
    servicer has the daemon (`self.daemon`), whose GUILD_HOME a full disk's error names."""
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

    @functools.wraps(method)
    async def unary(self: Any, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            return await method(self, request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as e:  # the seam: every error leaves as a status
            await _abort_for(context, e, method.__name__, self.daemon.home)

    return unary
