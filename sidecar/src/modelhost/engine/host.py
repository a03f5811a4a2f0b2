"""The model host's engine: the one object the servicer and tasks call, putting the
parts together under one device lock.

The parts, one concern each: bases.py (the records: bases, keys, adapters),
residency.py (LRU eviction, the RAM tier, pinned keys, the out-of-memory retry),
load_checks.py and loading.py (checking, building and sharing bases; LoRAs and
upscalers), generation.py (claims and generation), memory_report.py (the memory and
file-use reports), prefetch.py (hinted bases built into the RAM tier in the background).

Called from worker threads; every device operation (load, unload, generate) is
serialised by the device lock here, while memory queries only read bookkeeping under
the residency's short-held lock (see residency.py).
"""

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence

from modelhost.engine.bases import Key
from modelhost.engine.device import Device
from modelhost.engine.generation import Claim, check_params, claim, generate
from modelhost.engine.loading import Builder, Loader
from modelhost.engine.memory_report import ChangeWatch, MemoryReport
from modelhost.engine.pipelines import build_pipeline
from modelhost.engine.prefetch import Prefetcher
from modelhost.engine.residency import Residency
from modelhost.engine.roots import ModelRoots
from modelhost.engine.types import (
    FileUse,
    GeneratedImage,
    GenerateParams,
    LoadResult,
    LoadSpec,
    MemoryPolicy,
    MemorySnapshot,
    Progress,
)
from modelhost.errors import NotLoadedError


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
        self._residency = Residency(device, policy or MemoryPolicy())
        self._loader = Loader(self._residency, allow_pickle, builder)
        self._prefetcher = Prefetcher(self._residency, builder, allow_pickle)
        self._loader.claim_prefetch = self._prefetcher.claim
        self._report = MemoryReport(self._residency, changes)
        # Replaced whole by set_roots (from the event loop); a load reads it once.
        self._roots = roots or ModelRoots()
        self._device_lock = threading.Lock()

    @property
    def policy(self) -> MemoryPolicy:
        return self._residency.policy

    @policy.setter
    def policy(self, policy: MemoryPolicy) -> None:
        self._residency.policy = policy

    @property
    def _keys(self) -> dict[str, Key]:
        """The loaded keys by name (tests look at their pipelines)."""
        return self._residency.keys

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
            try:
                return self._loader.load(spec, started)
            finally:
                self._prefetcher.release()

    def prefetch(self, specs: Sequence[LoadSpec]) -> tuple[list[str], list[str]]:
        """A hint: the loads the plan will need next, most wanted first (see prefetch.py).
        Returns (keys wanted, keys skipped) at once; the builds run in the background.
        Reads file headers: call it off the event loop and off the device thread."""
        return self._prefetcher.hint(specs, self._roots)

    def wait_prefetched(self, timeout: float) -> bool:
        """For tests and benchmarks: waits until every wanted prefetch that fits is built."""
        return self._prefetcher.wait_idle(timeout)

    def unload(self, key: str) -> int:
        with self._device_lock:
            freed = self._loader.unload(key)
        self._prefetcher.poke()
        return freed

    def offload(self, key: str) -> tuple[int, bool]:
        """Takes the key's base off the device: parked in the RAM tier when it fits there
        (the key, and every other key on the base, stay loaded), else the key is unloaded.
        Returns (bytes freed, parked)."""
        with self._device_lock:
            entry = self._residency.keys.get(key)
            if entry is None:
                raise NotLoadedError(key)
            base = entry.base
            if base.parked:
                return 0, True
            size = base.total_bytes()
            if 0 < size <= self._residency.policy.ram_cache_bytes:
                # Parked if it fits beside the prefetches, else dropped with its keys.
                parked = bool(self._residency.evict(base, keep=set())[1])
                self._prefetcher.poke()
                return size, parked
            freed = self._loader.unload(key), False
            self._prefetcher.poke()
            return freed

    # -------------------------------------------------------------- generation

    def generate(
        self,
        params: GenerateParams,
        on_progress: Callable[[Progress], None],
        cancel: threading.Event,
    ) -> GeneratedImage:
        check_params(params)
        with self._device_lock:
            return generate(self._residency, params, on_progress, cancel)

    @contextlib.contextmanager
    def claimed(self, key: str, superres: bool) -> Iterator[Claim]:
        """Holds the device and the key's pipeline, ready to run (back from the RAM tier,
        its adapters active, never evicted meanwhile), for as many pipeline calls as the
        caller makes: what engine.batch runs a batch in."""
        with self._device_lock, claim(self._residency, key, superres) as claimed:
            yield claimed

    # ------------------------------------------------------------------ memory

    def memory(self) -> MemorySnapshot:
        return self._report.snapshot()

    def file_uses(self) -> dict[str, FileUse]:
        """Every file a loaded key was read from (checkpoint, LoRAs, upscaler), by
        resolved path: which keys use it, and whether it changed since they loaded it."""
        return self._report.file_uses()

    def resident_keys(self) -> list[str]:
        with self._residency.lock:
            return list(self._residency.keys)
