"""The model host as users start it: a process with health, reflection and signals."""

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from modelhost.v1 import modelhost_pb2 as pb
from modelhost.v1 import modelhost_pb2_grpc as pb_grpc

STARTUP_SECONDS = 120
# Far beyond a 1 s grace plus one step and the teardown, far below the job's hours.
CANCEL_DEADLINE_SECONDS = 300


def start_model_host(tmp_path: Path, grace_seconds: float) -> tuple[subprocess.Popen[bytes], str]:
    """Starts `python -m modelhost serve` and waits until its health says SERVING."""
    address = f"unix:{tmp_path}/model-host.sock"
    process = subprocess.Popen(
        [
            sys.executable, "-m", "modelhost", "serve", "--listen", address,
            "--device", "cpu", "--grace", str(grace_seconds),
        ],
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    try:
        with grpc.insecure_channel(address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            deadline = time.monotonic() + STARTUP_SECONDS
            while True:
                try:
                    reply = health.Check(
                        health_pb2.HealthCheckRequest(service="modelhost.v1.ModelHost"),
                        wait_for_ready=True,
                        timeout=max(1.0, deadline - time.monotonic()),
                    )
                except grpc.RpcError:
                    if time.monotonic() > deadline or process.poll() is not None:
                        raise
                    continue
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    break
    except BaseException:
        process.kill()
        process.wait()
        raise
    return process, address


@pytest.fixture
def model_host(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    process, address = start_model_host(tmp_path, grace_seconds=5)
    try:
        yield process, address
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_health_and_reflection_answer_and_sigterm_exits_cleanly(
    model_host: tuple[subprocess.Popen[bytes], str],
) -> None:
    process, address = model_host
    with grpc.insecure_channel(address) as channel:
        services = set(ProtoReflectionDescriptorDatabase(channel).get_services())
        overall = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
    assert {"modelhost.v1.ModelHost", "grpc.health.v1.Health"} <= services
    assert overall.status == health_pb2.HealthCheckResponse.SERVING

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0


# --------------------------------------------------------- SIGTERM during a job


def _load_request(demo_dir: Path) -> pb.LoadModelRequest:
    return pb.LoadModelRequest(
        key="sd15",
        model_path=str(demo_dir / "tiny-sd15.safetensors"),
        config_dir=str(demo_dir / "tiny-sd15.config"),
    )


def _generate_request(steps: int) -> pb.GenerateRequest:
    return pb.GenerateRequest(
        key="sd15", prompt="shutdown", width=64, height=64, steps=steps, guidance_scale=1.0
    )


async def _refused_after_sigterm(stub: pb_grpc.ModelHostStub) -> grpc.StatusCode:
    """Polls with new calls until the stopping server refuses one; returns its code."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            await stub.GetMemory(pb.GetMemoryRequest(), timeout=5)
        except grpc.aio.AioRpcError as e:
            return e.code()
        await asyncio.sleep(0.01)
    raise AssertionError("new calls were still accepted 30s after SIGTERM")


async def test_sigterm_lets_the_running_generation_finish_and_exits_0(
    tmp_path: Path, demo_dir: Path
) -> None:
    # The grace only has to outlast the job: the server exits as soon as the job ends, so
    # a long one costs nothing, and a machine busy with other work does not cut the job short.
    process, address = start_model_host(tmp_path, grace_seconds=1800)
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            stub = pb_grpc.ModelHostStub(channel)
            await stub.LoadModel(_load_request(demo_dir))
            # A few seconds of work on a CPU, far inside the grace period.
            steps = 120
            # perf_counter is the clock the server times its progress with (CLOCK_MONOTONIC,
            # one clock for every process of the machine), and the generation starts after
            # the request is sent: a step reported at `elapsed` ran at `sent + elapsed` or later.
            sent = time.perf_counter()
            call = stub.Generate(_generate_request(steps))
            first = await call.read()
            assert first.WhichOneof("event") == "progress"
            process.send_signal(signal.SIGTERM)
            assert await _refused_after_sigterm(stub) == grpc.StatusCode.UNAVAILABLE
            refused = time.perf_counter()
            events = []
            while (event := await call.read()) != grpc.aio.EOF:
                assert isinstance(event, pb.GenerateEvent)
                events.append(event)
        assert events[-1].WhichOneof("event") == "image"
        assert events[-2].progress.step == steps
        # The job went on after the server had stopped taking new work: its last step ran
        # after the refusal. (Which events the client reads after the refusal proves nothing:
        # they may have waited in its buffers since before the signal.)
        last_step_at = sent + events[-2].progress.elapsed_seconds
        assert last_step_at > refused, (
            f"the last step ran {refused - last_step_at:.2f}s before new work was refused"
        )
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


async def test_sigterm_cancels_a_job_that_outlasts_the_grace_and_exits_0(
    tmp_path: Path, demo_dir: Path
) -> None:
    grace = 1.0
    process, address = start_model_host(tmp_path, grace_seconds=grace)
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            stub = pb_grpc.ModelHostStub(channel)
            await stub.LoadModel(_load_request(demo_dir))
            steps = 100_000  # hours on a CPU: only a cancel ends it
            call = stub.Generate(_generate_request(steps))
            assert (await call.read()).WhichOneof("event") == "progress"
            process.send_signal(signal.SIGTERM)

            async def read_to_the_end() -> None:
                while (event := await call.read()) != grpc.aio.EOF:
                    assert isinstance(event, pb.GenerateEvent)
                    assert event.WhichOneof("event") == "progress"

            with pytest.raises(grpc.aio.AioRpcError) as caught:
                # A deadline, not a timing claim: without the cancel the stream runs for hours.
                await asyncio.wait_for(read_to_the_end(), timeout=CANCEL_DEADLINE_SECONDS)
            assert caught.value.code() == grpc.StatusCode.CANCELLED
        assert process.wait(timeout=CANCEL_DEADLINE_SECONDS) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
