"""Resident pipelines: loading, eviction, generation and memory facts.

Called from worker threads; every device operation (load, unload, generate)
is serialised by one lock, while memory queries only read bookkeeping.
"""

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from modelhost.engine.checkpoint import (
    PICKLE_SUFFIXES,
    CheckpointInfo,
    inspect_diffusers_folder,
    inspect_single_file,
)
from modelhost.engine.device import Device
from modelhost.engine.pipelines import (
    DTYPES,
    Pipeline,
    apply_loras,
    build_pipeline,
    generate_png,
    resident_bytes,
)
from modelhost.engine.types import (
    GeneratedImage,
    GenerateParams,
    LoadResult,
    LoadSource,
    LoadSpec,
    MemorySnapshot,
    Progress,
    ResidentInfo,
)
from modelhost.errors import (
    GenerationCancelledError,
    InvalidModelError,
    InvalidRequestError,
    ModelFileNotFoundError,
    NotLoadedError,
    OutOfMemoryError,
)

log = logging.getLogger(__name__)


@dataclass
class _Resident:
    spec: LoadSpec
    architecture: str
    pipe: Pipeline
    bytes: int
    last_used_unix_ms: int
    busy: int = field(default=0)


class ModelHost:
    def __init__(self, device: Device, allow_pickle: bool = False) -> None:
        self.device = device
        self.allow_pickle = allow_pickle
        self._resident: OrderedDict[str, _Resident] = OrderedDict()  # least recently used first
        self._book_lock = threading.Lock()
        self._device_lock = threading.Lock()

    def load(self, spec: LoadSpec) -> LoadResult:
        started = time.perf_counter()
        with self._device_lock:
            with self._book_lock:
                existing = self._resident.get(spec.key)
                if existing is not None:
                    self._touch(spec.key)
                    return LoadResult(
                        key=spec.key,
                        architecture=existing.architecture,
                        bytes=existing.bytes,
                        estimated_bytes=existing.bytes,
                        load_seconds=time.perf_counter() - started,
                        source=LoadSource.RESIDENT,
                        device=self.device.label,
                    )
            info = self._inspect(spec)
            dtype = self._dtype(spec.dtype)
            estimate = info.device_bytes(torch.empty((), dtype=dtype).element_size())
            evicted = self._make_room(estimate)
            try:
                pipe, measured = self._build(spec, info, dtype)
            except torch.OutOfMemoryError:
                evicted += self._evict_idle(lambda: True)
                try:
                    pipe, measured = self._build(spec, info, dtype)
                except torch.OutOfMemoryError as e:
                    raise OutOfMemoryError(
                        f"out of memory loading {spec.model_path} "
                        f"(about {estimate / 2**30:.2f} GiB needed) after evicting every idle model"
                    ) from e
            with self._book_lock:
                self._resident[spec.key] = _Resident(
                    spec=spec,
                    architecture=info.architecture,
                    pipe=pipe,
                    bytes=measured,
                    last_used_unix_ms=_now_ms(),
                )
        seconds = time.perf_counter() - started
        log.info(
            "loaded %s (%s, %d bytes) in %.2fs", spec.key, info.architecture, measured, seconds
        )
        return LoadResult(
            key=spec.key,
            architecture=info.architecture,
            bytes=measured,
            estimated_bytes=estimate,
            load_seconds=seconds,
            source=LoadSource.DISK,
            device=self.device.label,
            evicted=tuple(evicted),
        )

    def unload(self, key: str) -> int:
        with self._device_lock:
            return self._unload_locked(key)

    def generate(
        self,
        params: GenerateParams,
        on_progress: Callable[[Progress], None],
        cancel: threading.Event,
    ) -> GeneratedImage:
        if params.steps < 1:
            raise InvalidRequestError("steps must be at least 1")
        with self._device_lock:
            with self._book_lock:
                resident = self._resident.get(params.key)
                if resident is None:
                    raise NotLoadedError(params.key)
                self._touch(params.key)
                resident.busy += 1
            started = time.perf_counter()
            try:
                png = generate_png(
                    resident.pipe,
                    params,
                    lambda step: on_progress(
                        Progress(step, params.steps, time.perf_counter() - started)
                    ),
                    cancel,
                )
            finally:
                with self._book_lock:
                    resident.busy -= 1
        if png is None:
            raise GenerationCancelledError()
        return GeneratedImage(png=png, seed=params.seed, width=params.width, height=params.height)

    def memory(self) -> MemorySnapshot:
        device_memory = self.device.memory()
        with self._book_lock:
            models = tuple(
                ResidentInfo(
                    key=key,
                    model_path=r.spec.model_path,
                    architecture=r.architecture,
                    bytes=r.bytes,
                    loras=r.spec.loras,
                    tier="gpu" if self.device.is_cuda else "cpu",
                    last_used_unix_ms=r.last_used_unix_ms,
                )
                for key, r in self._resident.items()
            )
        return MemorySnapshot(
            device=self.device.label,
            device_name=self.device.display_name,
            total_bytes=device_memory.total_bytes,
            used_bytes=device_memory.total_bytes - device_memory.free_bytes,
            available_bytes=device_memory.free_bytes,
            models=models,
        )

    def resident_keys(self) -> list[str]:
        with self._book_lock:
            return list(self._resident)

    def _inspect(self, spec: LoadSpec) -> CheckpointInfo:
        path = Path(spec.model_path)
        if not path.exists():
            raise ModelFileNotFoundError(spec.model_path)
        if path.is_dir():
            return inspect_diffusers_folder(path)
        if path.suffix.lower() in PICKLE_SUFFIXES and not self.allow_pickle:
            raise InvalidModelError(
                f"{spec.model_path}: pickle checkpoints can run arbitrary code and are refused; "
                "convert it to .safetensors or start the sidecar with --allow-pickle"
            )
        return inspect_single_file(path)

    def _dtype(self, name: str) -> torch.dtype:
        if not name:
            return self.device.default_dtype()
        if name not in DTYPES:
            raise InvalidRequestError(f"dtype must be one of {', '.join(DTYPES)}, got '{name}'")
        return DTYPES[name]

    def _build(
        self, spec: LoadSpec, info: CheckpointInfo, dtype: torch.dtype
    ) -> tuple[Pipeline, int]:
        before = self.device.allocated_bytes()
        pipe = build_pipeline(
            Path(spec.model_path),
            info.architecture,
            spec.config_dir,
            dtype,
            self.device.torch_device,
        )
        try:
            apply_loras(pipe, spec.loras)
        except BaseException:
            del pipe
            self.device.release_cached_memory()
            raise
        if self.device.is_cuda:
            return pipe, self.device.allocated_bytes() - before
        return pipe, resident_bytes(pipe)

    def _make_room(self, needed_bytes: int) -> list[str]:
        def short_of_memory() -> bool:
            return self.device.memory().free_bytes < needed_bytes

        return self._evict_idle(short_of_memory)

    def _evict_idle(self, still_needed: Callable[[], bool]) -> list[str]:
        """Unloads idle pipelines, least recently used first, while still_needed() holds."""
        evicted: list[str] = []
        while still_needed():
            with self._book_lock:
                victim = next((k for k, r in self._resident.items() if r.busy == 0), None)
            if victim is None:
                break
            self._unload_locked(victim)
            evicted.append(victim)
        return evicted

    def _unload_locked(self, key: str) -> int:
        with self._book_lock:
            resident = self._resident.pop(key, None)
        if resident is None:
            raise NotLoadedError(key)
        before = self.device.allocated_bytes()
        recorded = resident.bytes
        del resident
        self.device.release_cached_memory()
        freed = before - self.device.allocated_bytes() if self.device.is_cuda else recorded
        log.info("unloaded %s, freed %d bytes", key, freed)
        return freed

    def _touch(self, key: str) -> None:
        self._resident.move_to_end(key)
        self._resident[key].last_used_unix_ms = _now_ms()


def _now_ms() -> int:
    return int(time.time() * 1000)
