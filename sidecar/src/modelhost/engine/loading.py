"""Loading and unloading keys: a new base built from its file (or an existing one
shared, or brought back from the RAM tier), the key's LoRAs and upscaler attached to
it, and the reverse. Runs on the device thread, under the host's device lock."""

import functools
import logging
import time
from collections.abc import Callable
from pathlib import Path

import torch

from modelhost.engine import load_checks
from modelhost.engine.bases import (
    ActiveAdapters,
    Adapter,
    Base,
    BaseId,
    Key,
    SharedUpscaler,
    resolved,
)
from modelhost.engine.device import Device
from modelhost.engine.files import fingerprint
from modelhost.engine.pipelines import (
    Pipeline,
    build_pipeline,
    default_config_dir,
    delete_adapter,
    load_lora,
    lora_estimate_bytes,
    replace_vae,
    resident_bytes,
)
from modelhost.engine.progress import logged_progress
from modelhost.engine.residency import Evictions, Residency, extend, now_ms
from modelhost.engine.schedulers import check_prediction_type
from modelhost.engine.types import LoadResult, LoadSource, LoadSpec, LoraSpec
from modelhost.engine.upscaler import load_upscaler
from modelhost.errors import InvalidRequestError, NotLoadedError

log = logging.getLogger(__name__)

# build_pipeline's signature; injectable so that tests can make a load fail like CUDA does.
Builder = Callable[[Path, str, str, torch.dtype, torch.device], Pipeline]


