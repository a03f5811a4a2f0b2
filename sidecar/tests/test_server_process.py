"""The sidecar as users start it: a process with health, reflection and signals."""

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

STARTUP_SECONDS = 120


@pytest.fixture
def sidecar(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    address = f"unix:{tmp_path}/sidecar.sock"
    process = subprocess.Popen(
        [sys.executable, "-m", "modelhost", "serve", "--listen", address, "--grace", "5"],
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
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
        yield process, address
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_health_and_reflection_answer_and_sigterm_exits_cleanly(
    sidecar: tuple[subprocess.Popen[bytes], str],
) -> None:
    process, address = sidecar
    with grpc.insecure_channel(address) as channel:
        services = set(ProtoReflectionDescriptorDatabase(channel).get_services())
        overall = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
    assert {"modelhost.v1.ModelHost", "grpc.health.v1.Health"} <= services
    assert overall.status == health_pb2.HealthCheckResponse.SERVING

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
