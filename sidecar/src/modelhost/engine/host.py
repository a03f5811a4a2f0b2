"""Resident pipelines: loading, sharing, eviction, generation and memory facts.

Vocabulary:
- a *key* is what the gateway loads (one mode): a base model plus LoRAs and an
  optional upscaler.
- a *base* is one diffusers pipeline: one checkpoint read with one config at one
  dtype. Keys that differ only in LoRAs or upscaler share it; their LoRAs are
  adapters on it, and each generation activates its key's adapters and strengths.
- eviction works on bases, because a pipeline is what holds device memory: every
  key on an evicted base leaves the device with it. With a RAM tier, an evicted
  base is parked in system memory (page-locked on CUDA, so that it comes back at
  the bus's speed) and its keys stay loaded.
- a base is *pinned* while any of its keys was loaded pinned: make-room and the
  out-of-memory retry never evict it, and a load that fits only by evicting it fails
  with PinnedModelsError. Explicit unloads still drop it.

Called from worker threads; every device operation (load, unload, generate) is
serialised by one lock, while memory queries only read bookkeeping under a
second, short-held lock. Every change to the bookkeeping (bases, keys, a base's
adapters, upscalers and tier) is made under that second lock, since memory queries
come from the event loop while a load runs; reads on the device thread need no lock,
because only the device thread changes anything. Memory queries touch no files:
whether a loaded file changed on disk comes from the inventory's watch.
"""

import contextlib
import functools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

import torch
from PIL import Image

from modelhost.engine.checkpoint import (
    PICKLE_SUFFIXES,
    CheckpointInfo,
    inspect_diffusers_folder,
    inspect_single_file,
    read_safetensors_header,
)
from modelhost.engine.device import Device
from modelhost.engine.files import Fingerprint, fingerprint
from modelhost.engine.pipelines import (
    DTYPES,
    Pipeline,
    activate_adapters,
    build_pipeline,
    default_config_dir,
    delete_adapter,
    encode_png,
    generate_image,
    load_lora,
    lora_estimate_bytes,
    replace_vae,
    resident_bytes,
)
from modelhost.engine.progress import logged_progress
from modelhost.engine.roots import ModelRoots
from modelhost.engine.schedulers import check_prediction_type, check_scheduler_name
from modelhost.engine.types import (
    FileUse,
    GeneratedImage,
    GenerateParams,
    LoadResult,
    LoadSource,
    LoadSpec,
    LoraSpec,
    MemoryPolicy,
    MemorySnapshot,
    Progress,
    ResidentInfo,
)
from modelhost.engine.upscaler import Upscaler, load_upscaler, upscale
from modelhost.errors import (
    GenerationCancelledError,
    InvalidModelError,
    InvalidRequestError,
    ModelFileNotFoundError,
    ModelHostError,
    NotLoadedError,
    OutOfMemoryError,
    PinnedModelsError,
)

log = logging.getLogger(__name__)

# (model path, config dir, dtype name, the file's fingerprint, VAE path, its fingerprint),
# paths resolved ("" for none): what makes two keys share a base. Fingerprints are part of
# it so that a key loaded after a file changed on disk gets the new weights, not the stale
# base of an older key.
BaseId = tuple[str, str, str, Fingerprint | None, str, Fingerprint | None]
# build_pipeline's signature; injectable so that tests can make a load fail like CUDA does.
Builder = Callable[[Path, str, str, torch.dtype, torch.device], Pipeline]
# (adapter name inside the pipeline, strength)
ActiveAdapters = tuple[tuple[str, float], ...]

T = TypeVar("T")


class ChangeWatch(Protocol):
    """Tells whether a file changed since it was loaded, from what a watcher already
    knows (the inventory), without touching the disk."""

    def changed_since(self, path: str, loaded: Fingerprint | None) -> bool: ...


@dataclass
class _Adapter:
    name: str  # inside the pipeline; unique per base
    bytes: int
    fingerprint: Fingerprint | None  # of its file when it was loaded
    users: set[str] = field(default_factory=set)


