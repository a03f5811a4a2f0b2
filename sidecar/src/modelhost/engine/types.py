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


class LoadSource(Enum):
    DISK = "disk"
    RESIDENT = "resident"


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
    tier: str
    last_used_unix_ms: int


@dataclass(frozen=True)
class MemorySnapshot:
    device: str
    device_name: str
    total_bytes: int
    used_bytes: int
    available_bytes: int
    models: tuple[ResidentInfo, ...] = field(default_factory=tuple)
