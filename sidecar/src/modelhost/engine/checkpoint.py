"""What a checkpoint is, read from its safetensors header alone (no tensor data)."""

import json
import pickle
import struct
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

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
    # Kept for detectors that look at shapes (upscaler architectures in the inventory).
    shape: tuple[int, ...] = ()


EPSILON = "epsilon"
V_PREDICTION = "v_prediction"

UNET_PREFIX = "model.diffusion_model."
# ComfyUI's rule for telling SD2 768-v checkpoints from 512 epsilon ones
# (comfy/supported_models.py, SD20.model_type): for a 4-channel UNet, the population
# std of this norm bias in the last output block is above 0.09 in v-prediction models.
# Inpainting UNets (9 input channels) are epsilon.
V_PREDICTION_STATISTIC_KEY = UNET_PREFIX + "output_blocks.11.1.transformer_blocks.0.norm1.bias"
V_PREDICTION_STD_THRESHOLD = 0.09
_UNET_INPUT_KEY = UNET_PREFIX + "input_blocks.0.0.weight"


@dataclass(frozen=True)
class CheckpointInfo:
    path: Path
    architecture: str
    tensors: dict[str, TensorInfo]
    # What the UNet predicts, as detected: the default a load may override.
    prediction_type: str = EPSILON

    def device_bytes(self, float_item_size: int) -> int:
        """Exact bytes the weights take once floats are cast to a dtype of that item size.

        This is the pre-load estimate. The spec's rule is file size x 1.2; the header
        gives the real answer instead: a file's size says nothing about the dtype it
        will be cast to (an fp32 file loaded as fp16 needs half its size, the 1.2 rule
        says 2.4x too much), and checkpoints often carry weights that are never put on
        the device (EMA copies, which double an SD1.5 file). Summing numel x item size
        per tensor, at the load's dtype and without those prefixes, matches the
        measured parameter bytes to within the few non-persistent buffers (position
        ids) that checkpoints do not store.
        """
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
            shape = tuple(int(dim) for dim in entry["shape"])
            numel = 1
            for dim in shape:
                numel *= dim
            dtype = str(entry["dtype"])
            _ITEM_SIZES[dtype]
        except (KeyError, TypeError, ValueError) as e:
            raise InvalidModelError(f"{path}: malformed safetensors entry for '{name}'") from e
        tensors[name] = TensorInfo(dtype=dtype, numel=numel, shape=shape)
    return tensors


def detect_architecture(keys: set[str] | dict[str, TensorInfo]) -> str:
    """Tells the family from which text encoders the checkpoint carries.

    Structure, not layer counts: diffusers' own detector looks at one layer of
    the second text encoder, which misreads small models (DESIGN §10).
    """

    def has(prefix: str) -> bool:
        return any(k.startswith(prefix) for k in keys)

    if not has(UNET_PREFIX):
        raise InvalidModelError(
            "unrecognised checkpoint: no UNet weights (model.diffusion_model.*)"
        )
    if has("conditioner.embedders.1.model."):
        return "sdxl-base"
    if has("conditioner.embedders.0.model."):
        # One OpenCLIP encoder in Stability's newer ("sgm") layout: the refiner, whose
        # UNet takes the size/aesthetic embedding, or SD2 resaved in that layout.
        return "sdxl-refiner" if has(UNET_PREFIX + "label_emb.") else "sd2"
    if has("cond_stage_model.model."):
        return "sd2"
    if has("cond_stage_model.transformer."):
        return "sd15"
    raise InvalidModelError("unrecognised checkpoint: no known text encoder keys")


def inspect_single_file(path: Path) -> CheckpointInfo:
    """Safetensors files are read from their header alone. Pickle files (.ckpt ...) must
    be unpickled whole, so callers decide first whether pickles are allowed at all."""
    if not path.is_file():
        raise ModelFileNotFoundError(str(path))
    read: Callable[[str], torch.Tensor]
    if path.suffix.lower() in PICKLE_SUFFIXES:
        state = _pickle_state(path)
        tensors = _pickle_tensors(state)
        read = state.__getitem__
    else:
        tensors = read_safetensors_header(path)

        def read(key: str) -> torch.Tensor:
            with safe_open(path, framework="pt") as f:
                tensor: torch.Tensor = f.get_tensor(key)
            return tensor

    architecture = detect_architecture(tensors)
    return CheckpointInfo(
        path=path,
        architecture=architecture,
        tensors=tensors,
        prediction_type=detect_prediction_type(architecture, tensors, read),
    )