@dataclass
class _SharedUpscaler:
    upscaler: Upscaler
    fingerprint: Fingerprint | None  # of its file when it was loaded
    users: set[str] = field(default_factory=set)


@dataclass
class _Base:
    id: BaseId
    architecture: str
    pipe: Pipeline
    bytes: int  # the pipeline's own weights
    keys: list[str] = field(default_factory=list)  # oldest first
    adapters: dict[str, _Adapter] = field(default_factory=dict)  # by LoRA file
    upscalers: dict[str, _SharedUpscaler] = field(default_factory=dict)  # by file
    parked: bool = False  # in the RAM tier
    busy: int = 0  # generations running on it: never evicted while > 0
    active: ActiveAdapters | None = None  # adapters set on the pipe; None: unknown

    def total_bytes(self) -> int:
        return (
            self.bytes
            + sum(a.bytes for a in self.adapters.values())
            + sum(u.upscaler.bytes for u in self.upscalers.values())
        )


@dataclass
class _Key:
    spec: LoadSpec
    base: _Base
    adapters: ActiveAdapters
    upscaler_file: str  # "" when the load named none
    bytes: int  # what this key's load added, as measured
    last_used_unix_ms: int


@dataclass(frozen=True)
class Claim:
    """A key's pipeline, held ready for generation (see ModelHost.claimed)."""

    pipe: Pipeline
    prediction_type: str
    upscaler: Upscaler | None  # None unless superres was asked
    superres_scale: int

    def finish(self, image: Image.Image) -> Image.Image:
        """The image as the caller gets it: upscaled when superres was asked."""
        if self.upscaler is None:
            return image
        return upscale(self.upscaler, image, self.superres_scale)


