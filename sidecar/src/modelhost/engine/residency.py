"""Residency and eviction: what is on the device, what is parked in the RAM tier, and
what leaves when a load needs room.

- eviction works on bases, because a pipeline is what holds device memory: every key on
  an evicted base leaves the device with it. With a RAM tier, an evicted base is parked
  in system memory (page-locked on CUDA, so that it comes back at the bus's speed) and
  its keys stay loaded.
- a base is *pinned* while any of its keys was loaded pinned: make-room and the
  out-of-memory retry never evict it, and a load that fits only by evicting it fails
  with PinnedModelsError. Explicit unloads still drop it.

Every change to the bookkeeping (bases, keys, a base's adapters, upscalers and tier) is
made under `lock`, since memory queries come from the event loop while a load runs;
reads on the device thread need no lock, because only the device thread changes
anything. Every method here but `budget` runs on the device thread, under the host's
device lock.
"""

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TypeVar

import torch

from modelhost.engine.bases import Base, BaseId, Key, keys_of
from modelhost.engine.device import Device
from modelhost.engine.types import MemoryPolicy
from modelhost.errors import OutOfMemoryError, PinnedModelsError

log = logging.getLogger(__name__)

T = TypeVar("T")

# (every key that left the device, the keys of those parked in the RAM tier)
Evictions = tuple[list[str], list[str]]