def detect_prediction_type(
    architecture: str, tensors: dict[str, TensorInfo], read: Callable[[str], torch.Tensor]
) -> str:
    """epsilon or v_prediction; only SD2 was released both ways, so only SD2 is read
    (one small tensor, not the file)."""
    if architecture != "sd2":
        return EPSILON
    unet_input = tensors.get(_UNET_INPUT_KEY)
    if unet_input is None or len(unet_input.shape) != 4 or unet_input.shape[1] != 4:
        return EPSILON
    if V_PREDICTION_STATISTIC_KEY not in tensors:
        return EPSILON
    bias = read(V_PREDICTION_STATISTIC_KEY).float()
    std = float(torch.std(bias, unbiased=False))
    return V_PREDICTION if std > V_PREDICTION_STD_THRESHOLD else EPSILON


_SAFETENSORS_DTYPE_NAMES = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
    torch.uint8: "U8", torch.bool: "BOOL",
}  # fmt: skip


def _pickle_state(path: Path) -> Mapping[str, Any]:
    """The state dict of a pickled checkpoint.

    weights_only=True even though the operator allowed pickles: it is what diffusers
    uses to read the file afterwards, so a file that needs arbitrary code is refused
    here with a reason rather than failing later. mmap keeps the tensor data on disk.
    """
    try:
        loaded: Any = torch.load(
            path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path)
        )
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as e:
        reason = (str(e).strip() or type(e).__name__).splitlines()[0]
        raise InvalidModelError(f"{path}: cannot read the pickle checkpoint: {reason}") from e
    # Lightning checkpoints nest the weights under "state_dict", sometimes twice.
    while isinstance(loaded, Mapping) and isinstance(loaded.get("state_dict"), Mapping):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, Mapping):
        raise InvalidModelError(f"{path}: the pickle checkpoint holds no state dict")
    return loaded


def _pickle_tensors(state: Mapping[str, Any]) -> dict[str, TensorInfo]:
    """Tensor names, dtypes and sizes of a pickled state dict."""
    tensors: dict[str, TensorInfo] = {}
    for name, value in state.items():
        if isinstance(value, torch.Tensor) and value.dtype in _SAFETENSORS_DTYPE_NAMES:
            dtype = _SAFETENSORS_DTYPE_NAMES[value.dtype]
            tensors[str(name)] = TensorInfo(
                dtype=dtype, numel=value.numel(), shape=tuple(value.shape)
            )
    return tensors


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
    try:
        index = json.loads(index_file.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InvalidModelError(f"{index_file}: not valid JSON ({e})") from e
    if not isinstance(index, dict):
        raise InvalidModelError(f"{index_file}: not a JSON object")
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
    return CheckpointInfo(
        path=path,
        architecture=architecture,
        tensors=tensors,
        prediction_type=_scheduler_prediction_type(path),
    )


def _scheduler_prediction_type(path: Path) -> str:
    """A diffusers folder says what its UNet predicts in its scheduler config."""
    config = path / "scheduler" / "scheduler_config.json"
    if not config.is_file():
        return EPSILON
    try:
        value = json.loads(config.read_text()).get("prediction_type", EPSILON)
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError) as e:
        raise InvalidModelError(f"{config}: unreadable scheduler config ({e})") from e
    return V_PREDICTION if value == V_PREDICTION else EPSILON


def _text_encoder_width(path: Path) -> int:
    config = path / "text_encoder" / "config.json"
    if not config.is_file():
        return 0
    try:
        return int(json.loads(config.read_text()).get("hidden_size", 0))
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError, TypeError, ValueError) as e:
        raise InvalidModelError(f"{config}: unreadable text encoder config ({e})") from e
