"""What a checkpoint is, read from its safetensors header alone (no tensor data)."""

import json
import struct
from dataclasses import dataclass
from pathlib import Path

from modelhost.errors import InvalidModelError, ModelFileNotFoundError

PICKLE_SUFFIXES = frozenset({".ckpt", ".pt", ".pth", ".bin"})

_ITEM_SIZES = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1,
    "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
}  # fmt: skip
_FLOAT_DTYPES = frozenset({"F64", "F32", "F16", "BF16"})
# Weights that single-file loaders never put on the device.
_UNLOADED_PREFIXES = ("model_ema.",)
# A header larger than this is not a checkpoint header but a corrupt length field.
_MAX_HEADER_BYTES = 100 * 1024 * 1024


@dataclass(frozen=True)
class TensorInfo:
    dtype: str
    numel: int


@dataclass(frozen=True)
class CheckpointInfo:
    path: Path
    architecture: str
    tensors: dict[str, TensorInfo]

    def device_bytes(self, float_item_size: int) -> int:
        """Exact bytes the weights take once floats are cast to a dtype of that item size."""
        total = 0
        for name, tensor in self.tensors.items():
            if name.startswith(_UNLOADED_PREFIXES):
                continue
            size = float_item_size if tensor.dtype in _FLOAT_DTYPES else _ITEM_SIZES[tensor.dtype]
            total += tensor.numel * size
        return total


def read_safetensors_header(path: Path) -> dict[str, TensorInfo]:
    if not path.is_file():
        raise ModelFileNotFoundError(str(path))
    with path.open("rb") as f:
        raw_len = f.read(8)
        if len(raw_len) != 8:
            raise InvalidModelError(f"{path}: not a safetensors file (shorter than its header)")
        (header_len,) = struct.unpack("<Q", raw_len)
        if header_len > _MAX_HEADER_BYTES or header_len > path.stat().st_size - 8:
            raise InvalidModelError(f"{path}: not a safetensors file (bad header length)")
        try:
            header = json.loads(f.read(header_len))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise InvalidModelError(f"{path}: not a safetensors file (header is not JSON)") from e
    if not isinstance(header, dict):
        raise InvalidModelError(f"{path}: not a safetensors file (header is not a JSON object)")
    tensors: dict[str, TensorInfo] = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            numel = 1
            for dim in entry["shape"]:
                numel *= int(dim)
            dtype = str(entry["dtype"])
            _ITEM_SIZES[dtype]
        except (KeyError, TypeError, ValueError) as e:
            raise InvalidModelError(f"{path}: malformed safetensors entry for '{name}'") from e
        tensors[name] = TensorInfo(dtype=dtype, numel=numel)
    return tensors


def detect_architecture(keys: set[str] | dict[str, TensorInfo]) -> str:
    """Tells the family from which text encoders the checkpoint carries.

    Structure, not layer counts: diffusers' own detector looks at one layer of
    the second text encoder, which misreads small models (DESIGN §10).
    """

    def has(prefix: str) -> bool:
        return any(k.startswith(prefix) for k in keys)

    if not has("model.diffusion_model."):
        raise InvalidModelError(
            "unrecognised checkpoint: no UNet weights (model.diffusion_model.*)"
        )
    if has("conditioner.embedders.1.model."):
        return "sdxl-base"
    if has("conditioner.embedders.0.model."):
        return "sdxl-refiner"
    if has("cond_stage_model.model."):
        return "sd2"
    if has("cond_stage_model.transformer."):
        return "sd15"
    raise InvalidModelError("unrecognised checkpoint: no known text encoder keys")


def inspect_single_file(path: Path) -> CheckpointInfo:
    if path.suffix.lower() in PICKLE_SUFFIXES:
        tensors: dict[str, TensorInfo] = {}
        return CheckpointInfo(path=path, architecture="unknown", tensors=tensors)
    tensors = read_safetensors_header(path)
    return CheckpointInfo(path=path, architecture=detect_architecture(tensors), tensors=tensors)


_PIPELINE_CLASS_ARCHITECTURES = {
    "StableDiffusionPipeline": "sd15",
    "StableDiffusionXLPipeline": "sdxl-base",
    "StableDiffusionXLImg2ImgPipeline": "sdxl-refiner",
}


def inspect_diffusers_folder(path: Path) -> CheckpointInfo:
    index_file = path / "model_index.json"
    if not index_file.is_file():
        raise InvalidModelError(
            f"{path}: a folder but not a diffusers pipeline (no model_index.json)"
        )
    index = json.loads(index_file.read_text())
    class_name = str(index.get("_class_name", ""))
    architecture = _PIPELINE_CLASS_ARCHITECTURES.get(class_name)
    if architecture is None:
        raise InvalidModelError(f"{path}: unsupported pipeline class '{class_name}'")
    if architecture == "sd15" and _text_encoder_width(path) == 1024:
        architecture = "sd2"
    tensors: dict[str, TensorInfo] = {}
    for weights in sorted(path.glob("*/*.safetensors")):
        for name, tensor in read_safetensors_header(weights).items():
            tensors[f"{weights.parent.name}.{name}"] = tensor
    return CheckpointInfo(path=path, architecture=architecture, tensors=tensors)


def _text_encoder_width(path: Path) -> int:
    config = path / "text_encoder" / "config.json"
    if not config.is_file():
        return 0
    return int(json.loads(config.read_text()).get("hidden_size", 0))
