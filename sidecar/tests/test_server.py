"""The server in-process: readiness, and answering while the device is busy."""

import asyncio
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from modelhost.server import ModelHostServer, ServeOptions
from modelhost.v1 import modelhost_pb2 as pb
from modelhost.v1 import modelhost_pb2_grpc as pb_grpc

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
DEADLINE_SECONDS = 30

# A task plugin whose import blocks until a file appears: a start that takes as long
# as the test wants, without sleeping for a guessed time.
GATE_PLUGIN = """
import time
from pathlib import Path

from modelhost.tasks import task

_deadline = time.monotonic() + {deadline}
while not Path({gate!r}).exists():
    if time.monotonic() > _deadline:
        raise RuntimeError("the test never opened the gate")
    time.sleep(0.01)


@task("test.gated")
def gated(args, ctx):
    return "ready"
"""


async def health_status(channel: grpc.aio.Channel, service: str = "") -> int:
    """The health status, once the server answers at all."""
    health = health_pb2_grpc.HealthStub(channel)
    reply = await health.Check(
        health_pb2.HealthCheckRequest(service=service), wait_for_ready=True, timeout=5
    )
    return int(reply.status)


async def test_not_serving_until_plugins_and_inventory_are_ready(
    tmp_path: Path, demo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = tmp_path / "gate"
    (tmp_path / "mh_gate_plugin.py").write_text(
        GATE_PLUGIN.format(gate=str(gate), deadline=DEADLINE_SECONDS)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    root = tmp_path / "models"
    root.mkdir()
    shutil.copyfile(demo_dir / "tiny-sd15.safetensors", root / "tiny-sd15.safetensors")
    address = f"unix:{tmp_path}/gated.sock"
    server = ModelHostServer(
        ServeOptions(
            listen=address,
            device="cpu",
            model_roots=(root,),
            environ={"MODELHOST_TASK_MODULES": "mh_gate_plugin"},
        )
    )
    starting = asyncio.create_task(server.start())
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            assert await health_status(channel) == NOT_SERVING
            assert await health_status(channel, "modelhost.v1.ModelHost") == NOT_SERVING
            stub = pb_grpc.ModelHostStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.GetMemory(pb.GetMemoryRequest(), timeout=5)
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
            assert not starting.done()

            gate.touch()
            await asyncio.wait_for(starting, DEADLINE_SECONDS)
            assert await health_status(channel) == SERVING
            assert await health_status(channel, "modelhost.v1.ModelHost") == SERVING
            reply = await stub.RunTask(pb.RunTaskRequest(name="test.gated"))
            assert reply.result_json == '"ready"'
            listing = await stub.ListModels(pb.ListModelsRequest())
            assert [Path(m.path).name for m in listing.models] == ["tiny-sd15.safetensors"]
    finally:
        starting.cancel()
        await server.stop(1)
        sys.modules.pop("mh_gate_plugin", None)


@pytest.fixture
async def serving(tmp_path: Path) -> AsyncIterator[tuple[ModelHostServer, grpc.aio.Channel]]:
    address = f"unix:{tmp_path}/serving.sock"
    server = ModelHostServer(ServeOptions(listen=address, device="cpu"))
    await server.start()
    async with grpc.aio.insecure_channel(address) as channel:
        yield server, channel
    await server.stop(1)


async def test_health_and_memory_answer_while_an_image_is_being_made(
    serving: tuple[ModelHostServer, grpc.aio.Channel], demo_dir: Path
) -> None:
    _server, channel = serving
    stub = pb_grpc.ModelHostStub(channel)
    await stub.LoadModel(
        pb.LoadModelRequest(
            key="sd15",
            model_path=str(demo_dir / "tiny-sd15.safetensors"),
            config_dir=str(demo_dir / "tiny-sd15.config"),
        )
    )
    # Minutes of work on this CPU: it is cancelled once the point is made.
    steps = 20_000
    call = stub.Generate(
        pb.GenerateRequest(
            key="sd15", prompt="busy", width=64, height=64, steps=steps, guidance_scale=1.0
        )
    )
    first = await call.read()
    assert first.WhichOneof("event") == "progress"

    memory = await stub.GetMemory(pb.GetMemoryRequest(), timeout=5)
    assert [m.key for m in memory.models] == ["sd15"]
    assert await health_status(channel) == SERVING
    listing = await stub.ListModels(pb.ListModelsRequest(), timeout=5)
    assert list(listing.models) == []

    # Still generating after both answered.
    later = await call.read()
    assert later.WhichOneof("event") == "progress"
    assert later.progress.step < steps
    call.cancel()


def test_model_roots_come_from_flags_then_the_environment() -> None:
    from modelhost.__main__ import model_roots

    assert model_roots([], {}) == ()
    assert model_roots([Path("/a")], {"MODEL_ROOTS": "/b::/a:/c"}) == (
        Path("/a"),
        Path("/b"),
        Path("/c"),
    )
