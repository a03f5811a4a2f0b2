"""The one table from Python exceptions to gRPC status codes, and the interceptor every
RPC method runs inside: refused unless the host is serving, counted in flight, and any
exception answered with its status. Unexpected errors become INTERNAL with a bare
message: tracebacks go to the log, and to the client only in debug.

An interceptor of the methods rather than a grpc.aio.ServerInterceptor: the status
must be the same wherever the servicer is registered (tests register it on servers of
their own), and a server interceptor sees handlers, not the exceptions they raise."""

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol, TypeAlias, TypeVar

import grpc

from modelhost.errors import (
    GenerationCancelledError,
    InvalidModelError,
    InvalidRequestError,
    ModelFileNotFoundError,
    NotLoadedError,
    OutOfMemoryError,
    PinnedModelsError,
    TaskArgumentError,
    TaskError,
    TaskPluginError,
    TaskResultError,
    UnavailableError,
    UnknownTaskError,
)
from modelhost.lifecycle import ServingLifecycle

log = logging.getLogger(__name__)

STATUS_BY_ERROR: dict[type[Exception], grpc.StatusCode] = {
    ModelFileNotFoundError: grpc.StatusCode.NOT_FOUND,
    InvalidModelError: grpc.StatusCode.INVALID_ARGUMENT,
    InvalidRequestError: grpc.StatusCode.INVALID_ARGUMENT,
    NotLoadedError: grpc.StatusCode.FAILED_PRECONDITION,
    OutOfMemoryError: grpc.StatusCode.RESOURCE_EXHAUSTED,
    # Not RESOURCE_EXHAUSTED: the device is not too small, the operator's pins are in the way.
    PinnedModelsError: grpc.StatusCode.FAILED_PRECONDITION,
    GenerationCancelledError: grpc.StatusCode.CANCELLED,
    UnavailableError: grpc.StatusCode.UNAVAILABLE,
    UnknownTaskError: grpc.StatusCode.NOT_FOUND,
    TaskArgumentError: grpc.StatusCode.INVALID_ARGUMENT,
    TaskError: grpc.StatusCode.FAILED_PRECONDITION,
    TaskResultError: grpc.StatusCode.INTERNAL,  # the task's bug, but its message helps
    TaskPluginError: grpc.StatusCode.INTERNAL,
}

Request = TypeVar("Request")
Reply = TypeVar("Reply")
Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]


class ErrorTranslator:
    def __init__(self, debug: bool) -> None:
        self.debug = debug

    async def abort(self, context: Context, error: Exception) -> None:
        await context.abort(*self.status(error))

    def status(self, error: Exception) -> tuple[grpc.StatusCode, str]:
        """The code and detail the error is answered with."""
        # The most specific class in the table wins (TaskArgumentError is a TaskError).
        for error_type in type(error).__mro__:
            code = STATUS_BY_ERROR.get(error_type)
            if code is not None:
                return code, str(error)
        log.exception("unexpected error", exc_info=error)
        detail = f"internal error: {type(error).__name__}"
        if self.debug:
            detail += f": {error}"
        return grpc.StatusCode.INTERNAL, detail


class Intercepted(Protocol):
    errors: ErrorTranslator
    lifecycle: ServingLifecycle


S = TypeVar("S", bound=Intercepted)


def unary(
    method: Callable[[S, Request, Context], Awaitable[Reply]],
) -> Callable[[S, Request, Context], Awaitable[Reply]]:
    @functools.wraps(method)
    async def intercepted(self: S, request: Request, context: Context) -> Reply:
        try:
            with self.lifecycle.call():
                return await method(self, request, context)
        except Exception as error:
            await self.errors.abort(context, error)
            raise  # unreachable: abort raises

    return intercepted


def streaming(
    method: Callable[[S, Request, Context], AsyncIterator[Reply]],
) -> Callable[[S, Request, Context], AsyncIterator[Reply]]:
    """For response streams (the request may be one message or a stream): an error
    after some replies were sent still ends the call with its status."""

    @functools.wraps(method)
    async def intercepted(self: S, request: Request, context: Context) -> AsyncIterator[Reply]:
        try:
            with self.lifecycle.call():
                async for reply in method(self, request, context):
                    yield reply
        except Exception as error:
            await self.errors.abort(context, error)

    return intercepted
