"""Boots the sidecar: gRPC server, health, reflection, signals, shutdown."""

import asyncio
import ctypes
import logging
import signal
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection

from modelhost.engine.device import Device
from modelhost.engine.host import ModelHost
from modelhost.engine.types import MemoryPolicy
from modelhost.servicer import ModelHostServicer
from modelhost.v1 import modelhost_pb2, modelhost_pb2_grpc

log = logging.getLogger("modelhost")

SERVICE_NAME = modelhost_pb2.DESCRIPTOR.services_by_name["ModelHost"].full_name
_PR_SET_PDEATHSIG = 1


async def serve(
    listen: str,
    *,
    allow_pickle: bool,
    debug: bool,
    device: str | None,
    grace_seconds: float,
    policy: MemoryPolicy | None = None,
) -> None:
    if listen.startswith("unix:"):
        # A socket file left by a killed predecessor would make bind fail.
        Path(listen.removeprefix("unix:")).unlink(missing_ok=True)

    server = grpc.aio.server(options=[("grpc.max_send_message_length", 256 * 2**20)])
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    for name in ("", SERVICE_NAME):
        await health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    reflection.enable_server_reflection(
        (
            SERVICE_NAME,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ),
        server,
    )

    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="device")
    host = ModelHost(Device(device), allow_pickle=allow_pickle, policy=policy)
    modelhost_pb2_grpc.add_ModelHostServicer_to_server(
        ModelHostServicer(host, executor, debug=debug), server
    )
    if server.add_insecure_port(listen) == 0 and not listen.startswith("unix:"):
        raise SystemExit(f"cannot listen on {listen}")
    await server.start()

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)

    log.info(
        "device %s (%s), memory policy %s", host.device.label, host.device.display_name, host.policy
    )
    for name in ("", SERVICE_NAME):
        await health.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("serving on %s", listen)

    await stopping.wait()
    log.info("shutting down: no new work, %.0fs grace for the running job", grace_seconds)
    await health.enter_graceful_shutdown()
    await server.stop(grace_seconds)
    executor.shutdown(wait=False, cancel_futures=True)
    log.info("stopped")


def exit_with_parent() -> None:
    """Asks Linux to SIGTERM us when the process that started us dies, so a
    killed gateway never leaves a sidecar holding the GPU."""
    if sys.platform == "linux":
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
