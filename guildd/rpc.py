"""The daemon's error seam: GuildError -> gRPC status, anything else -> INTERNAL (logged with
its traceback, never sent to the client)."""

import functools
import inspect
import logging

import grpc

from guild_common import errors

log = logging.getLogger("guildd.rpc")


def _code(err):
    return getattr(grpc.StatusCode, err.grpc_code, grpc.StatusCode.UNKNOWN)


async def _abort_for(context, e, name):
    if isinstance(e, errors.GuildError):
        await context.abort(_code(e), e.message)
    log.exception("internal error in %s", name)
    await context.abort(grpc.StatusCode.INTERNAL, f"internal error in {name}: {type(e).__name__}: {e} (see guildd.log)")


def mapped(method):
    """Wraps a servicer method (unary or server-streaming) with the error mapping."""
    if inspect.isasyncgenfunction(method):

        @functools.wraps(method)
        async def stream(self, request, context):
            try:
                async for item in method(self, request, context):
                    yield item
            except grpc.aio.AbortError:
                raise
            except Exception as e:  # the seam: every error leaves as a status
                await _abort_for(context, e, method.__name__)

        return stream

    @functools.wraps(method)
    async def unary(self, request, context):
        try:
            return await method(self, request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as e:  # the seam: every error leaves as a status
            await _abort_for(context, e, method.__name__)

    return unary
