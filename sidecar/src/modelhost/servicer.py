"""gRPC face of the model host: converts proto messages to domain calls and their
results back, nothing more. Each method runs inside the error interceptor (readiness,
calls in flight, the one error table); generations stream through streams.py."""

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor
from typing import Any, TypeAlias, TypeVar

import grpc

from modelhost.bench_delay import Loads
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
    MemorySnapshot,
    Progress,
)

# STATUS_BY_ERROR: the gateway's contract test (grpc-error.contract.spec.ts) reads the table here.
from modelhost.error_interceptor import STATUS_BY_ERROR as STATUS_BY_ERROR
from modelhost.error_interceptor import ErrorTranslator, streaming, unary
from modelhost.errors import GenerationCancelledError, InvalidRequestError
from modelhost.lifecycle import ServingLifecycle
from modelhost.streams import GenerationStreams, MemberEvent
from modelhost.tasks import REGISTRY, TaskContext, TaskRegistry
from modelhost.v1 import modelhost_pb2 as pb
from modelhost.v1 import modelhost_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

_LOAD_SOURCES = {
    LoadSource.DISK: pb.LOAD_SOURCE_DISK,
    LoadSource.RESIDENT: pb.LOAD_SOURCE_RESIDENT,
    LoadSource.RAM: pb.LOAD_SOURCE_RAM,
    LoadSource.SHARED_BASE: pb.LOAD_SOURCE_SHARED_BASE,
}

Reply = TypeVar("Reply")
Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]


class ModelHostServicer(pb_grpc.ModelHostServicer):
    def __init__(
        self,
        host: ModelHost,
        device_executor: Executor,
        debug: bool = False,
        *,
        inventory: Inventory | None = None,
        tasks: TaskRegistry = REGISTRY,
        loads: Loads | None = None,
    ) -> None:
        self.host = host
        # What LoadModel calls: the host itself, or a wrapper around it (the benchmark-only
        # delay, bench_delay.py).
        self.loads = loads
        self.errors = ErrorTranslator(debug)
        self.lifecycle = ServingLifecycle()
        self.streams = GenerationStreams(host, device_executor, self.lifecycle)
        self.inventory = inventory
        self.tasks = tasks

    async def _on_device(self, fn: Callable[..., Reply], *args: Any) -> Reply:
        return await self.streams.on_device(fn, *args)

    @unary
    async def LoadModel(self, request: pb.LoadModelRequest, context: Context) -> pb.LoadModelReply:
        spec = _load_spec(request)
        load = self.loads.load if self.loads is not None else self.host.load
        return _load_reply(await self._on_device(load, spec))

    @unary
    async def Prefetch(self, request: pb.PrefetchRequest, context: Context) -> pb.PrefetchReply:
        specs: list[LoadSpec] = []
        skipped: list[str] = []
        for load in request.loads:
            try:
                specs.append(_load_spec(load))
            except InvalidRequestError:
                skipped.append(load.key)  # a hint's bad entry is skipped, not the hint
        # Off the event loop (it reads file headers) and off the device thread (a long
        # generation must not hold a hint back).
        wanted, refused = await asyncio.get_running_loop().run_in_executor(
            None, self.host.prefetch, specs
        )
        return pb.PrefetchReply(wanted=wanted, skipped=skipped + refused)

    @unary
    async def UnloadModel(
        self, request: pb.UnloadModelRequest, context: Context
    ) -> pb.UnloadModelReply:
        if request.to_ram_tier:
            freed, parked = await self._on_device(self.host.offload, request.key)
            return pb.UnloadModelReply(key=request.key, freed_bytes=freed, parked=parked)
        freed = await self._on_device(self.host.unload, request.key)
        return pb.UnloadModelReply(key=request.key, freed_bytes=freed)

    @unary
    async def GetMemory(self, request: pb.GetMemoryRequest, context: Context) -> pb.MemoryStats:
        return _memory_stats(self.host.memory())

    @unary
    async def ListModels(
        self, request: pb.ListModelsRequest, context: Context
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

    @unary
    async def SetModelRoots(
        self, request: pb.SetModelRootsRequest, context: Context
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

    @unary
    async def RunTask(self, request: pb.RunTaskRequest, context: Context) -> pb.RunTaskReply:
        result = await self._on_device(
            self.tasks.run, request.name, request.args_json, TaskContext(host=self.host)
        )
        return pb.RunTaskReply(result_json=result)

    @streaming
    async def Generate(
        self, request: pb.GenerateRequest, context: Context
    ) -> AsyncIterator[pb.GenerateEvent]:
        async for item in self.streams.generate(_generate_params(request)):
            if isinstance(item, Progress):
                yield pb.GenerateEvent(progress=_progress_message(item))
            else:
                yield pb.GenerateEvent(image=_image_message(item))

    @streaming
    async def GenerateBatch(
        self, request_iterator: AsyncIterator[pb.GenerateBatchRequest], context: Context
    ) -> AsyncIterator[pb.GenerateBatchEvent]:
        requests = aiter(request_iterator)
        first = await anext(requests, None)
        if first is None or first.WhichOneof("request") != "batch":
            raise InvalidRequestError("batch: the call's first message must carry the members")
        members = [_generate_params(request) for request in first.batch.members]
        async for event in self.streams.generate_batch(members, _member_cancels(requests)):
            yield self._member_event(event)

    def _member_event(self, event: MemberEvent) -> pb.GenerateBatchEvent:
        member, item = event
        if isinstance(item, Progress):
            return pb.GenerateBatchEvent(member=member, progress=_progress_message(item))
        if isinstance(item, GeneratedImage):
            return pb.GenerateBatchEvent(member=member, image=_image_message(item))
        if isinstance(item, GenerationCancelledError):
            return pb.GenerateBatchEvent(member=member, cancelled=pb.GenerateMemberCancelled())
        code, detail = self.errors.status(item)
        return pb.GenerateBatchEvent(
            member=member, error=pb.GenerateMemberError(code=code.name, message=detail)
        )


async def _member_cancels(
    requests: AsyncIterator[pb.GenerateBatchRequest],
) -> AsyncIterator[int]:
    """The members the client cancels, from the messages after the first."""
    async for request in requests:
        if request.WhichOneof("request") != "cancel_member":
            raise InvalidRequestError("batch: only the call's first message carries members")
        yield request.cancel_member


def _load_spec(request: pb.LoadModelRequest) -> LoadSpec:
    if not request.key or not request.model_path:
        raise InvalidRequestError("key and model_path are required")
    return LoadSpec(
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


def _load_reply(result: LoadResult) -> pb.LoadModelReply:
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
        prefetched=result.prefetched,
    )


def _memory_stats(snapshot: MemorySnapshot) -> pb.MemoryStats:
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
