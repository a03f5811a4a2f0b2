"""gRPC face of the model host: converts proto messages to domain calls and
domain errors to status codes, nothing more."""

import asyncio
import contextlib
import functools
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import Executor
from typing import Any, TypeVar

import grpc

from modelhost.engine.host import ModelHost
from modelhost.engine.inventory import Inventory
from modelhost.engine.types import (
    GeneratedImage,
    GenerateParams,
    LoadSource,
    LoadSpec,
    LoraSpec,
    Progress,
)
from modelhost.errors import (
    GenerationCancelledError,
    InvalidModelError,
    InvalidRequestError,
    ModelFileNotFoundError,
    NotLoadedError,
    OutOfMemoryError,
    TaskArgumentError,
    TaskError,
    TaskPluginError,
    TaskResultError,
    UnavailableError,
    UnknownTaskError,
)
from modelhost.tasks import REGISTRY, TaskContext, TaskRegistry
from modelhost.v1 import modelhost_pb2 as pb
from modelhost.v1 import modelhost_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

# The one table from domain errors to gRPC status codes.
STATUS_BY_ERROR: dict[type[Exception], grpc.StatusCode] = {
    ModelFileNotFoundError: grpc.StatusCode.NOT_FOUND,
    InvalidModelError: grpc.StatusCode.INVALID_ARGUMENT,
    InvalidRequestError: grpc.StatusCode.INVALID_ARGUMENT,
    NotLoadedError: grpc.StatusCode.FAILED_PRECONDITION,
    OutOfMemoryError: grpc.StatusCode.RESOURCE_EXHAUSTED,
    GenerationCancelledError: grpc.StatusCode.CANCELLED,
    UnavailableError: grpc.StatusCode.UNAVAILABLE,
    UnknownTaskError: grpc.StatusCode.NOT_FOUND,
    TaskArgumentError: grpc.StatusCode.INVALID_ARGUMENT,
    TaskError: grpc.StatusCode.FAILED_PRECONDITION,
    TaskResultError: grpc.StatusCode.INTERNAL,  # the task's bug, but its message helps
    TaskPluginError: grpc.StatusCode.INTERNAL,
}

_LOAD_SOURCES = {
    LoadSource.DISK: pb.LOAD_SOURCE_DISK,
    LoadSource.RESIDENT: pb.LOAD_SOURCE_RESIDENT,
    LoadSource.RAM: pb.LOAD_SOURCE_RAM,
    LoadSource.SHARED_BASE: pb.LOAD_SOURCE_SHARED_BASE,
}

Request = TypeVar("Request")
Reply = TypeVar("Reply")


class ErrorTranslator:
    """Turns exceptions into statuses. Unexpected errors become INTERNAL with a
    bare message: tracebacks go to the log, and to the client only in debug."""

    def __init__(self, debug: bool) -> None:
        self.debug = debug

    async def abort(self, context: grpc.aio.ServicerContext[Any, Any], error: Exception) -> None:
        # The most specific class in the table wins (TaskArgumentError is a TaskError).
        for error_type in type(error).__mro__:
            code = STATUS_BY_ERROR.get(error_type)
            if code is not None:
                await context.abort(code, str(error))
        log.exception("unexpected error", exc_info=error)
        detail = f"internal error: {type(error).__name__}"
        if self.debug:
            detail += f": {error}"
        await context.abort(grpc.StatusCode.INTERNAL, detail)


def _unary(
    method: Callable[[Any, Request, grpc.aio.ServicerContext[Any, Any]], Awaitable[Reply]],
) -> Callable[[Any, Request, grpc.aio.ServicerContext[Any, Any]], Awaitable[Reply]]:
    @functools.wraps(method)
    async def wrapper(
        self: "ModelHostServicer", request: Request, context: grpc.aio.ServicerContext[Any, Any]
    ) -> Reply:
        try:
            self.check_ready()
            with self._in_flight():
                return await method(self, request, context)
        except Exception as error:
            await self.errors.abort(context, error)
            raise  # unreachable: abort raises

    return wrapper