class Loader:
    def __init__(
        self,
        residency: Residency,
        allow_pickle: bool,
        builder: Builder = build_pipeline,
    ) -> None:
        self.residency = residency
        self.device: Device = residency.device
        self.allow_pickle = allow_pickle
        self.builder = builder
        # Called before a base is built from disk: waits for a prefetch building it, and
        # keeps the prefetcher from starting one (Prefetcher.claim; the host releases it).
        self.claim_prefetch: Callable[[BaseId], None] = lambda _: None

    def load(self, spec: LoadSpec, started: float) -> LoadResult:
        residency = self.residency
        residency.oom_evicted = []
        existing = residency.keys.get(spec.key)
        if existing is None:
            return self._load_new(spec, started)
        if existing.spec != spec:
            raise InvalidRequestError(
                f"key '{spec.key}' is loaded with a different definition; "
                "unload it first or load the new definition under a new key"
            )
        if existing.spec.pinned != spec.pinned:
            with residency.lock:
                existing.spec = spec  # the latest load says whether it is pinned
        source = LoadSource.RESIDENT
        evictions: Evictions = ([], [])
        if existing.base.parked:
            evictions = residency.unpark(existing.base)
            source = LoadSource.RAM
        residency.touch(existing)
        return LoadResult(
            key=spec.key,
            architecture=existing.base.architecture,
            bytes=existing.bytes,
            estimated_bytes=existing.bytes,
            load_seconds=time.perf_counter() - started,
            source=source,
            device=self.device.label,
            evicted=tuple(evictions[0]),
            evicted_to_ram=tuple(evictions[1]),
            evicted_on_oom=tuple(residency.oom_evicted),
        )

    def _load_new(self, spec: LoadSpec, started: float) -> LoadResult:
        residency = self.residency
        dtype = load_checks.dtype_of(spec.dtype, self.device.default_dtype())
        check_prediction_type(spec.prediction_type)
        load_checks.check_loras(spec)
        info = load_checks.inspect(spec, self.allow_pickle)
        load_checks.check_vae(spec, self.allow_pickle)
        item_size = torch.empty((), dtype=dtype).element_size()
        base_id = load_checks.base_id(spec, dtype)
        base = residency.bases.get(base_id)
        prefetched = False
        if base is None:
            self.claim_prefetch(base_id)
            base = residency.adopt_prefetched(base_id)
            prefetched = base is not None
        attach_estimate = sum(
            lora_estimate_bytes(lora.path, item_size)
            for lora in spec.loras
            if base is None or resolved(lora.path) not in base.adapters
        ) + load_checks.upscaler_estimate(spec, base)
        evictions: Evictions = ([], [])

        # A prefetched base is new to the keys: the first key's load counts its bytes.
        new_base = base is None or prefetched
        if base is None:
            estimate = info.device_bytes(item_size) + attach_estimate
            extend(evictions, residency.make_room(estimate, keep=set()))

            def build() -> tuple[Pipeline, int]:
                # Measured around the build alone: evictions before a retry must not
                # count against it.
                before = self.device.allocated_bytes()
                size = f"about {estimate / 2**30:.2f} GiB"
                with logged_progress(
                    log, f"loading {spec.model_path} ({info.architecture}, {size})"
                ):
                    pipe = self.builder(
                        Path(spec.model_path),
                        info.architecture,
                        spec.config_dir or default_config_dir(info, spec.prediction_type),
                        dtype,
                        self.device.torch_device,
                    )
                if spec.vae_path:
                    replace_vae(pipe, Path(spec.vae_path), dtype, self.device.torch_device)
                return pipe, self._measure(pipe, before)

            pipe, measured_base = residency.with_oom_retry(
                build,
                set(),
                f"loading {spec.model_path} (about {estimate / 2**30:.2f} GiB)",
                evictions,
            )
            base = Base(id=base_id, architecture=info.architecture, pipe=pipe, bytes=measured_base)
            with residency.lock:
                residency.bases[base_id] = base
            source = LoadSource.DISK
        else:
            # A prefetched base is parked: unpark makes the device room for it, so only
            # what attaches to it is still to fit (counting it again refused the switch).
            estimate = attach_estimate
            source = LoadSource.SHARED_BASE
            if base.parked:
                extend(evictions, residency.unpark(base))
                source = LoadSource.RAM
            extend(evictions, residency.make_room(estimate, keep={base.id}))

        try:
            adapters, added = self._attach(base, spec, dtype, evictions)
        except BaseException:
            self._detach(base, spec.key)
            if not base.keys:
                residency.drop_base(base)
            del base
            self.device.release_cached_memory()
            raise
        measured = base.bytes + added if new_base else added
        key = Key(
            spec=spec,
            base=base,
            adapters=adapters,
            upscaler_file=resolved(spec.superres_model) if spec.superres_model else "",
            bytes=measured,
            last_used_unix_ms=now_ms(),
        )
        with residency.lock:
            base.keys.append(spec.key)
            residency.keys[spec.key] = key
        residency.touch(key)
        seconds = time.perf_counter() - started
        log.info(
            "loaded %s (%s, %s%s, %d bytes) in %.2fs",
            spec.key,
            info.architecture,
            source.value,
            ", prefetched" if prefetched else "",
            measured,
            seconds,
        )
        return LoadResult(
            key=spec.key,
            architecture=info.architecture,
            bytes=measured,
            estimated_bytes=estimate,
            load_seconds=seconds,
            source=source,
            device=self.device.label,
            evicted=tuple(evictions[0]),
            evicted_to_ram=tuple(evictions[1]),
            evicted_on_oom=tuple(residency.oom_evicted),
            prefetched=prefetched,
        )

    def _attach(
        self,
        base: Base,
        spec: LoadSpec,
        dtype: torch.dtype,
        evictions: Evictions,
    ) -> tuple[ActiveAdapters, int]:
        """Adds the key's LoRAs and upscaler to the base, reusing those another key on
        the same base already brought. Returns the key's adapters and the bytes added."""
        lock = self.residency.lock
        active: list[tuple[str, float]] = []
        added = 0
        for lora in spec.loras:
            file = resolved(lora.path)
            adapter = base.adapters.get(file)
            if adapter is None:
                name = _free_adapter_name(base, lora.adapter_name or Path(lora.path).stem)
                size = self.residency.with_oom_retry(
                    functools.partial(self._load_lora_measured, base.pipe, lora, name),
                    {base.id},
                    f"loading LoRA {lora.path}",
                    evictions,
                )
                adapter = Adapter(name=name, bytes=size, fingerprint=fingerprint(Path(file)))
                with lock:
                    base.adapters[file] = adapter
                # Loading an adapter may change which ones diffusers has active.
                base.active = None
                added += adapter.bytes
            with lock:
                adapter.users.add(spec.key)
            active.append((adapter.name, lora.strength))
        if spec.superres_model:
            file = resolved(spec.superres_model)
            shared = base.upscalers.get(file)
            if shared is None:
                upscaler = self.residency.with_oom_retry(
                    lambda: load_upscaler(
                        Path(spec.superres_model),
                        self.device.torch_device,
                        dtype,
                        self.allow_pickle,
                    ),
                    {base.id},
                    f"loading upscaler {spec.superres_model}",
                    evictions,
                )
                shared = SharedUpscaler(upscaler=upscaler, fingerprint=fingerprint(Path(file)))
                with lock:
                    base.upscalers[file] = shared
                added += upscaler.bytes
            with lock:
                shared.users.add(spec.key)
        return tuple(active), added

    def _detach(self, base: Base, key: str) -> int:
        """Drops the key's claim on the base's adapters and upscalers; deletes those no
        other key uses. Returns their recorded bytes."""
        unused: list[Adapter] = []
        freed = 0
        with self.residency.lock:
            for file, adapter in list(base.adapters.items()):
                adapter.users.discard(key)
                if not adapter.users:
                    del base.adapters[file]
                    unused.append(adapter)
            for file, shared in list(base.upscalers.items()):
                shared.users.discard(key)
                if not shared.users:
                    del base.upscalers[file]
                    freed += shared.upscaler.bytes
        # Device work, outside the bookkeeping lock: memory queries must not wait for it.
        for adapter in unused:
            delete_adapter(base.pipe, adapter.name)
            base.active = None
            freed += adapter.bytes
        return freed

    def unload(self, key: str) -> int:
        residency = self.residency
        with residency.lock:
            entry = residency.keys.pop(key, None)
            if entry is None:
                raise NotLoadedError(key)
            base = entry.base
            base.keys.remove(key)
        on_device = not base.parked
        before = self.device.allocated_bytes()
        recorded = self._detach(base, key)
        if not base.keys:
            recorded += base.bytes
            residency.drop_base(base)
        del entry, base
        self.device.release_cached_memory()
        freed = before - self.device.allocated_bytes() if self.device.is_cuda else recorded
        if self.device.is_cuda and not on_device:
            freed = recorded  # it was in system memory: that is what came back
        log.info("unloaded %s, freed %d bytes", key, freed)
        return freed

    def _load_lora_measured(self, pipe: Pipeline, lora: LoraSpec, name: str) -> int:
        # Measured around the load alone: evictions before a retry must not count.
        before = self._pipe_bytes(pipe)
        load_lora(pipe, lora, name)
        return self._pipe_bytes(pipe) - before

    def _pipe_bytes(self, pipe: Pipeline) -> int:
        """What the pipeline holds now: allocated bytes on CUDA (the whole device,
        meaningful as a difference), parameter + buffer bytes on CPU."""
        if self.device.is_cuda:
            return self.device.allocated_bytes()
        return resident_bytes(pipe)

    def _measure(self, pipe: Pipeline, allocated_before: int) -> int:
        if self.device.is_cuda:
            return self.device.allocated_bytes() - allocated_before
        return resident_bytes(pipe)


def _free_adapter_name(base: Base, wanted: str) -> str:
    # peft builds module names from adapter names: dots would nest them.
    wanted = wanted.replace(".", "_") or "lora"
    taken = {a.name for a in base.adapters.values()}
    name, n = wanted, 1
    while name in taken:
        n += 1
        name = f"{wanted}-{n}"
    return name
