"""Turning a load spec into a diffusers pipeline on a device, and running it."""

import io
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from diffusers import (
    StableDiffusionPipeline,
    StableDiffusionXLImg2ImgPipeline,
    StableDiffusionXLPipeline,
)
from PIL import Image

from modelhost.configs import config_folder, folder_name
from modelhost.engine.checkpoint import PICKLE_SUFFIXES, CheckpointInfo, read_safetensors_header
from modelhost.engine.types import GenerateParams, LoraSpec
from modelhost.errors import (
    InvalidModelError,
    InvalidRequestError,
    ModelFileNotFoundError,
    ModelHostError,
)

# diffusers' lazy module hides the pipeline classes' methods from type checkers.
Pipeline = Any

PIPELINE_CLASSES: dict[str, Any] = {
    "sd15": StableDiffusionPipeline,
    "sd2": StableDiffusionPipeline,
    "sdxl-base": StableDiffusionXLPipeline,
    "sdxl-refiner": StableDiffusionXLImg2ImgPipeline,
}

DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


def default_config_dir(info: CheckpointInfo, prediction_type: str = "") -> str:
    """The bundled config folder of the detected family, for a single file whose mode
    names no `config`: a checkpoint as users download it then loads with no hub.
    `prediction_type` overrides the detected one (it picks SD2's 512 or 768-v release)."""
    if info.path.is_dir():
        return ""
    name = folder_name(info.architecture, prediction_type or info.prediction_type)
    return str(config_folder(name))


def build_pipeline(
    model_path: Path,
    architecture: str,
    config_dir: str,
    dtype: torch.dtype,
    device: torch.device,
) -> Pipeline:
    pipeline_class = PIPELINE_CLASSES[architecture]
    # local_files_only everywhere: code never downloads weights or configs at run time.
    kwargs: dict[str, Any] = {"torch_dtype": dtype, "local_files_only": True}
    try:
        if model_path.is_dir():
            pipe = pipeline_class.from_pretrained(str(model_path), **kwargs)
        else:
            if config_dir:
                if not Path(config_dir).is_dir():
                    raise ModelFileNotFoundError(config_dir)
                kwargs["config"] = config_dir
            pipe = pipeline_class.from_single_file(str(model_path), **kwargs)
    except (torch.OutOfMemoryError, ModelHostError):
        raise
    except Exception as e:
        # diffusers reports a file it cannot use with whatever the converter hit
        # (SafetensorError, KeyError, shape mismatches, ...): all mean "this file".
        raise InvalidModelError(f"cannot load {model_path}: {_first_line(e)}") from e
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def load_lora(pipe: Pipeline, lora: LoraSpec, adapter_name: str) -> None:
    """Adds one LoRA to the pipeline as the adapter `adapter_name` (left inactive:
    which adapters run, at which strengths, is set per generation)."""
    path = Path(lora.path)
    if not path.is_file():
        raise ModelFileNotFoundError(lora.path)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise InvalidModelError(f"{lora.path}: LoRAs are only read from .safetensors files")
    try:
        with warnings.catch_warnings():
            # peft warns whenever a model gets a second adapter; several adapters on
            # one base is exactly what base sharing is for.
            warnings.filterwarnings("ignore", message="Already found a `peft_config`")
            pipe.load_lora_weights(str(path), adapter_name=adapter_name)
    except (torch.OutOfMemoryError, ModelHostError):
        raise
    except Exception as e:
        raise InvalidModelError(f"cannot load LoRA {lora.path}: {_first_line(e)}") from e


def activate_adapters(pipe: Pipeline, adapters: tuple[tuple[str, float], ...]) -> None:
    """Runs exactly these adapters at these strengths; none: the bare base model."""
    if adapters:
        pipe.enable_lora()
        pipe.set_adapters([name for name, _ in adapters], [weight for _, weight in adapters])
    else:
        pipe.disable_lora()


def delete_adapter(pipe: Pipeline, adapter_name: str) -> None:
    pipe.delete_adapters(adapter_name)


def lora_estimate_bytes(path: str, float_item_size: int) -> int:
    """Bytes the LoRA's weights take on the device, from its header (0 if unreadable:
    the load itself then reports why)."""
    try:
        tensors = read_safetensors_header(Path(path))
    except ModelHostError:
        return 0
    return sum(
        t.numel * (float_item_size if t.dtype in ("F64", "F32", "F16", "BF16") else 1)
        for t in tensors.values()
    )


def resident_bytes(pipe: Pipeline) -> int:
    """Bytes of every parameter and buffer of the pipeline's modules."""
    total = 0
    for component in pipe.components.values():
        if isinstance(component, torch.nn.Module):
            for tensor in [*component.parameters(), *component.buffers()]:
                total += tensor.numel() * tensor.element_size()
    return total


def generate_image(
    pipe: Pipeline,
    params: GenerateParams,
    on_step: Callable[[int], None],
    cancel: threading.Event,
) -> Image.Image | None:
    """Runs the pipeline; returns None when cancelled. The same inputs give the same image."""
    if params.width % 8 or params.height % 8:
        raise InvalidRequestError("width and height must be multiples of 8")

    def step_end(p: Pipeline, step: int, _t: Any, tensors: dict[str, Any]) -> dict[str, Any]:
        on_step(step + 1)
        if cancel.is_set():
            # Interrupting (rather than raising) lets diffusers finish its
            # cleanup hooks, so nothing stays pinned after a cancel.
            p._interrupt = True
        return tensors

    # A CPU generator makes the noise, and so the image, the same on every device.
    generator = torch.Generator(device="cpu").manual_seed(params.seed)
    with torch.inference_mode():
        output = pipe(
            prompt=params.prompt,
            negative_prompt=params.negative_prompt or None,
            width=params.width,
            height=params.height,
            num_inference_steps=params.steps,
            guidance_scale=params.guidance_scale,
            generator=generator,
            callback_on_step_end=step_end,
            output_type="pil",
        )
    if cancel.is_set():
        return None
    image: Image.Image = output.images[0]
    return image


def encode_png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]
