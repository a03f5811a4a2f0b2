"""A single-file checkpoint loaded at the speed of reading and casting its bytes.

diffusers' from_single_file builds each model on the meta device and takes its tensors from
the file's mapping, one parameter at a time through accelerate, on one thread. Here:

- the file is mapped (private, so torch takes it as a buffer; nothing writes to it) and
  every tensor is a view of the mapping: the page cache's pages are read where they lie, with
  no copy of the file first (a read into a buffer cost a copy of every byte: 0.9 s of a
  2.3 s SD1.5 load on 2 cores, where the casts from the mapping took 1.0 s; docs/BENCHMARKS.md);
- the UNet and the VAE are built on the meta device and each tensor is cast into its own
  memory in one `Tensor.to(device, dtype, copy=True)`, spread over a few threads (the copies
  release the GIL, and take the mapping's page faults in parallel), then taken by the module
  as it is (`load_state_dict(assign=True)`);
- the text encoders come from diffusers' own converter (create_diffusers_clip_model_from_ldm:
  every CLIP and OpenCLIP layout) given the same views; the tokenizers and scheduler from
  diffusers' single-file path, given the models.

Each byte is read once and cast once. No weight is left a view of the mapping (one a converter
kept as it was is copied at the end), so the mapping is gone when the load returns and a file
changed on disk later cannot reach the weights. What the
file is (layout, family) was decided before, by checkpoint.inspect_single_file; a file this
path does not cover (pickle, or not in the original LDM layout) goes through diffusers'
path whole. `recorded_steps` gives the bench (bench/cold-load.py) the seconds of each step.
"""

import contextlib
import json
import mmap
import os
import struct
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch
import transformers
from accelerate import init_empty_weights
from diffusers import AutoencoderKL, UNet2DConditionModel
from diffusers.loaders.single_file_utils import (
    convert_ldm_unet_checkpoint,
    convert_ldm_vae_checkpoint,
    create_diffusers_clip_model_from_ldm,
)
from safetensors import safe_open

from modelhost.engine.checkpoint import UNET_PREFIX

# Threads casting tensors: more only oversubscribes the cores torch's own copies use.
CAST_THREADS = max(1, min(4, os.cpu_count() or 1))

_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}

_MODELS: dict[str, tuple[Any, Any]] = {
    "unet": (UNet2DConditionModel, convert_ldm_unet_checkpoint),
    "vae": (AutoencoderKL, convert_ldm_vae_checkpoint),
}

_recorder = threading.local()


@contextlib.contextmanager
def recorded_steps() -> Iterator[dict[str, float]]:
    """Seconds per step of the loads this thread runs inside the block."""
    seconds: dict[str, float] = {}
    _recorder.seconds = seconds
    try:
        yield seconds
    finally:
        _recorder.seconds = None


@contextlib.contextmanager
def _step(name: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        seconds = getattr(_recorder, "seconds", None)
        if seconds is not None:
            seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - started


def fast_path_applies(path: Path) -> bool:
    """A .safetensors file in the original layout (what this module converts)."""
    if path.suffix.lower() != ".safetensors":
        return False
    with safe_open(str(path), framework="pt") as f:
        return any(key.startswith(UNET_PREFIX) for key in f.keys())  # noqa: SIM118


def load_single_file(
    pipeline_class: Any,
    path: Path,
    config_dir: str,
    dtype: torch.dtype,
    device: torch.device,
    **kwargs: Any,
) -> Any:
    """The pipeline in `path`: its models loaded here, the rest by diffusers."""
    with _step("read"):
        checkpoint, mapping = _map(path)
    models: dict[str, Any] = {
        name: _load_model(name, checkpoint, config_dir, dtype, device) for name in _MODELS
    }
    index = json.loads((Path(config_dir) / "model_index.json").read_text())
    for name, value in index.items():
        if (
            name.startswith("text_encoder")
            and isinstance(value, list)
            and value[0] == "transformers"
        ):
            models[name] = create_diffusers_clip_model_from_ldm(
                getattr(transformers, value[1]),
                checkpoint,
                subfolder=name,
                config=config_dir,
                torch_dtype=dtype,
                local_files_only=True,
            )
    del checkpoint
    pipe = pipeline_class.from_single_file(
        str(path), config=config_dir, torch_dtype=dtype, **models, **kwargs
    )
    with _step("device copy"):
        pipe.to(device)
        _detach_from(pipe, mapping)
    return pipe


def _map(path: Path) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Every tensor of the file, as a view of its mapping; and the mapping's bytes."""
    with path.open("rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(header_len))
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
    whole = torch.frombuffer(mapped, dtype=torch.uint8)
    start = 8 + header_len
    tensors: dict[str, torch.Tensor] = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        if start + end > len(whole):
            raise ValueError("the file is shorter than its header says")
        raw = whole[start + begin : start + end]
        dtype = _DTYPES[entry["dtype"]]
        try:
            typed = raw.view(dtype)
        except RuntimeError:  # not aligned to its element size in the file: copied
            typed = raw.clone().view(dtype)
        tensors[name] = typed.view(entry["shape"])
    return tensors, whole


def _detach_from(pipe: Any, mapping: torch.Tensor) -> None:
    """Copies every weight that is still a view of the mapping (a converter may keep a tensor
    of the load's dtype as it is), so that nothing holds the file's mapping after the load."""
    low = mapping.data_ptr()
    high = low + mapping.numel()
    for component in pipe.components.values():
        if not isinstance(component, torch.nn.Module):
            continue
        for tensor in [*component.parameters(), *component.buffers()]:
            if tensor.device.type == "cpu" and low <= tensor.data_ptr() < high:
                tensor.data = tensor.data.clone()


def _load_model(
    name: str,
    checkpoint: dict[str, torch.Tensor],
    config_dir: str,
    dtype: torch.dtype,
    device: torch.device,
) -> torch.nn.Module:
    model_class, convert = _MODELS[name]
    with _step("header + key conversion"):
        config = model_class.load_config(config_dir, subfolder=name, local_files_only=True)
        converted = convert(checkpoint=checkpoint, config=config)
    with _step("module construction"), init_empty_weights():
        model = model_class.from_config(config)
    with _step("assign + cast"):
        expected = model.state_dict()
        missing = sorted(set(expected) - set(converted))
        if missing:
            raise ValueError(f"{name}: the checkpoint has no {missing[0]}")
        wanted = [key for key in converted if key in expected]
        for key in wanted:
            if converted[key].shape != expected[key].shape:
                raise ValueError(
                    f"{name}: {key} is {tuple(converted[key].shape)} in the checkpoint, "
                    f"the model's config wants {tuple(expected[key].shape)}"
                )

        def cast(key: str) -> torch.Tensor:
            tensor = converted[key]
            target = dtype if tensor.is_floating_point() else tensor.dtype
            return tensor.to(device=device, dtype=target, copy=True)

        # Biggest first, so that no thread is left with a big one at the end.
        wanted.sort(key=lambda key: converted[key].numel(), reverse=True)
        with ThreadPoolExecutor(CAST_THREADS, thread_name_prefix="cast") as pool:
            tensors = dict(zip(wanted, pool.map(cast, wanted), strict=True))
        converted.clear()
        model.load_state_dict(tensors, strict=True, assign=True)
        del tensors
    with _step("device copy"):
        # The buffers made outside the meta device (init_empty_weights keeps them real).
        model.to(device)
    return model.eval()