class Residency:
    def __init__(self, device: Device, policy: MemoryPolicy) -> None:
        self.device = device
        self.policy = policy
        self.bases: OrderedDict[BaseId, Base] = OrderedDict()  # least recently used first
        self.keys: dict[str, Key] = {}
        # Bases a prefetch built into the RAM tier that no load has taken yet: no keys, not
        # in `bases` (never in reports, never evicted by plan); engine/prefetch.py owns them.
        self.prefetched: dict[BaseId, Base] = {}
        # The latest hint's bases with their estimated bytes, most wanted first (set by
        # engine/prefetch.py): the tier keeps room for those not built yet.
        self.prefetch_wanted: list[tuple[BaseId, int]] = []
        self.lock = threading.Lock()
        # The keys the running load evicted in an out-of-memory retry rather than by
        # plan (reset by each load, which holds the device lock).
        self.oom_evicted: list[str] = []

    # --------------------------------------------------------------- figures

    def budget(self) -> tuple[int, int]:
        """(total, free) of the device as this host sees it, before the reserve.

        With a cap the device is that big and what our pipelines hold is used; if the
        real device has less free (other programs), the real figure wins."""
        real = self.device.memory()
        cap = self.policy.cap_bytes
        if cap is None:
            return real.total_bytes, real.free_bytes
        return cap, max(0, min(cap - self.device_bytes(), real.free_bytes))

    def available(self) -> int:
        return max(0, self.budget()[1] - self.policy.reserve_bytes)

    def device_bytes(self) -> int:
        return sum(b.total_bytes() for b in self.bases.values() if not b.parked)

    def ram_bytes(self) -> int:
        parked = sum(b.total_bytes() for b in self.bases.values() if b.parked)
        return parked + sum(b.total_bytes() for b in self.prefetched.values())

    def tier_in_use(self, keep: set[BaseId]) -> int:
        """The RAM tier's bytes but those of the kept parked bases (on their way back)."""
        parked = sum(b.total_bytes() for b in self.bases.values() if b.parked and b.id not in keep)
        return parked + sum(b.total_bytes() for b in self.prefetched.values())

    def prefetch_reserve(self, evicted: BaseId) -> int:
        """Room the RAM tier keeps for hinted bases not built yet: an evicted base that no
        hint names is dropped rather than parked in it (the queue needs the hinted ones
        sooner), and no parked base is dropped for it. None when the evicted base is itself
        hinted: parking it is its prefetch."""
        with self.lock:
            if any(base_id == evicted for base_id, _ in self.prefetch_wanted):
                return 0
            return sum(
                estimate
                for base_id, estimate in self.prefetch_wanted
                if base_id not in self.prefetched and base_id not in self.bases
            )

    def adopt_prefetched(self, base_id: BaseId) -> Base | None:
        """The prefetched base with this id, now one of `bases` (parked, most recently
        used), or None if there is none."""
        with self.lock:
            base = self.prefetched.pop(base_id, None)
            if base is not None:
                self.bases[base_id] = base
            return base

    def pinned(self, base: Base) -> bool:
        return any(key in self.keys and self.keys[key].spec.pinned for key in base.keys)

    # ------------------------------------------------------------ bookkeeping

    def touch(self, entry: Key) -> None:
        with self.lock:
            entry.last_used_unix_ms = now_ms()
            self.bases.move_to_end(entry.base.id)

    def drop_base(self, base: Base) -> None:
        """Forgets the base and every key on it. The caller releases cached memory once
        its own references are gone."""
        with self.lock:
            self.bases.pop(base.id, None)
            for key in base.keys:
                self.keys.pop(key, None)
            base.keys.clear()
            base.adapters.clear()
            base.upscalers.clear()
        # The base object may still be referenced by a caller's frame for a moment;
        # the pipeline must not be.
        base.pipe = None

    # --------------------------------------------------------------- eviction

    def make_room(self, needed: int, keep: set[BaseId]) -> Evictions:
        """Evicts idle bases that are not pinned, least recently used first, until
        `needed` bytes fit; `keep`: bases this load is about to use.

        With a cap or reserve configured, a load that cannot fit even after evicting
        every idle base is refused before anything is evicted (PinnedModelsError when
        evicting the pinned ones too would make it fit). Without one there is no
        artificial limit: the load is tried and the device itself decides."""
        evicted: list[str] = []
        parked: list[str] = []
        available = self.available()
        if available >= needed:
            return evicted, parked
        if self.policy.strict:
            reclaimable = sum(b.total_bytes() for b in self.idle_on_device(keep))
            if available + reclaimable < needed:
                pinned = self.idle_pinned(keep)
                if available + reclaimable + sum(b.total_bytes() for b in pinned) >= needed:
                    raise PinnedModelsError(
                        f"{needed} bytes ({available} available)", keys_of(pinned)
                    )
                raise OutOfMemoryError(
                    f"{needed} bytes needed, {available} available within the configured "
                    f"memory cap/reserve, and evicting every idle model frees only {reclaimable}"
                )
        for victim in self.idle_on_device(keep):
            if self.available() >= needed:
                break
            extend((evicted, parked), self.evict(victim, keep))
        return evicted, parked

    def idle_on_device(self, keep: set[BaseId]) -> list[Base]:
        """What make-room may evict: idle, on the device, not kept, not pinned."""
        return [
            b
            for b in self.bases.values()
            if not b.parked and b.busy == 0 and b.id not in keep and not self.pinned(b)
        ]

    def idle_pinned(self, keep: set[BaseId]) -> list[Base]:
        return [
            b
            for b in self.bases.values()
            if not b.parked and b.busy == 0 and b.id not in keep and self.pinned(b)
        ]

    def evict(self, base: Base, keep: set[BaseId]) -> Evictions:
        """Takes the base off the device: parked in the RAM tier if it fits there,
        dropped otherwise. Returns (its keys, the same keys if parked).

        Kept parked bases are on their way back to the device: they are never
        dropped from the tier, and the room they are about to free counts."""
        keys = list(base.keys)
        size = base.total_bytes()
        capacity = self.policy.ram_cache_bytes
        reserve = self.prefetch_reserve(base.id)
        # The parked bases that parking this one pushes out, oldest first: as many as the
        # tier's whole room asks, never more for the room kept for hinted bases (a parked
        # base may be what a queued job further on than the hint reaches needs).
        # Prefetched bases hold their room: a prefetch leaves when the hint stops naming it.
        in_use = self.tier_in_use(keep)
        pushed: list[Base] = []
        for old in [b for b in self.bases.values() if b.parked and b.id not in keep]:
            if in_use + size <= capacity:
                break
            pushed.append(old)
            in_use -= old.total_bytes()
        if size > 0 and in_use + size + reserve <= capacity:
            for old in pushed:
                log.info("RAM tier full: dropping %s", ", ".join(old.keys))
                self.drop_base(old)
            self.park(base)
            with self.lock:
                base.parked = True
            self.device.release_cached_memory()
            log.info("parked %s in the RAM tier (%d bytes)", ", ".join(keys), size)
            return keys, keys
        self.drop_base(base)
        self.device.release_cached_memory()
        log.info("evicted %s (%d bytes)", ", ".join(keys), size)
        return keys, []

    # ------------------------------------------------------------- RAM tier

    def unpark(self, base: Base) -> Evictions:
        """Moves a parked base back to the device, making room first."""
        evictions = self.make_room(base.total_bytes(), keep={base.id})
        try:
            self.with_oom_retry(
                lambda: self.device.to_device(base.modules()),
                {base.id},
                f"moving {', '.join(base.keys)} back from the RAM tier",
                evictions,
            )
        except BaseException:
            # Half moved is no state to leave it in: all of it back to system memory.
            self.park(base)
            self.device.release_cached_memory()
            raise
        with self.lock:
            base.parked = False
        return evictions

    def park(self, base: Base) -> None:
        self.device.to_host(base.modules())

    # ------------------------------------------------------- out of memory

    def with_oom_retry(
        self,
        action: Callable[[], T],
        keep: set[BaseId],
        what: str,
        evictions: Evictions,
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
        for victim in self.idle_on_device(keep):
            gone = self.evict(victim, keep)
            self.oom_evicted.extend(gone[0])
            extend(evictions, gone)
        log.warning("out of memory %s: evicted every idle model, retrying once", what)
        try:
            return action()
        except torch.OutOfMemoryError:
            pass
        self.device.release_cached_memory()
        pinned = self.idle_pinned(keep)
        if pinned:
            raise PinnedModelsError(what, keys_of(pinned))
        raise OutOfMemoryError(f"out of memory {what} after evicting every idle model")


def extend(into: Evictions, more: Evictions) -> None:
    into[0].extend(more[0])
    into[1].extend(more[1])


def now_ms() -> int:
    return int(time.time() * 1000)
