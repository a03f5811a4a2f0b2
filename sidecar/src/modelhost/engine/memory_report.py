"""The memory report: what is resident where, each byte attributed to one key, and
which loaded files changed on disk since. Read from the event loop while a load may
run: everything here reads the bookkeeping under its lock and touches no files
(whether a file changed comes from the inventory's watch)."""

from typing import Protocol

from modelhost.engine.bases import Base
from modelhost.engine.files import Fingerprint
from modelhost.engine.residency import Residency
from modelhost.engine.types import FileUse, MemorySnapshot, ResidentInfo


class ChangeWatch(Protocol):
    """Tells whether a file changed since it was loaded, from what a watcher already
    knows (the inventory), without touching the disk."""

    def changed_since(self, path: str, loaded: Fingerprint | None) -> bool: ...


class MemoryReport:
    def __init__(self, residency: Residency, changes: ChangeWatch | None) -> None:
        self.residency = residency
        # Without a watch (no model roots), loaded files are never reported stale.
        self.changes = changes

    def snapshot(self) -> MemorySnapshot:
        residency = self.residency
        with residency.lock:
            total, free = residency.budget()
            models: list[ResidentInfo] = []
            for base in residency.bases.values():
                if not base.keys:
                    continue  # being built: its first key is not registered yet
                attributed = attributed_bytes(base)
                for key in base.keys:
                    entry = residency.keys[key]
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
                                self._changed(file, loaded) for file, loaded in entry.files()
                            ),
                        )
                    )
            ram_bytes = residency.ram_bytes()
        models.sort(key=lambda m: m.last_used_unix_ms)
        policy = residency.policy
        reserve = policy.reserve_bytes
        return MemorySnapshot(
            device=residency.device.label,
            device_name=residency.device.display_name,
            total_bytes=total,
            used_bytes=total - free,
            available_bytes=max(0, free - reserve),
            models=tuple(models),
            reserve_bytes=reserve,
            ram_tier_bytes=ram_bytes,
            ram_tier_capacity_bytes=policy.ram_cache_bytes,
        )

    def file_uses(self) -> dict[str, FileUse]:
        """Every file a loaded key was read from (checkpoint, LoRAs, upscaler), by
        resolved path: which keys use it, and whether it changed since they loaded it."""
        keys: dict[str, list[str]] = {}
        stale: dict[str, bool] = {}
        with self.residency.lock:
            for key, entry in self.residency.keys.items():
                for file, loaded in entry.files():
                    keys.setdefault(file, []).append(key)
                    stale[file] = stale.get(file, False) or self._changed(file, loaded)
        return {file: FileUse(keys=tuple(sorted(k)), stale=stale[file]) for file, k in keys.items()}

    def _changed(self, file: str, loaded: Fingerprint | None) -> bool:
        return self.changes is not None and self.changes.changed_since(file, loaded)


def attributed_bytes(base: Base) -> dict[str, int]:
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
