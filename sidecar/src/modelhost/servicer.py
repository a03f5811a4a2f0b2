"""gRPC face of the model host: converts proto messages to domain calls and
domain errors to status codes, nothing more."""

import asyncio
import contextlib
import dataclasses
import functools
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import Executor
from typing import Any, TypeVar

import grpc

from modelhost.engine.batch import BatchMember, generate_batch
from modelhost.engine.host import ModelHost
from modelhost.engine.inventory import Inventory
from modelhost.engine.roots import ModelRoots
from modelhost.engine.types import (
    GeneratedImage,
    GenerateParams,
    LoadResult,
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
    PinnedModelsError,
    TaskArgumentError,
    TaskError,
    TaskPluginError,
    TaskResultError,
    UnavailableError,
    UnknownTaskError,
)
from modelhost.relay import ProgressRelay
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
        bench_load_delay_seconds: float = 0.0,
    ) -> None:
        self.host = host
        self.bench_load_delay_seconds = bench_load_delay_seconds
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
            raise UnavailableError("the model host is shutting down")
        if not self.ready:
            raise UnavailableError("the model host is starting; retry when its health is SERVING")

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

    def load_on_device(self, spec: LoadSpec) -> LoadResult:
        """The host's load, plus the benchmark-only delay (MODELHOST_BENCH_LOAD_DELAY_MS) for a
        load that is not resident: slept on the device thread, so it holds the device as a
        real load would."""
        result = self.host.load(spec)
        delay = self.bench_load_delay_seconds
        if delay <= 0 or result.source is LoadSource.RESIDENT:
            return result
        time.sleep(delay)
        return dataclasses.replace(result, load_seconds=result.load_seconds + delay)

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
            pinned=request.pinned,
        )
        result = await self._on_device(self.load_on_device, spec)
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
            evicted_on_oom=list(result.evicted_on_oom),
        )

    @_unary
    async def UnloadModel(
        self, request: pb.UnloadModelRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.UnloadModelReply:
        if request.to_ram_tier:
            freed, parked = await self._on_device(self.host.offload, request.key)
            return pb.UnloadModelReply(key=request.key, freed_bytes=freed, parked=parked)
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
    async def SetModelRoots(
        self, request: pb.SetModelRootsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.SetModelRootsReply:
        if not request.roots:
            raise InvalidRequestError("roots: at least one folder is required")
        relative = [root for root in request.roots if not os.path.isabs(root)]
        if relative:
            raise InvalidRequestError(f"roots: must be absolute paths, got '{relative[0]}'")
        roots = ModelRoots(request.roots)
        # Loads check the new roots from now on; the inventory's rescan reads folders,
        # so it runs off the event loop (and off the device thread: a generation may run).
        self.host.set_roots(roots)
        if self.inventory is not None:
            await asyncio.get_running_loop().run_in_executor(
                None, self.inventory.set_roots, roots.roots
            )
        log.info("model roots: %s", ", ".join(roots.roots))
        return pb.SetModelRootsReply(roots=list(roots.roots))

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
            async for item in self._generate(_generate_params(request)):
                if isinstance(item, Progress):
                    yield pb.GenerateEvent(progress=_progress_message(item))
                else:
                    yield pb.GenerateEvent(image=_image_message(item))
        except Exception as error:
            await self.errors.abort(context, error)

    async def _generate(self, params: GenerateParams) -> AsyncIterator[Progress | GeneratedImage]:
        """Runs the generation on the device thread and relays its progress.

        When the client goes away the call's task is cancelled here; the cancel
        event then stops the denoising loop at the next step boundary."""
        relay: ProgressRelay[Progress] = ProgressRelay(asyncio.get_running_loop())
        cancel = threading.Event()
        self._cancels.add(cancel)
        job = asyncio.ensure_future(self._on_device(self.host.generate, params, relay.put, cancel))
        try:
            async with contextlib.aclosing(relay.batches(job)) as batches:
                async for batch in batches:
                    for event in batch:
                        yield event
            image: GeneratedImage = job.result()
            yield image
        except BaseException:
            cancel.set()
            # Nobody awaits the device job any more; its outcome (usually the
            # cancellation itself) is expected and must not be reported as lost.
            job.add_done_callback(_discard_outcome)
            raise
        finally:
            self._cancels.discard(cancel)

    async def GenerateBatch(
        self,
        request_iterator: AsyncIterator[pb.GenerateBatchRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[pb.GenerateBatchEvent]:
        try:
            self.check_ready()
        except Exception as error:
            await self.errors.abort(context, error)
        with self._in_flight():
            async for event in self._batch_events(request_iterator, context):
                yield event

    async def _batch_events(
        self,
        request_iterator: AsyncIterator[pb.GenerateBatchRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[pb.GenerateBatchEvent]:
        """Runs the batch on the device thread; relays each member's progress and outcome,
        and the client's member cancels, which end that member at once."""
        requests = aiter(request_iterator)
        try:
            first = await anext(requests, None)
            if first is None or first.WhichOneof("request") != "batch":
                raise InvalidRequestError("batch: the call's first message must carry the members")
            if not first.batch.members:
                raise InvalidRequestError("batch.members: at least one member is required")
        except Exception as error:
            await self.errors.abort(context, error)
            return
        # (member, progress) from the device thread; (member, None) for a client's cancel.
        relay: ProgressRelay[tuple[int, Progress | None]] = ProgressRelay(
            asyncio.get_running_loop()
        )
        cancels = [threading.Event() for _ in first.batch.members]
        ended = [False] * len(cancels)
        self._cancels.update(cancels)

        def on_progress(member: int) -> Callable[[Progress], None]:
            return lambda event: relay.put((member, event))

        members = [
            BatchMember(_generate_params(request), on_progress(i), cancels[i])
            for i, request in enumerate(first.batch.members)
        ]
        job = asyncio.ensure_future(self._on_device(generate_batch, self.host, members))
        reader = asyncio.ensure_future(_read_cancels(requests, cancels, relay))
        relay.watch(reader)
        try:
            async with contextlib.aclosing(relay.batches(job)) as batches:
                async for batch in batches:
                    if reader.done() and not reader.cancelled() and reader.exception() is not None:
                        reader.result()  # raises the client's bad cancel
                    for member, progress in batch:
                        if ended[member]:
                            continue
                        if progress is None:
                            ended[member] = True
                            yield pb.GenerateBatchEvent(
                                member=member, cancelled=pb.GenerateMemberCancelled()
                            )
                        else:
                            yield pb.GenerateBatchEvent(
                                member=member, progress=_progress_message(progress)
                            )
            for member, outcome in enumerate(job.result()):
                if not ended[member]:
                    yield self._outcome_event(member, outcome)
        except BaseException as error:
            for cancel in cancels:
                cancel.set()
            job.add_done_callback(_discard_outcome)
            if isinstance(error, Exception):
                await self.errors.abort(context, error)
            raise
        finally:
            reader.cancel()
            self._cancels.difference_update(cancels)

    def _outcome_event(
        self, member: int, outcome: GeneratedImage | Exception
    ) -> pb.GenerateBatchEvent:
        if isinstance(outcome, GeneratedImage):
            return pb.GenerateBatchEvent(member=member, image=_image_message(outcome))
        if isinstance(outcome, GenerationCancelledError):
            return pb.GenerateBatchEvent(member=member, cancelled=pb.GenerateMemberCancelled())
        code, detail = self.errors.status(outcome)
        return pb.GenerateBatchEvent(
            member=member, error=pb.GenerateMemberError(code=code.name, message=detail)
        )


async def _read_cancels(
    requests: AsyncIterator[pb.GenerateBatchRequest],
    cancels: list[threading.Event],
    relay: ProgressRelay[tuple[int, Progress | None]],
) -> None:
    """Applies the client's member cancels until it closes its side of the call."""
    async for request in requests:
        if request.WhichOneof("request") != "cancel_member":
            raise InvalidRequestError("batch: only the call's first message carries members")
        member = request.cancel_member
        if member >= len(cancels):
            raise InvalidRequestError(
                f"cancel_member: {member} is no member of this batch of {len(cancels)}"
            )
        if not cancels[member].is_set():
            cancels[member].set()
            relay.post((member, None))


def _generate_params(request: pb.GenerateRequest) -> GenerateParams:
    return GenerateParams(
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


def _progress_message(progress: Progress) -> pb.GenerateProgress:
    return pb.GenerateProgress(
        step=progress.step,
        total_steps=progress.total_steps,
        elapsed_seconds=progress.elapsed_seconds,
    )


def _image_message(image: GeneratedImage) -> pb.GeneratedImage:
    return pb.GeneratedImage(
        png=image.png,
        seed=image.seed,
        width=image.width,
        height=image.height,
        superres_applied=image.superres_applied,
    )


def _discard_outcome(job: asyncio.Future[Any]) -> None:
    if not job.cancelled() and job.exception() is not None:
        log.debug("abandoned generation ended with %r", job.exception())
