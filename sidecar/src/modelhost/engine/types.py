"""Plain data passed between the servicer and the host."""

from dataclasses import dataclass, field
from enum import Enum


@dataclass(frozen=True)
class LoraSpec:
    path: str
    strength: float = 1.0
    adapter_name: str = ""


@dataclass(frozen=True)
class LoadSpec:
    key: str
    model_path: str
    config_dir: str = ""
    loras: tuple[LoraSpec, ...] = ()
    dtype: str = ""
    superres_model: str = ""
    superres_scale: int = 0  # 0: the upscaler's own scale
    # "", "epsilon" or "v_prediction": overrides the scheduler config's, per generation.
    prediction_type: str = ""
    vae_path: str = ""  # replaces the checkpoint's VAE: a single file or a diffusers folder
    # Never evicted to make room. Memory policy, not what is loaded: two loads of one key
    # that differ only here are the same load (the later one's flag wins).
    pinned: bool = field(default=False, compare=False)

    def paths(self) -> list[tuple[str, str]]:
        """(request field, path) of every file or folder the load reads: what the
        model roots are checked against. A new path field belongs here too."""
        named = [("model_path", self.model_path), ("config_dir", self.config_dir)]
        named += [(f"loras[{i}].path", lora.path) for i, lora in enumerate(self.loras)]
        named.append(("superres_model", self.superres_model))
        named.append(("vae_path", self.vae_path))
        return [(field, path) for field, path in named if path]


class LoadSource(Enum):
    DISK = "disk"
    RESIDENT = "resident"
    RAM = "ram"  # moved back to the device from the RAM tier
    SHARED_BASE = "shared-base"  # a resident base pipeline, only this key's LoRAs loaded


@dataclass(frozen=True)
class LoadResult:
    key: str
    architecture: str
    bytes: int
    estimated_bytes: int
    load_seconds: float
    source: LoadSource
    device: str
    evicted: tuple[str, ...] = ()
    evicted_to_ram: tuple[str, ...] = ()  # the part of `evicted` parked in the RAM tier
    evicted_on_oom: tuple[str, ...] = ()  # the part of `evicted` an out-of-memory retry evicted
    prefetched: bool = False  # the base came from a prefetch (engine/prefetch.py)


@dataclass(frozen=True)
class GenerateParams:
    key: str
    prompt: str
    negative_prompt: str
    width: int
    height: int
    steps: int
    guidance_scale: float
    seed: int
    superres: bool = False
    scheduler: str = ""  # a name of engine.schedulers; "": the model's own
    clip_skip: int = 0  # diffusers' convention: 1 = the pre-final text-encoder layer


@dataclass(frozen=True)
class Progress:
    step: int
    total_steps: int
    elapsed_seconds: float


@dataclass(frozen=True)
class GeneratedImage:
    png: bytes
    seed: int
    width: int
    height: int
    superres_applied: bool = False


@dataclass(frozen=True)
class ResidentInfo:
    key: str
    model_path: str
    architecture: str
    bytes: int
    loras: tuple[LoraSpec, ...]
    tier: str  # "device" or "ram" (parked in the RAM tier)
    last_used_unix_ms: int
    in_ram_tier: bool = False
    base_key: str = ""
    # A file it was loaded from changed or left the disk since: it runs the old weights.
    stale: bool = False


@dataclass(frozen=True)
class MemorySnapshot:
    device: str
    device_name: str
    total_bytes: int
    used_bytes: int
    available_bytes: int
    models: tuple[ResidentInfo, ...] = field(default_factory=tuple)
    reserve_bytes: int = 0
    ram_tier_bytes: int = 0
    ram_tier_capacity_bytes: int = 0


@dataclass(frozen=True)
class MemoryPolicy:
    """Limits the operator chose. None/0 everywhere means none: the device's real
    free memory decides, and a load is tried even when the estimate says it will not fit.
    """

    # Treat the device as this big (tests; a GPU shared with other programs).
    cap_bytes: int | None = None
    # Always leave this much of the device free for other processes.
    reserve_bytes: int = 0
    # System memory for pipelines evicted from the device; 0 = evicted means dropped.
    ram_cache_bytes: int = 0

    @property
    def strict(self) -> bool:
        """With an explicit cap or reserve, a load that cannot fit is refused up front."""
        return self.cap_bytes is not None or self.reserve_bytes > 0


@dataclass(frozen=True)
class FileUse:
    """How the model host uses one file (by resolved path): the keys loaded from it,
    and whether it changed on disk since (those keys run the old weights)."""

    keys: tuple[str, ...]
    stale: bool
