"""Boots the model host: gRPC server, health, reflection, signals, shutdown."""

import asyncio
import ctypes
import logging
import signal
import sys
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from diffusers.utils import logging as diffusers_logging
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection

from modelhost.auth import TOKEN_ENV, TokenInterceptor
from modelhost.bench_delay import DelayedLoads
from modelhost.engine.device import Device
from modelhost.engine.host import ModelHost
from modelhost.engine.inventory import Inventory
from modelhost.engine.roots import ModelRoots
from modelhost.engine.types import MemoryPolicy
from modelhost.errors import TaskPluginError
from modelhost.logs import route_diffusers_logs
from modelhost.servicer import ModelHostServicer
from modelhost.tasks import load_plugins
from modelhost.v1 import modelhost_pb2, modelhost_pb2_grpc

log = logging.getLogger("modelhost")

SERVICE_NAME = modelhost_pb2.DESCRIPTOR.services_by_name["ModelHost"].full_name
_PR_SET_PDEATHSIG = 1
# How long cancelled calls get to end after the grace period, before the server stops.
CANCEL_WAIT_SECONDS = 10.0


@dataclass(frozen=True)
class ServeOptions:
    listen: str
    allow_pickle: bool = False
    debug: bool = False
    device: str | None = None
    grace_seconds: float = 30.0
    policy: MemoryPolicy | None = None
    model_roots: tuple[Path, ...] = ()
    watch_poll: bool = False
    # Where MODELHOST_TASK_MODULES is read from (the process environment when serving).
    environ: Mapping[str, str] = field(default_factory=dict)
    # BENCHMARK ONLY (MODELHOST_BENCH_LOAD_DELAY_MS): added to every load that is not resident.
    bench_load_delay_seconds: float = 0.0
    # MODEL_HOST_TOKEN: when set, every call but health and reflection must carry it.
    token: str | None = None


class ModelHostServer:
    """The gRPC server and what it serves, with a start that answers health checks
    (NOT_SERVING) while the slow part of starting runs, and a graceful stop."""

    def __init__(self, options: ServeOptions) -> None:
        self.options = options
        self.server = grpc.aio.server(
            options=[("grpc.max_send_message_length", 256 * 2**20)],
            interceptors=[TokenInterceptor(options.token)] if options.token else None,
        )
        self.health = health_aio.HealthServicer()
        # One thread owns the device; see GenerationStreams.
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="device")
        self.inventory = Inventory(options.model_roots, polling=options.watch_poll)
        self.host = ModelHost(
            Device(options.device),
            allow_pickle=options.allow_pickle,
            policy=options.policy,
            roots=ModelRoots(options.model_roots),
            changes=self.inventory,
        )
        self.servicer = ModelHostServicer(
            self.host,
            self.executor,
            debug=options.debug,
            inventory=self.inventory,
            loads=(
                DelayedLoads(self.host, options.bench_load_delay_seconds)
                if options.bench_load_delay_seconds > 0
                else None
            ),
        )
        self.lifecycle = self.servicer.lifecycle
        self.lifecycle.ready = False

    async def start(self) -> None:
        """Listens at once, answering NOT_SERVING (and UNAVAILABLE to model calls) until
        the task plugins are imported and the model roots scanned; then SERVING."""
        listen = self.options.listen
        if listen.startswith("unix:"):
            # A socket file left by a killed predecessor would make bind fail.
            Path(listen.removeprefix("unix:")).unlink(missing_ok=True)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        for name in ("", SERVICE_NAME):
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        reflection.enable_server_reflection(
            (
                SERVICE_NAME,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ),
            self.server,
        )
        modelhost_pb2_grpc.add_ModelHostServicer_to_server(self.servicer, self.server)
        port = self.server.add_insecure_port(listen)
        if port == 0 and not listen.startswith("unix:"):
            raise SystemExit(f"cannot listen on {listen}")
        if listen.endswith(":0") and not listen.startswith("unix:"):
            # Port 0 picks a free one: the log is the only place that says which.
            listen = f"{listen.removesuffix(':0')}:{port}"
        await self.server.start()
        log.info("listening on %s; starting", listen)
        if not listen.startswith("unix:") and not self.options.token:
            # A unix socket is guarded by its private folder; a port by nothing else.
            log.warning(
                "listening on TCP without %s: anyone who reaches %s can load files, "
                "generate and run tasks; set %s (the same value for the gateway)",
                TOKEN_ENV,
                listen,
                TOKEN_ENV,
            )

        # Off the event loop: plugin imports and a scan of big roots take a while, and
        # health checks must keep answering meanwhile.
        try:
            await asyncio.get_running_loop().run_in_executor(None, self._prepare)
        except TaskPluginError as e:
            await self.server.stop(None)
            raise SystemExit(str(e)) from None

        log.info(
            "device %s (%s), memory policy %s",
            self.host.device.label,
            self.host.device.display_name,
            self.host.policy,
        )
        if self.options.bench_load_delay_seconds > 0:
            log.warning(
                "BENCHMARK ONLY: every load that is not resident takes %.3fs more "
                "(MODELHOST_BENCH_LOAD_DELAY_MS)",
                self.options.bench_load_delay_seconds,
            )
        self.lifecycle.ready = True
        for name in ("", SERVICE_NAME):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info("serving on %s", listen)

    def _prepare(self) -> None:
        load_plugins(self.options.environ)
        self.inventory.start()

    async def stop(self, grace_seconds: float) -> None:
        """Stops taking calls; running ones get `grace_seconds` to finish, then are
        cancelled (a cancelled generation stops at its next step)."""
        log.info("shutting down: no new work, %.0fs grace for the running job", grace_seconds)
        self.lifecycle.begin_shutdown()
        await self.health.enter_graceful_shutdown()
        if not await self.lifecycle.drain(grace_seconds):
            cancelled = self.lifecycle.cancel_running()
            log.warning("grace period over: cancelled %d running generation(s)", cancelled)
            # A cancelled generation stops at its next step; a load cannot be stopped.
            if not await self.lifecycle.drain(CANCEL_WAIT_SECONDS):
                log.warning("calls still running after the cancel: stopping regardless")
        # Every call has ended (or is abandoned): nothing left for grpc's own grace.
        await self.server.stop(0.5)
        self.inventory.stop()
        # A cancelled generation finishes its current step on the device thread; the
        # interpreter waits for that thread at exit, which is what lets CUDA tear down.
        self.executor.shutdown(wait=False, cancel_futures=True)
        log.info("stopped")


async def serve(options: ServeOptions) -> None:
    # Progress bars are for terminals; in a server's log they are noise.
    diffusers_logging.disable_progress_bar()
    route_diffusers_logs()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    server = ModelHostServer(options)
    await server.start()
    await stopping.wait()
    await server.stop(options.grace_seconds)


def exit_with_parent() -> None:
    """Asks Linux to SIGTERM us when the process that started us dies, so a
    killed gateway never leaves a model host holding the GPU."""
    if sys.platform == "linux":
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