class ModelHostServicer(pb_grpc.ModelHostServicer):
    def __init__(
        self,
        host: ModelHost,
        device_executor: Executor,
        debug: bool = False,
        *,
        inventory: Inventory | None = None,
        tasks: TaskRegistry = REGISTRY,
    ) -> None:
        self.host = host
        # One thread owns the device: loads, generations and tasks never run on the event
        # loop, and run one at a time in the order they came.
        self.device_executor = device_executor
        self.errors = ErrorTranslator(debug)
        self.inventory = inventory
        self.tasks = tasks
        # The server registers the servicer before it starts (gRPC wants it so) and
        # sets this once plugins and the inventory are ready; calls before: UNAVAILABLE.
        self.ready = True
        # Shutdown is drained here rather than by grpc's own grace: a server stopping
        # with streams in flight can stall their writes (seen with grpcio 1.85), so the
        # server is only stopped once every call has ended. Event-loop state only.
        self.stopping = False
        self._calls = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._cancels: set[threading.Event] = set()

    def check_ready(self) -> None:
        if self.stopping:
            raise UnavailableError("the sidecar is shutting down")
        if not self.ready:
            raise UnavailableError("the sidecar is starting; retry when its health is SERVING")

    @contextlib.contextmanager
    def _in_flight(self) -> Iterator[None]:
        self._calls += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._calls -= 1
            if self._calls == 0:
                self._idle.set()

    def begin_shutdown(self) -> None:
        """From now on every new call is refused with UNAVAILABLE."""
        self.stopping = True

    async def drain(self, timeout: float) -> bool:
        """Waits up to `timeout` seconds for the calls in flight to end; True if they did."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def cancel_running(self) -> int:
        """Asks every running generation to stop at its next step; returns how many."""
        for cancel in self._cancels:
            cancel.set()
        return len(self._cancels)

    async def _on_device(self, fn: Callable[..., Reply], *args: Any) -> Reply:
        return await asyncio.get_running_loop().run_in_executor(self.device_executor, fn, *args)

    @_unary
    async def LoadModel(
        self, request: pb.LoadModelRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.LoadModelReply:
        if not request.key or not request.model_path:
            raise InvalidRequestError("key and model_path are required")
        spec = LoadSpec(
            key=request.key,
            model_path=request.model_path,
            config_dir=request.config_dir,
            loras=tuple(
                LoraSpec(path=lora.path, strength=lora.strength, adapter_name=lora.adapter_name)
                for lora in request.loras
            ),
            dtype=request.dtype,
            superres_model=request.superres_model,
            superres_scale=request.superres_scale,
            prediction_type=request.prediction_type,
            vae_path=request.vae_path,
        )
        result = await self._on_device(self.host.load, spec)
        return pb.LoadModelReply(
            key=result.key,
            architecture=result.architecture,
            bytes=result.bytes,
            estimated_bytes=result.estimated_bytes,
            load_seconds=result.load_seconds,
            source=_LOAD_SOURCES[result.source],
            evicted=list(result.evicted),
            device=result.device,
            evicted_to_ram=list(result.evicted_to_ram),
        )

    @_unary
    async def UnloadModel(
        self, request: pb.UnloadModelRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.UnloadModelReply:
        freed = await self._on_device(self.host.unload, request.key)
        return pb.UnloadModelReply(key=request.key, freed_bytes=freed)

    @_unary
    async def GetMemory(
        self, request: pb.GetMemoryRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.MemoryStats:
        snapshot = self.host.memory()
        return pb.MemoryStats(
            device=snapshot.device,
            device_name=snapshot.device_name,
            total_bytes=snapshot.total_bytes,
            used_bytes=snapshot.used_bytes,
            available_bytes=snapshot.available_bytes,
            models=[
                pb.ResidentModel(
                    key=m.key,
                    model_path=m.model_path,
                    bytes=m.bytes,
                    loras=[
                        pb.Lora(path=x.path, strength=x.strength, adapter_name=x.adapter_name)
                        for x in m.loras
                    ],
                    tier=m.tier,
                    last_used_unix_ms=m.last_used_unix_ms,
                    architecture=m.architecture,
                    in_ram_tier=m.in_ram_tier,
                    base_key=m.base_key,
                    stale=m.stale,
                )
                for m in snapshot.models
            ],
            reserve_bytes=snapshot.reserve_bytes,
            ram_tier_bytes=snapshot.ram_tier_bytes,
            ram_tier_capacity_bytes=snapshot.ram_tier_capacity_bytes,
        )

    @_unary
    async def ListModels(
        self, request: pb.ListModelsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ListModelsReply:
        if self.inventory is None:
            return pb.ListModelsReply()
        files = self.inventory.files(self.host.file_uses())
        return pb.ListModelsReply(
            models=[
                pb.ModelFile(
                    path=f.path,
                    root=f.root,
                    architecture=f.architecture,
                    format=f.format,
                    size_bytes=f.size_bytes,
                    mtime_unix_ms=f.mtime_unix_ms,
                    reason=f.reason,
                    resident_keys=list(f.resident_keys),
                    stale=f.stale,
                )
                for f in files
            ],
            roots=[str(root) for root in self.inventory.roots],
            polling=self.inventory.polling,
        )

    @_unary
    async def RunTask(
        self, request: pb.RunTaskRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.RunTaskReply:
        result = await self._on_device(
            self.tasks.run, request.name, request.args_json, TaskContext(host=self.host)
        )
        return pb.RunTaskReply(result_json=result)

    async def Generate(
        self, request: pb.GenerateRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.GenerateEvent]:
        try:
            self.check_ready()
        except Exception as error:
            await self.errors.abort(context, error)
        with self._in_flight():
            async for event in self._generate_events(request, context):
                yield event

    async def _generate_events(
        self, request: pb.GenerateRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.GenerateEvent]:
        try:
            params = GenerateParams(
                key=request.key,
                prompt=request.prompt,
                negative_prompt=request.negative_prompt,
                width=request.width,
                height=request.height,
                steps=request.steps,
                guidance_scale=request.guidance_scale,
                seed=request.seed,
                superres=request.superres,
                scheduler=request.scheduler,
                clip_skip=request.clip_skip,
            )
            async for item in self._generate(params):
                if isinstance(item, Progress):
                    yield pb.GenerateEvent(
                        progress=pb.GenerateProgress(
                            step=item.step,
                            total_steps=item.total_steps,
                            elapsed_seconds=item.elapsed_seconds,
                        )
                    )
                else:
                    yield pb.GenerateEvent(
                        image=pb.GeneratedImage(
                            png=item.png,
                            seed=item.seed,
                            width=item.width,
                            height=item.height,
                            superres_applied=item.superres_applied,
                        )
                    )
        except Exception as error:
            await self.errors.abort(context, error)

    async def _generate(self, params: GenerateParams) -> AsyncIterator[Progress | GeneratedImage]:
        """Runs the generation on the device thread and relays its progress.

        When the client goes away the call's task is cancelled here; the cancel
        event then stops the denoising loop at the next step boundary."""
        loop = asyncio.get_running_loop()
        progress: asyncio.Queue[Progress] = asyncio.Queue()
        cancel = threading.Event()
        self._cancels.add(cancel)

        def on_progress(event: Progress) -> None:
            loop.call_soon_threadsafe(progress.put_nowait, event)

        job = asyncio.ensure_future(
            self._on_device(self.host.generate, params, on_progress, cancel)
        )
        next_event: asyncio.Future[Progress] | None = None
        try:
            while not job.done() or not progress.empty():
                next_event = asyncio.ensure_future(progress.get())
                await asyncio.wait({job, next_event}, return_when=asyncio.FIRST_COMPLETED)
                if next_event.done():
                    yield next_event.result()
                else:
                    next_event.cancel()
            image: GeneratedImage = job.result()
            yield image
        except BaseException:
            cancel.set()
            if next_event is not None:
                next_event.cancel()
            # Nobody awaits the device job any more; its outcome (usually the
            # cancellation itself) is expected and must not be reported as lost.
            job.add_done_callback(_discard_outcome)
            raise
        finally:
            self._cancels.discard(cancel)


def _discard_outcome(job: asyncio.Future[Any]) -> None:
    if not job.cancelled() and job.exception() is not None:
        log.debug("abandoned generation ended with %r", job.exception())
