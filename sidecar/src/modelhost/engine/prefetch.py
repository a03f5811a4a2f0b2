"""Prefetch: the base pipelines of loads the gateway's plan will need next, built into the
RAM tier in the background while the device works, so that their load is a RAM-tier switch.

A hint, never a command: each hint replaces the previous one; a prefetch the new hint no
longer names is dropped; nothing is evicted to make room (a base is built only where the
tier has room for it beside what is parked and prefetched, and the tier never drops a
prefetch to park an evicted base). One background thread builds, most wanted first, on the
CPU at the lowest scheduling priority (a running generation goes first where they compete
for cores: on a CPU host; on a GPU host the build is CPU and disk work beside the GPU's).
The built base waits in Residency.prefetched (page-locked on CUDA, as parked bases are)
until a load of its base takes it, or the hint drops it. A load that needs the base being
built waits for that build rather than reading the file a second time; a base a load is
building is not built again by a prefetch.
"""

import contextlib
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from modelhost.engine import load_checks
from modelhost.engine.bases import Base, BaseId
from modelhost.engine.checkpoint import CheckpointInfo
from modelhost.engine.loading import Builder
from modelhost.engine.pipelines import default_config_dir, replace_vae, resident_bytes
from modelhost.engine.residency import Residency
from modelhost.engine.roots import ModelRoots
from modelhost.engine.schedulers import check_prediction_type
from modelhost.engine.types import LoadSpec
from modelhost.errors import ModelHostError

log = logging.getLogger(__name__)

CPU = torch.device("cpu")


@dataclass
class _Wanted:
    spec: LoadSpec
    base_id: BaseId
    info: CheckpointInfo
    dtype: torch.dtype
    estimate: int  # bytes, from the file's header
    failed: bool = False  # its build failed: not tried again for this hint


