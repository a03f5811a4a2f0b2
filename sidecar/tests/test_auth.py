"""MODEL_HOST_TOKEN: calls without the token are UNAUTHENTICATED; health and reflection
stay open; the right token in any case of the metadata key passes."""

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from modelhost.auth import TokenInterceptor
from modelhost.server import ModelHostServer, ServeOptions
from modelhost.v1 import modelhost_pb2 as pb
from modelhost.v1 import modelhost_pb2_grpc as pb_grpc

TOKEN = "test-token-0123456789abcdef"


@pytest.fixture
async def channel(tmp_path: Path) -> AsyncIterator[grpc.aio.Channel]:
    address = f"unix:{tmp_path}/token.sock"
    server = ModelHostServer(ServeOptions(listen=address, device="cpu", token=TOKEN))
    await server.start()
    async with grpc.aio.insecure_channel(address) as channel:
        yield channel
    await server.stop(1)


async def test_a_call_without_the_token_or_with_a_wrong_one_is_unauthenticated(
    channel: grpc.aio.Channel,
) -> None:
    stub = pb_grpc.ModelHostStub(channel)
    for metadata in [(), (("authorization", "Bearer wrong"),), (("authorization", TOKEN),)]:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.GetMemory(pb.GetMemoryRequest(), metadata=metadata, timeout=5)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "MODEL_HOST_TOKEN" in (refused.value.details() or "")
    # A server-streaming call is refused the same way, before it does anything.
    with pytest.raises(grpc.aio.AioRpcError) as streamed:
        async for _ in stub.Generate(pb.GenerateRequest(key="k"), timeout=5):
            pass
    assert streamed.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_the_token_passes_and_health_and_reflection_stay_open(
    channel: grpc.aio.Channel,
) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    reply = await health.Check(health_pb2.HealthCheckRequest(), wait_for_ready=True, timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
    replies = reflection.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
    )
    async for reply in replies:
        names = [service.name for service in reply.list_services_response.service]
        assert "modelhost.v1.ModelHost" in names
    stub = pb_grpc.ModelHostStub(channel)
    memory = await stub.GetMemory(
        pb.GetMemoryRequest(), metadata=(("authorization", f"Bearer {TOKEN}"),), timeout=5
    )
    assert memory.device


def test_the_comparison_takes_every_presented_value_and_only_the_exact_token() -> None:
    check = TokenInterceptor(TOKEN)
    method = "/modelhost.v1.ModelHost/LoadModel"
    assert check.allows(method, (("authorization", f"Bearer {TOKEN}"),))
    assert check.allows(
        method, (("authorization", "Bearer x"), ("authorization", f"Bearer {TOKEN}"))
    )
    assert not check.allows(method, (("authorization", f"Bearer {TOKEN}x"),))
    assert not check.allows(method, None)
    assert check.allows("/grpc.health.v1.Health/Check", None)
    assert check.allows("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", None)
