"""The model host trusts only its gateway: with a token set (MODEL_HOST_TOKEN), every
call but health checks and reflection must carry it as gRPC metadata
(`authorization: Bearer <token>`), compared in constant time."""

import hashlib
import hmac
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

TOKEN_ENV = "MODEL_HOST_TOKEN"
METADATA_KEY = "authorization"

# Open to anyone who reaches the socket: orchestrators probe health without a secret,
# and reflection only describes the API (grpcurl lists and describes without a token).
OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")

UNAUTHENTICATED_MESSAGE = (
    "this model host needs its token: send the gRPC metadata "
    f'"{METADATA_KEY}: Bearer <{TOKEN_ENV}>"'
)


def _digest(value: str) -> bytes:
    # Digests of equal length: compare_digest then leaks neither the token's length
    # nor where a guess first differs.
    return hashlib.sha256(value.encode("utf-8")).digest()


class TokenInterceptor(grpc.aio.ServerInterceptor):
    """Refuses, with UNAUTHENTICATED, every call outside OPEN_PREFIXES that does not
    carry the token."""

    def __init__(self, token: str) -> None:
        self._digest = _digest(f"Bearer {token}")

    def allows(self, method: str, metadata: tuple[tuple[str, Any], ...] | None) -> bool:
        if method.startswith(OPEN_PREFIXES):
            return True
        presented = [value for key, value in metadata or () if key.lower() == METADATA_KEY]
        found = False
        for value in presented:
            text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
            found = hmac.compare_digest(_digest(text.strip()), self._digest) or found
        return found

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method  # type: ignore[attr-defined]
        metadata = handler_call_details.invocation_metadata  # type: ignore[attr-defined]
        if handler is None or self.allows(method, metadata):
            return handler
        return _refusal(handler)


def _refusal(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """A handler of the same shape as `handler` that only refuses."""

    async def refuse(_request: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, UNAUTHENTICATED_MESSAGE)

    async def refuse_stream(_request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, UNAUTHENTICATED_MESSAGE)
        yield  # pragma: no cover - abort raises; this makes it a generator

    serde = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(refuse_stream, **serde)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(refuse, **serde)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(refuse_stream, **serde)
    return grpc.unary_unary_rpc_method_handler(refuse, **serde)
