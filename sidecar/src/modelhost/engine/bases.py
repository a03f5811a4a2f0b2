"""What the model host holds: bases (one diffusers pipeline each), the keys on them and
the adapters and upscalers they share. Plain records; residency.py owns the changes.

Vocabulary:
- a *key* is what the gateway loads (one mode): a base model plus LoRAs and an
  optional upscaler.
- a *base* is one diffusers pipeline: one checkpoint read with one config at one
  dtype. Keys that differ only in LoRAs or upscaler share it; their LoRAs are
  adapters on it, and each generation activates its key's adapters and strengths.
"""

from dataclasses import dataclass, field
from pathlib import Path

import torch

from modelhost.engine.files import Fingerprint
from modelhost.engine.pipelines import Pipeline
from modelhost.engine.types import LoadSpec
from modelhost.engine.upscaler import Upscaler

# (model path, config dir, dtype name, the file's fingerprint, VAE path, its fingerprint),
# paths resolved ("" for none): what makes two keys share a base. Fingerprints are part of
# it so that a key loaded after a file changed on disk gets the new weights, not the stale
# base of an older key.
BaseId = tuple[str, str, str, Fingerprint | None, str, Fingerprint | None]
# (adapter name inside the pipeline, strength)
ActiveAdapters = tuple[tuple[str, float], ...]


@dataclass
class Adapter:
    name: str  # inside the pipeline; unique per base
    bytes: int
    fingerprint: Fingerprint | None  # of its file when it was loaded
    users: set[str] = field(default_factory=set)


@dataclass
class SharedUpscaler:
    upscaler: Upscaler
    fingerprint: Fingerprint | None  # of its file when it was loaded
    users: set[str] = field(default_factory=set)


@dataclass
class Base:
    id: BaseId
    architecture: str
    pipe: Pipeline
    bytes: int  # the pipeline's own weights
    keys: list[str] = field(default_factory=list)  # oldest first
    adapters: dict[str, Adapter] = field(default_factory=dict)  # by LoRA file
    upscalers: dict[str, SharedUpscaler] = field(default_factory=dict)  # by file
    parked: bool = False  # in the RAM tier
    busy: int = 0  # generations running on it: never evicted while > 0
    active: ActiveAdapters | None = None  # adapters set on the pipe; None: unknown

    def total_bytes(self) -> int:
        return (
            self.bytes
            + sum(a.bytes for a in self.adapters.values())
            + sum(u.upscaler.bytes for u in self.upscalers.values())
        )

    def modules(self) -> list[torch.nn.Module]:
        """Every module holding the base's weights: the pipeline's components and upscalers."""
        modules = [c for c in self.pipe.components.values() if isinstance(c, torch.nn.Module)]
        return modules + [shared.upscaler.module for shared in self.upscalers.values()]


@dataclass
class Key:
    spec: LoadSpec
    base: Base
    adapters: ActiveAdapters
    upscaler_file: str  # "" when the load named none
    bytes: int  # what this key's load added, as measured
    last_used_unix_ms: int

    def files(self) -> list[tuple[str, Fingerprint | None]]:
        """(resolved path, fingerprint when loaded) of each file the key's weights came from."""
        base = self.base
        files = [(base.id[0], base.id[3])]
        if base.id[4]:
            files.append((base.id[4], base.id[5]))
        key = self.spec.key
        files += [(file, a.fingerprint) for file, a in base.adapters.items() if key in a.users]
        if self.upscaler_file and self.upscaler_file in base.upscalers:
            files.append((self.upscaler_file, base.upscalers[self.upscaler_file].fingerprint))
        return files


def keys_of(bases: list[Base]) -> list[str]:
    return [key for base in bases for key in base.keys]


def resolved(path: str) -> str:
    return str(Path(path).resolve())