class Prefetcher:
    def __init__(
        self,
        residency: Residency,
        builder: Builder,
        allow_pickle: bool,
    ) -> None:
        self._residency = residency
        self._builder = builder
        self._allow_pickle = allow_pickle
        self._wanted: list[_Wanted] = []
        # Guards _wanted, _building and _claimed; notified whenever one changes.
        self._changed = threading.Condition()
        self._building: BaseId | None = None
        self._claimed: BaseId | None = None  # the base the running load builds itself
        self._thread: threading.Thread | None = None

    def hint(self, specs: Sequence[LoadSpec], roots: ModelRoots) -> tuple[list[str], list[str]]:
        """Replaces the wanted loads; returns (keys wanted, keys skipped). Reads file
        headers: call it off the event loop, never on the device thread (which may be busy
        with a long generation)."""
        wanted: list[_Wanted] = []
        skipped: list[str] = []
        for spec in specs:
            entry = self._plan(spec, roots)
            if entry is None or any(w.base_id == entry.base_id for w in wanted):
                skipped.append(spec.key)
            else:
                wanted.append(entry)
        dropped: list[Base] = []
        with self._changed:
            self._wanted = wanted
            ids = {w.base_id for w in wanted}
            with self._residency.lock:
                self._residency.prefetch_wanted = [(w.base_id, w.estimate) for w in wanted]
                for base_id in [i for i in self._residency.prefetched if i not in ids]:
                    dropped.append(self._residency.prefetched.pop(base_id))
            self._changed.notify_all()
            if wanted and self._thread is None:
                self._thread = threading.Thread(target=self._run, name="prefetch", daemon=True)
                self._thread.start()
        for base in dropped:
            log.info("prefetch of %s dropped: no longer wanted", base.id[0])
            base.pipe = None
        return [w.spec.key for w in wanted], skipped

    def poke(self) -> None:
        """The tier's room may have changed (a load took a prefetch, a base left the tier):
        the builder looks again."""
        with self._changed:
            self._changed.notify_all()

    def claim(self, base_id: BaseId) -> None:
        """A load needs this base: returns once no build of it is running (the load then
        takes its result), and no build of it starts until `release` (the load builds it:
        a prefetch hinted meanwhile would build it a second time, for nothing)."""
        with self._changed:
            self._claimed = base_id
            self._changed.wait_for(lambda: self._building != base_id)

    def release(self) -> None:
        """The load is over (its base, if it built one, is resident now); the tier's room
        may have changed too."""
        with self._changed:
            self._claimed = None
            self._changed.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Waits until every wanted base that fits is built (or failed); True if so.
        For tests and benchmarks: the server never waits on a hint."""
        with self._changed:
            return self._changed.wait_for(
                lambda: self._building is None and self._next() is None, timeout
            )

    def _plan(self, spec: LoadSpec, roots: ModelRoots) -> _Wanted | None:
        """What prefetching the spec's base takes; None when there is nothing to do
        (resident already) or it cannot be done (the load itself will say why)."""
        residency = self._residency
        try:
            for field_name, path in spec.paths():
                roots.check(field_name, path)
            dtype = load_checks.dtype_of(spec.dtype, residency.device.default_dtype())
            check_prediction_type(spec.prediction_type)
            info = load_checks.inspect(spec, self._allow_pickle)
            load_checks.check_vae(spec, self._allow_pickle)
            base_id = load_checks.base_id(spec, dtype)
        except (ModelHostError, OSError) as e:
            log.info("prefetch of %s skipped: %s", spec.key, e)
            return None
        with residency.lock:
            if spec.key in residency.keys or base_id in residency.bases:
                return None
        item_size = torch.empty((), dtype=dtype).element_size()
        return _Wanted(spec, base_id, info, dtype, info.device_bytes(item_size))

    def _next(self) -> _Wanted | None:
        """The most wanted base still to build that fits the tier's free room now."""
        residency = self._residency
        with residency.lock:
            free = residency.policy.ram_cache_bytes - residency.tier_in_use(set())
            for entry in self._wanted:
                built = entry.base_id in residency.prefetched or entry.base_id in residency.bases
                claimed = entry.base_id == self._claimed
                if not built and not claimed and not entry.failed and 0 < entry.estimate <= free:
                    return entry
        return None

    def _run(self) -> None:
        # Below the running generation, where the two compete for the CPU.
        with contextlib.suppress(AttributeError, OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._next() is not None)
                entry = self._next()
                assert entry is not None
                self._building = entry.base_id
            base: Base | None = None
            try:
                base = self._build(entry)
            except Exception as e:  # a hint must never take the host down
                entry.failed = True
                log.warning("prefetch of %s failed: %s", entry.spec.model_path, e)
            with self._changed:
                self._keep(entry, base)
                self._building = None
                self._changed.notify_all()

    def _build(self, entry: _Wanted) -> Base:
        spec = entry.spec
        log.info("prefetching %s into the RAM tier", spec.model_path)
        config = spec.config_dir or default_config_dir(entry.info, spec.prediction_type)
        pipe = self._builder(
            Path(spec.model_path), entry.info.architecture, config, entry.dtype, CPU
        )
        if spec.vae_path:
            replace_vae(pipe, Path(spec.vae_path), entry.dtype, CPU)
        base = Base(
            id=entry.base_id,
            architecture=entry.info.architecture,
            pipe=pipe,
            bytes=resident_bytes(pipe),
            parked=True,
        )
        device = self._residency.device
        if device.pins_host_memory:
            device.to_host(base.modules())
        return base

    def _keep(self, entry: _Wanted, base: Base | None) -> None:
        """Puts the built base in the tier if it is still wanted, not loaded meanwhile,
        and fits; else lets it go. Called holding _changed."""
        if base is None:
            return
        residency = self._residency
        with residency.lock:
            wanted = any(w.base_id == entry.base_id for w in self._wanted)
            free = residency.policy.ram_cache_bytes - residency.tier_in_use(set())
            if wanted and entry.base_id not in residency.bases and base.total_bytes() <= free:
                residency.prefetched[entry.base_id] = base
                log.info(
                    "prefetched %s into the RAM tier (%d bytes)",
                    entry.spec.model_path,
                    base.total_bytes(),
                )
                return
        log.info("prefetch of %s discarded: no longer wanted or no room", entry.spec.model_path)
        base.pipe = None
