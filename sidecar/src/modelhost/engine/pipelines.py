"""Turning a load spec into a diffusers pipeline on a device, and running it."""

import io
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from diffusers import (
    AutoencoderKL,
    StableDiffusionPipeline,
    StableDiffusionXLImg2ImgPipeline,
    StableDiffusionXLPipeline,
)
from PIL import Image

from modelhost.configs import config_folder, folder_name
from modelhost.engine import single_file
from modelhost.engine.checkpoint import PICKLE_SUFFIXES, CheckpointInfo, read_safetensors_header
from modelhost.engine.schedulers import build_scheduler, check_steps
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

# One pipeline (or VAE) built at a time in this process: diffusers and accelerate build
# models on the meta device by patching torch.nn.Module process-wide (init_empty_weights),
# so two builds at once (a prefetch beside a load) would leave each other's weights on meta.
BUILD_LOCK = threading.RLock()


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
    with BUILD_LOCK:
        return _build(pipeline_class, model_path, config_dir, dtype, device, kwargs)


def _build(
    pipeline_class: Any,
    model_path: Path,
    config_dir: str,
    dtype: torch.dtype,
    device: torch.device,
    kwargs: dict[str, Any],
) -> Pipeline:
    try:
        if model_path.is_dir():
            pipe = pipeline_class.from_pretrained(str(model_path), **kwargs)
        else:
            if config_dir:
                if not Path(config_dir).is_dir():
                    raise ModelFileNotFoundError(config_dir)
                kwargs["config"] = config_dir
            if config_dir and single_file.fast_path_applies(model_path):
                pipe = single_file.load_single_file(
                    pipeline_class, model_path, config_dir, dtype, device, local_files_only=True
                )
            else:
                pipe = pipeline_class.from_single_file(str(model_path), **kwargs)
    except (torch.OutOfMemoryError, ModelHostError):
        raise
    except Exception as e:
        # diffusers reports a file it cannot use with whatever the converter hit
        # (SafetensorError, KeyError, shape mismatches, ...): all mean "this file".
        raise InvalidModelError(f"cannot load {model_path}: {_first_line(e)}") from e
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def replace_vae(pipe: Pipeline, vae_path: Path, dtype: torch.dtype, device: torch.device) -> None:
    """Puts the VAE at `vae_path` in place of the pipeline's own.

    A single file is read with the pipeline's VAE config, force_upcast included, so an SDXL
    pipeline in fp16 still decodes in fp32 (its VAE overflows in fp16). A diffusers VAE folder
    brings its own config: an fp16-safe VAE that says force_upcast false decodes in fp16.
    """
    kwargs: dict[str, Any] = {"torch_dtype": dtype, "local_files_only": True}
    with BUILD_LOCK:
        _replace_vae(pipe, vae_path, device, kwargs)


def _replace_vae(
    pipe: Pipeline, vae_path: Path, device: torch.device, kwargs: dict[str, Any]
) -> None:
    try:
        if vae_path.is_dir():
            vae = AutoencoderKL.from_pretrained(str(vae_path), use_safetensors=True, **kwargs)
        else:
            with tempfile.TemporaryDirectory(prefix="modelhost-vae-") as config:
                pipe.vae.save_config(config)
                vae = AutoencoderKL.from_single_file(str(vae_path), config=config, **kwargs)
    except (torch.OutOfMemoryError, ModelHostError):
        raise
    except Exception as e:
        raise InvalidModelError(f"cannot load VAE {vae_path}: {_first_line(e)}") from e
    pipe.vae = vae.to(device)


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
            # peft makes the adapter's layers as modules: not while a pipeline is built.
            with BUILD_LOCK:
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
    prediction_type: str = "",
) -> Image.Image | None:
    """Runs the pipeline with the requested sampler (the loaded scheduler stays as it was);
    returns None when cancelled. The same inputs give the same image."""
    images = generate_images(pipe, [params], on_step, cancel.is_set, prediction_type)
    return None if images is None else images[0]