class ModelHost:
    def __init__(
        self,
        device: Device,
        allow_pickle: bool = False,
        policy: MemoryPolicy | None = None,
        builder: Builder = build_pipeline,
        *,
        roots: ModelRoots | None = None,
        changes: ChangeWatch | None = None,
    ) -> None:
        self.device = device
        self.allow_pickle = allow_pickle
        self.policy = policy or MemoryPolicy()
        self._builder = builder
        # Replaced whole by set_roots (from the event loop); a load reads it once.
        self._roots = roots or ModelRoots()
        # Without a watch (no model roots), loaded files are never reported stale.
        self._changes = changes
        self._bases: OrderedDict[BaseId, _Base] = OrderedDict()  # least recently used first
        self._keys: dict[str, _Key] = {}
        self._book_lock = threading.Lock()
        self._device_lock = threading.Lock()
        # The keys the running load evicted in an out-of-memory retry rather than by
        # plan (reset by each load, which holds the device lock).
        self._oom_evicted: list[str] = []

    # ----------------------------------------------------------------- loading

    @property
    def roots(self) -> ModelRoots:
        return self._roots

    def set_roots(self, roots: ModelRoots) -> None:
        """The folders loads may read from from now on; a load already running keeps
        the roots it was checked against."""
        self._roots = roots

    def load(self, spec: LoadSpec) -> LoadResult:
        started = time.perf_counter()
        roots = self._roots
        for field_name, path in spec.paths():
            roots.check(field_name, path)
        with self._device_lock:
            self._oom_evicted = []
            existing = self._keys.get(spec.key)
            if existing is None:
                return self._load_new(spec, started)
            if existing.spec != spec:
                raise InvalidRequestError(
                    f"key '{spec.key}' is loaded with a different definition; "
                    "unload it first or load the new definition under a new key"
                )
            if existing.spec.pinned != spec.pinned:
                with self._book_lock:
                    existing.spec = spec  # the latest load says whether it is pinned
            source = LoadSource.RESIDENT
            evicted: list[str] = []
            parked: list[str] = []
            if existing.base.parked:
                evicted, parked = self._unpark(existing.base)
                source = LoadSource.RAM
            self._touch(existing)
            return LoadResult(
                key=spec.key,
                architecture=existing.base.architecture,
                bytes=existing.bytes,
                estimated_bytes=existing.bytes,
                load_seconds=time.perf_counter() - started,
                source=source,
                device=self.device.label,
                evicted=tuple(evicted),
                evicted_to_ram=tuple(parked),
                evicted_on_oom=tuple(self._oom_evicted),
            )

    def _load_new(self, spec: LoadSpec, started: float) -> LoadResult:
        dtype = self._dtype(spec.dtype)
        check_prediction_type(spec.prediction_type)
        self._check_loras(spec)
        info = self._inspect(spec)
        self._check_vae(spec)
        item_size = torch.empty((), dtype=dtype).element_size()
        base_id = self._base_id(spec, dtype)
        base = self._bases.get(base_id)
        attach_estimate = sum(
            lora_estimate_bytes(lora.path, item_size)
            for lora in spec.loras
            if base is None or _resolved(lora.path) not in base.adapters
        ) + self._upscaler_estimate(spec, base)
        evicted: list[str] = []
        parked: list[str] = []

        new_base = base is None
        if base is None:
            estimate = info.device_bytes(item_size) + attach_estimate
            self._extend(evicted, parked, self._make_room(estimate, keep=set()))

            def build() -> tuple[Pipeline, int]:
                # Measured around the build alone: evictions before a retry must not
                # count against it.
                before = self.device.allocated_bytes()
                size = f"about {estimate / 2**30:.2f} GiB"
                with logged_progress(
                    log, f"loading {spec.model_path} ({info.architecture}, {size})"
                ):
                    pipe = self._builder(
                        Path(spec.model_path),
                        info.architecture,
                        spec.config_dir or default_config_dir(info, spec.prediction_type),
                        dtype,
                        self.device.torch_device,
                    )
                if spec.vae_path:
                    replace_vae(pipe, Path(spec.vae_path), dtype, self.device.torch_device)
                return pipe, self._measure(pipe, before)

            pipe, measured_base = self._with_oom_retry(
                build,
                set(),
                f"loading {spec.model_path} (about {estimate / 2**30:.2f} GiB)",
                (evicted, parked),
            )
            base = _Base(id=base_id, architecture=info.architecture, pipe=pipe, bytes=measured_base)
            with self._book_lock:
                self._bases[base_id] = base
            source = LoadSource.DISK
        else:
            estimate = attach_estimate
            source = LoadSource.SHARED_BASE
            if base.parked:
                self._extend(evicted, parked, self._unpark(base))
                source = LoadSource.RAM
            self._extend(evicted, parked, self._make_room(estimate, keep={base.id}))

        try:
            adapters, added = self._attach(base, spec, dtype, (evicted, parked))
        except BaseException:
            self._detach(base, spec.key)
            if not base.keys:
                self._drop_base(base)
            del base
            self.device.release_cached_memory()
            raise
        measured = base.bytes + added if new_base else added
        key = _Key(
            spec=spec,
            base=base,
            adapters=adapters,
            upscaler_file=_resolved(spec.superres_model) if spec.superres_model else "",
            bytes=measured,
            last_used_unix_ms=_now_ms(),
        )
        with self._book_lock:
            base.keys.append(spec.key)
            self._keys[spec.key] = key
        self._touch(key)
        seconds = time.perf_counter() - started
        log.info(
            "loaded %s (%s, %s, %d bytes) in %.2fs",
            spec.key,
            info.architecture,
            source.value,
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
            evicted=tuple(evicted),
            evicted_to_ram=tuple(parked),
            evicted_on_oom=tuple(self._oom_evicted),
        )

    def _attach(
        self,
        base: _Base,
        spec: LoadSpec,
        dtype: torch.dtype,
        evictions: tuple[list[str], list[str]],
    ) -> tuple[ActiveAdapters, int]:
        """Adds the key's LoRAs and upscaler to the base, reusing those another key on
        the same base already brought. Returns the key's adapters and the bytes added."""
        active: list[tuple[str, float]] = []
        added = 0
        for lora in spec.loras:
            file = _resolved(lora.path)
            adapter = base.adapters.get(file)
            if adapter is None:
                name = self._free_adapter_name(base, lora.adapter_name or Path(lora.path).stem)
                size = self._with_oom_retry(
                    functools.partial(self._load_lora_measured, base.pipe, lora, name),
                    {base.id},
                    f"loading LoRA {lora.path}",
                    evictions,
                )
                adapter = _Adapter(name=name, bytes=size, fingerprint=fingerprint(Path(file)))
                with self._book_lock:
                    base.adapters[file] = adapter
                # Loading an adapter may change which ones diffusers has active.
                base.active = None
                added += adapter.bytes
            with self._book_lock:
                adapter.users.add(spec.key)
            active.append((adapter.name, lora.strength))
        if spec.superres_model:
            file = _resolved(spec.superres_model)
            shared = base.upscalers.get(file)
            if shared is None:
                upscaler = self._with_oom_retry(
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
                shared = _SharedUpscaler(upscaler=upscaler, fingerprint=fingerprint(Path(file)))
                with self._book_lock:
                    base.upscalers[file] = shared
                added += upscaler.bytes
            with self._book_lock:
                shared.users.add(spec.key)
        return tuple(active), added

    def _detach(self, base: _Base, key: str) -> int:
        """Drops the key's claim on the base's adapters and upscalers; deletes those no
        other key uses. Returns their recorded bytes."""
        unused: list[_Adapter] = []
        freed = 0
        with self._book_lock:
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

    # --------------------------------------------------------------- unloading

    def unload(self, key: str) -> int:
        with self._device_lock:
            return self._unload_locked(key)

    def offload(self, key: str) -> tuple[int, bool]:
        """Takes the key's base off the device: parked in the RAM tier when it fits there
        (the key, and every other key on the base, stay loaded), else the key is unloaded.
        Returns (bytes freed, parked)."""
        with self._device_lock:
            entry = self._keys.get(key)
            if entry is None:
                raise NotLoadedError(key)
            base = entry.base
            if base.parked:
                return 0, True
            size = base.total_bytes()
            if 0 < size <= self.policy.ram_cache_bytes:
                self._evict(base, keep=set())  # what fits the tier is parked, never dropped
                return size, True
            return self._unload_locked(key), False

    def _unload_locked(self, key: str) -> int:
        with self._book_lock:
            entry = self._keys.pop(key, None)
            if entry is None:
                raise NotLoadedError(key)
            base = entry.base
            base.keys.remove(key)
        on_device = not base.parked
        before = self.device.allocated_bytes()
        recorded = self._detach(base, key)
        if not base.keys:
            recorded += base.bytes
            self._drop_base(base)
        del entry, base
        self.device.release_cached_memory()
        freed = before - self.device.allocated_bytes() if self.device.is_cuda else recorded
        if self.device.is_cuda and not on_device:
            freed = recorded  # it was in system memory: that is what came back
        log.info("unloaded %s, freed %d bytes", key, freed)
        return freed

    def _drop_base(self, base: _Base) -> None:
        """Forgets the base and every key on it. The caller releases cached memory once
        its own references are gone."""
        with self._book_lock:
            self._bases.pop(base.id, None)
            for key in base.keys:
                self._keys.pop(key, None)
            base.keys.clear()
            base.adapters.clear()
            base.upscalers.clear()
        # The base object may still be referenced by a caller's frame for a moment;
        # the pipeline must not be.
        base.pipe = None

    # -------------------------------------------------------------- generation

    def generate(
        self,
        params: GenerateParams,
        on_progress: Callable[[Progress], None],
        cancel: threading.Event,
    ) -> GeneratedImage:
        if params.steps < 1:
            raise InvalidRequestError("steps must be at least 1")
        check_scheduler_name(params.scheduler)
        with self.claimed(params.key, params.superres) as claim:
            started = time.perf_counter()
            out_of_memory = False
            try:
                image = generate_image(
                    claim.pipe,
                    params,
                    lambda step: on_progress(
                        Progress(step, params.steps, time.perf_counter() - started)
                    ),
                    cancel,
                    claim.prediction_type,
                )
                if image is not None and params.superres and claim.upscaler is not None:
                    image = upscale(claim.upscaler, image, claim.superres_scale)
            except torch.OutOfMemoryError:
                # Handled outside the except block: its traceback pins the activations.
                out_of_memory = True
            if out_of_memory:
                self.device.release_cached_memory()
                raise OutOfMemoryError(
                    f"out of memory generating {params.width}x{params.height} on '{params.key}'"
                )
        if image is None:
            raise GenerationCancelledError()
        return GeneratedImage(
            png=encode_png(image),
            seed=params.seed,
            width=image.width,
            height=image.height,
            superres_applied=params.superres,
        )

    # ------------------------------------------------------- batched generation

    @contextlib.contextmanager
    def claimed(self, key: str, superres: bool) -> Iterator[Claim]:
        """Holds the device and the key's pipeline, ready to run (back from the RAM tier,
        its adapters active, never evicted meanwhile), for as many pipeline calls as the
        caller makes: what engine.batch runs a batch in."""
        with self._device_lock:
            entry = self._keys.get(key)
            if entry is None:
                raise NotLoadedError(key)
            if superres and not entry.upscaler_file:
                raise InvalidRequestError(
                    f"superres was asked but the load of '{key}' named no superres_model"
                )
            base = entry.base
            if base.parked:
                self._unpark(base)
            self._touch(entry)
            base.busy += 1
            try:
                if base.adapters and base.active != entry.adapters:
                    activate_adapters(base.pipe, entry.adapters)
                    base.active = entry.adapters
                shared = base.upscalers[entry.upscaler_file] if superres else None
                yield Claim(
                    pipe=base.pipe,
                    prediction_type=entry.spec.prediction_type,
                    upscaler=shared.upscaler if shared else None,
                    superres_scale=entry.spec.superres_scale,
                )
            finally:
                base.busy -= 1

    # ------------------------------------------------------------------ memory

    def memory(self) -> MemorySnapshot:
        with self._book_lock:
            total, free = self._budget()
            models: list[ResidentInfo] = []
            for base in self._bases.values():
                if not base.keys:
                    continue  # being built: its first key is not registered yet
                attributed = self._attributed_bytes(base)
                for key in base.keys:
                    entry = self._keys[key]
                    tier = "ram" if base.parked else "device"
                    models.append(
                        ResidentInfo(
                            key=key,
                            model_path=entry.spec.model_path,
                            architecture=base.architecture,
                            bytes=attributed[key],
                            loras=entry.spec.loras,
                            tier=tier,
                            last_used_unix_ms=entry.last_used_unix_ms,
                            in_ram_tier=base.parked,
                            base_key=base.keys[0],
                            stale=any(
                                self._changed(file, loaded) for file, loaded in _key_files(entry)
                            ),
                        )
                    )
            ram_bytes = self._ram_bytes()
        models.sort(key=lambda m: m.last_used_unix_ms)
        reserve = self.policy.reserve_bytes
        return MemorySnapshot(
            device=self.device.label,
            device_name=self.device.display_name,
            total_bytes=total,
            used_bytes=total - free,
            available_bytes=max(0, free - reserve),
            models=tuple(models),
            reserve_bytes=reserve,
            ram_tier_bytes=ram_bytes,
            ram_tier_capacity_bytes=self.policy.ram_cache_bytes,
        )

    def file_uses(self) -> dict[str, FileUse]:
        """Every file a loaded key was read from (checkpoint, LoRAs, upscaler), by
        resolved path: which keys use it, and whether it changed since they loaded it."""
        keys: dict[str, list[str]] = {}
        stale: dict[str, bool] = {}
        with self._book_lock:
            for key, entry in self._keys.items():
                for file, loaded in _key_files(entry):
                    keys.setdefault(file, []).append(key)
                    stale[file] = stale.get(file, False) or self._changed(file, loaded)
        return {file: FileUse(keys=tuple(sorted(k)), stale=stale[file]) for file, k in keys.items()}

    def _changed(self, file: str, loaded: Fingerprint | None) -> bool:
        return self._changes is not None and self._changes.changed_since(file, loaded)

    def resident_keys(self) -> list[str]:
        with self._book_lock:
            return list(self._keys)

    @staticmethod
    def _attributed_bytes(base: _Base) -> dict[str, int]:
        """Each byte of the base to exactly one key, the oldest that uses it, so that
        summing over keys gives what is resident."""
        attributed = dict.fromkeys(base.keys, 0)
        attributed[base.keys[0]] += base.bytes
        for users, size in [
            *((a.users, a.bytes) for a in base.adapters.values()),
            *((u.users, u.upscaler.bytes) for u in base.upscalers.values()),
        ]:
            # None while the key that brought it is still loading: it counts once the
            # key is registered.
            owner = next((k for k in base.keys if k in users), None)
            if owner is not None:
                attributed[owner] += size
        return attributed

    def _budget(self) -> tuple[int, int]:
        """(total, free) of the device as this host sees it, before the reserve.

        With a cap the device is that big and what our pipelines hold is used; if the
        real device has less free (other programs), the real figure wins."""
        real = self.device.memory()
        cap = self.policy.cap_bytes
        if cap is None:
            return real.total_bytes, real.free_bytes
        return cap, max(0, min(cap - self._device_bytes(), real.free_bytes))

    def _available(self) -> int:
        return max(0, self._budget()[1] - self.policy.reserve_bytes)

    def _device_bytes(self) -> int:
        return sum(b.total_bytes() for b in self._bases.values() if not b.parked)

    def _ram_bytes(self) -> int:
        return sum(b.total_bytes() for b in self._bases.values() if b.parked)

    # ---------------------------------------------------------------- eviction

    def _make_room(self, needed: int, keep: set[BaseId]) -> tuple[list[str], list[str]]:
        """Evicts idle bases that are not pinned, least recently used first, until
        `needed` bytes fit; `keep`: bases this load is about to use.

        With a cap or reserve configured, a load that cannot fit even after evicting
        every idle base is refused before anything is evicted (PinnedModelsError when
        evicting the pinned ones too would make it fit). Without one there is no
        artificial limit: the load is tried and the device itself decides."""
        evicted: list[str] = []
        parked: list[str] = []
        available = self._available()
        if available >= needed:
            return evicted, parked
        if self.policy.strict:
            reclaimable = sum(b.total_bytes() for b in self._idle_on_device(keep))
            if available + reclaimable < needed:
                pinned = self._idle_pinned(keep)
                if available + reclaimable + sum(b.total_bytes() for b in pinned) >= needed:
                    raise PinnedModelsError(
                        f"{needed} bytes ({available} available)", _keys_of(pinned)
                    )
                raise OutOfMemoryError(
                    f"{needed} bytes needed, {available} available within the configured "
                    f"memory cap/reserve, and evicting every idle model frees only {reclaimable}"
                )
        for victim in self._idle_on_device(keep):
            if self._available() >= needed:
                break
            self._extend(evicted, parked, self._evict(victim, keep))
        return evicted, parked

    def _idle_on_device(self, keep: set[BaseId]) -> list[_Base]:
        """What make-room may evict: idle, on the device, not kept, not pinned."""
        return [
            b
            for b in self._bases.values()
            if not b.parked and b.busy == 0 and b.id not in keep and not self._pinned(b)
        ]

    def _idle_pinned(self, keep: set[BaseId]) -> list[_Base]:
        return [
            b
            for b in self._bases.values()
            if not b.parked and b.busy == 0 and b.id not in keep and self._pinned(b)
        ]

    def _pinned(self, base: _Base) -> bool:
        return any(key in self._keys and self._keys[key].spec.pinned for key in base.keys)

    def _evict(self, base: _Base, keep: set[BaseId]) -> tuple[list[str], list[str]]:
        """Takes the base off the device: parked in the RAM tier if it fits there,
        dropped otherwise. Returns (its keys, the same keys if parked).

        Kept parked bases are on their way back to the device: they are never
        dropped from the tier, and the room they are about to free counts."""
        keys = list(base.keys)
        size = base.total_bytes()
        if 0 < size <= self.policy.ram_cache_bytes:

            def ram_in_use() -> int:
                return sum(
                    b.total_bytes() for b in self._bases.values() if b.parked and b.id not in keep
                )

            for old in [b for b in self._bases.values() if b.parked and b.id not in keep]:
                if ram_in_use() + size <= self.policy.ram_cache_bytes:
                    break
                log.info("RAM tier full: dropping %s", ", ".join(old.keys))
                self._drop_base(old)
            self._park(base)
            with self._book_lock:
                base.parked = True
            self.device.release_cached_memory()
            log.info("parked %s in the RAM tier (%d bytes)", ", ".join(keys), size)
            return keys, keys
        self._drop_base(base)
        self.device.release_cached_memory()
        log.info("evicted %s (%d bytes)", ", ".join(keys), size)
        return keys, []

    def _unpark(self, base: _Base) -> tuple[list[str], list[str]]:
        """Moves a parked base back to the device, making room first."""
        evicted, parked = self._make_room(base.total_bytes(), keep={base.id})
        try:
            self._with_oom_retry(
                lambda: self._unpark_tensors(base),
                {base.id},
                f"moving {', '.join(base.keys)} back from the RAM tier",
                (evicted, parked),
            )
        except BaseException:
            # Half moved is no state to leave it in: all of it back to system memory.
            self._park(base)
            self.device.release_cached_memory()
            raise
        with self._book_lock:
            base.parked = False
        return evicted, parked

    def _park(self, base: _Base) -> None:
        self.device.to_host(_modules(base))

    def _unpark_tensors(self, base: _Base) -> None:
        self.device.to_device(_modules(base))

    def _with_oom_retry(
        self,
        action: Callable[[], T],
        keep: set[BaseId],
        what: str,
        evictions: tuple[list[str], list[str]],
    ) -> T:
        """Runs action; on device out-of-memory evicts every idle base (but the kept and
        the pinned ones) and tries once more, then gives up with OutOfMemoryError, or
        PinnedModelsError when pinned bases hold device memory the retry could not take."""
        try:
            return action()
        except torch.OutOfMemoryError:
            # Retried below, outside this block: the exception's traceback holds the
            # frames of the failed attempt, and so the tensors it had allocated.
            pass
        self.device.release_cached_memory()
        for victim in self._idle_on_device(keep):
            gone = self._evict(victim, keep)
            self._oom_evicted.extend(gone[0])
            self._extend(*evictions, gone)
        log.warning("out of memory %s: evicted every idle model, retrying once", what)
        try:
            return action()
        except torch.OutOfMemoryError:
            pass
        self.device.release_cached_memory()
        pinned = self._idle_pinned(keep)
        if pinned:
            raise PinnedModelsError(what, _keys_of(pinned))
        raise OutOfMemoryError(f"out of memory {what} after evicting every idle model")

    @staticmethod
    def _extend(evicted: list[str], parked: list[str], more: tuple[list[str], list[str]]) -> None:
        evicted.extend(more[0])
        parked.extend(more[1])

    # ----------------------------------------------------------------- helpers

    def _inspect(self, spec: LoadSpec) -> CheckpointInfo:
        path = Path(spec.model_path)
        if not path.exists():
            raise ModelFileNotFoundError(spec.model_path)
        if path.is_dir():
            if not self.allow_pickle:
                _refuse_pickle_components(path)
            return inspect_diffusers_folder(path)
        if path.suffix.lower() in PICKLE_SUFFIXES and not self.allow_pickle:
            raise InvalidModelError(
                f"{spec.model_path}: pickle checkpoints can run arbitrary code and are refused; "
                "convert it to .safetensors or start the model host with --allow-pickle"
            )
        return inspect_single_file(path)

    def _check_vae(self, spec: LoadSpec) -> None:
        """Before the checkpoint is read: a VAE that cannot be used must not cost a load."""
        if not spec.vae_path:
            return
        path = Path(spec.vae_path)
        if not path.exists():
            raise ModelFileNotFoundError(spec.vae_path)
        if path.suffix.lower() in PICKLE_SUFFIXES and not self.allow_pickle:
            raise InvalidModelError(
                f"{spec.vae_path}: pickle files can run arbitrary code and are refused; "
                "convert it to .safetensors or start the model host with --allow-pickle"
            )

    def _dtype(self, name: str) -> torch.dtype:
        if not name:
            return self.device.default_dtype()
        if name not in DTYPES:
            raise InvalidRequestError(f"dtype must be one of {', '.join(DTYPES)}, got '{name}'")
        return DTYPES[name]

    @staticmethod
    def _check_loras(spec: LoadSpec) -> None:
        files = [_resolved(lora.path) for lora in spec.loras]
        if len(set(files)) != len(files):
            raise InvalidRequestError("a LoRA file is listed twice; give it one strength")

    @staticmethod
    def _base_id(spec: LoadSpec, dtype: torch.dtype) -> BaseId:
        dtype_name = next(name for name, value in DTYPES.items() if value == dtype)
        config = _resolved(spec.config_dir) if spec.config_dir else ""
        model = _resolved(spec.model_path)
        vae = _resolved(spec.vae_path) if spec.vae_path else ""
        vae_fingerprint = fingerprint(Path(vae)) if vae else None
        return (model, config, dtype_name, fingerprint(Path(model)), vae, vae_fingerprint)

    def _upscaler_estimate(self, spec: LoadSpec, base: _Base | None) -> int:
        if not spec.superres_model:
            return 0
        if base is not None and _resolved(spec.superres_model) in base.upscalers:
            return 0
        path = Path(spec.superres_model)
        try:
            if path.suffix.lower() == ".safetensors":
                return sum(
                    t.numel * 4 for t in read_safetensors_header(path).values()
                )  # upscalers stay fp32 unless the load is half precision: an upper bound
            return path.stat().st_size
        except (ModelHostError, OSError):
            return 0  # the load itself reports what is wrong with the file

    @staticmethod
    def _free_adapter_name(base: _Base, wanted: str) -> str:
        # peft builds module names from adapter names: dots would nest them.
        wanted = wanted.replace(".", "_") or "lora"
        taken = {a.name for a in base.adapters.values()}
        name, n = wanted, 1
        while name in taken:
            n += 1
            name = f"{wanted}-{n}"
        return name

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

    def _touch(self, entry: _Key) -> None:
        with self._book_lock:
            entry.last_used_unix_ms = _now_ms()
            self._bases.move_to_end(entry.base.id)


def _modules(base: _Base) -> list[torch.nn.Module]:
    """Every module holding the base's weights: the pipeline's components and upscalers."""
    modules = [c for c in base.pipe.components.values() if isinstance(c, torch.nn.Module)]
    return modules + [shared.upscaler.module for shared in base.upscalers.values()]


def _keys_of(bases: list[_Base]) -> list[str]:
    return [key for base in bases for key in base.keys]


def _key_files(entry: _Key) -> list[tuple[str, Fingerprint | None]]:
    """(resolved path, fingerprint when loaded) of each file the key's weights came from."""
    base = entry.base
    files = [(base.id[0], base.id[3])]
    if base.id[4]:
        files.append((base.id[4], base.id[5]))
    key = entry.spec.key
    files += [(file, a.fingerprint) for file, a in base.adapters.items() if key in a.users]
    if entry.upscaler_file and entry.upscaler_file in base.upscalers:
        files.append((entry.upscaler_file, base.upscalers[entry.upscaler_file].fingerprint))
    return files


def _refuse_pickle_components(folder: Path) -> None:
    """A diffusers folder whose component holds only pickle weights would be unpickled
    by from_pretrained: refused like a pickle single file. Components that also have
    .safetensors weights are fine (diffusers loads those)."""
    for component in sorted(p for p in folder.iterdir() if p.is_dir()):
        files = sorted(p for p in component.iterdir() if p.is_file())
        pickles = [p for p in files if p.suffix.lower() in PICKLE_SUFFIXES]
        if pickles and not any(p.suffix.lower() == ".safetensors" for p in files):
            raise InvalidModelError(
                f"{pickles[0]}: pickle weights can run arbitrary code and are refused; "
                "convert the folder to .safetensors or start the model host with --allow-pickle"
            )


def _resolved(path: str) -> str:
    return str(Path(path).resolve())


def _now_ms() -> int:
    return int(time.time() * 1000)