def generate_images(
    pipe: Pipeline,
    members: Sequence[GenerateParams],
    on_step: Callable[[int], None],
    stop: Callable[[], bool],
    prediction_type: str = "",
) -> list[Image.Image] | None:
    """Runs the members as one pipeline call, one image each, in order; None when `stop`
    said so at a step's end. The members must agree on everything but prompt, negative
    prompt and seed (batch.py groups them so); the sampler and shared settings are the
    first member's.

    Each member's noise comes from its own generator seeded with its seed, so a member's
    image is the one it gets alone, up to the last bits of batched float arithmetic."""
    first = members[0]
    if first.width % 8 or first.height % 8:
        raise InvalidRequestError("width and height must be multiples of 8")
    _check_clip_skip(pipe, first.clip_skip)
    loaded = pipe.scheduler
    scheduler = build_scheduler(loaded, first.scheduler, prediction_type, first.seed)
    check_steps(scheduler, first.steps)
    pipe.scheduler = scheduler
    try:
        with _final_layer_norm_reachable(pipe, first.clip_skip):
            return _run(pipe, members, on_step, stop)
    finally:
        pipe.scheduler = loaded


@contextmanager
def _final_layer_norm_reachable(pipe: Pipeline, clip_skip: int) -> Iterator[None]:
    """With clip_skip, diffusers' SD1.5/SD2 pipeline applies the final layer norm through
    `text_encoder.text_model.final_layer_norm`, a path transformers 5's CLIPTextModel no
    longer has (its layers sit directly on the model). For the call, an attribute outside
    the module tree (no submodule registered, the state dict unchanged) gives the path back."""
    encoder = getattr(pipe, "text_encoder", None)
    if not clip_skip or encoder is None or hasattr(encoder, "text_model"):
        yield
        return
    object.__setattr__(
        encoder, "text_model", SimpleNamespace(final_layer_norm=encoder.final_layer_norm)
    )
    try:
        yield
    finally:
        del encoder.__dict__["text_model"]


def _run(
    pipe: Pipeline,
    members: Sequence[GenerateParams],
    on_step: Callable[[int], None],
    stop: Callable[[], bool],
) -> list[Image.Image] | None:

    def step_end(p: Pipeline, step: int, _t: Any, tensors: dict[str, Any]) -> dict[str, Any]:
        on_step(step + 1)
        if stop():
            # Interrupting (rather than raising) lets diffusers finish its
            # cleanup hooks, so nothing stays pinned after a cancel.
            p._interrupt = True
        return tensors

    first = members[0]
    # CPU generators make the noise, and so the images, the same on every device; a list
    # of one is drawn exactly as a single generator is.
    generators = [torch.Generator(device="cpu").manual_seed(m.seed) for m in members]
    # No negative prompt must reach the pipeline as None, not "": SDXL then uses zeros for
    # the unconditional embedding rather than encoding an empty prompt.
    negative = [m.negative_prompt for m in members] if first.negative_prompt else None
    with torch.inference_mode():
        output = pipe(
            prompt=[m.prompt for m in members],
            negative_prompt=negative,
            width=first.width,
            height=first.height,
            num_inference_steps=first.steps,
            guidance_scale=first.guidance_scale,
            clip_skip=first.clip_skip or None,
            generator=generators,
            callback_on_step_end=step_end,
            output_type="pil",
        )
    if stop():
        return None
    images: list[Image.Image] = output.images
    return images


def _check_clip_skip(pipe: Pipeline, clip_skip: int) -> None:
    """diffusers indexes the text encoder's hidden states from the end: skipping as many
    layers as the encoder has, or more, would fail deep inside the pipeline."""
    if not clip_skip:
        return
    encoders = [getattr(pipe, name, None) for name in ("text_encoder", "text_encoder_2")]
    layers = min(e.config.num_hidden_layers for e in encoders if e is not None)
    if clip_skip >= layers:
        raise InvalidRequestError(
            f"clip_skip asks to skip {clip_skip} text-encoder layer(s): this model's text "
            f"encoder has {layers}, so at most {layers - 1} can be skipped"
        )


def encode_png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]
