"""Full-size random-weight pipelines built from the bundled (released) configs, and
their single files in the original layout.

The GPU check builds SD1.5 and SDXL this way on the device. On a CPU, the test suite
proves the config-free path on a real-sized checkpoint: `full_size_sd15_checkpoint`
writes a random SD1.5 single file (fp16, about 2 GB) into the cache folder once per
machine and reuses it after.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel
from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import (
    StableDiffusionPipeline,
)
from diffusers.pipelines.stable_diffusion_xl.pipeline_stable_diffusion_xl import (
    StableDiffusionXLPipeline,
)
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from modelhost.configs import cache_root, component_config
from modelhost.demo.ldm_keys import pipeline_to_ldm_state_dict
from modelhost.demo.tiny import sd15_pipeline, sdxl_pipeline

SD15_SEED = 1500
SD15_FILE = "sd15-random-fp16.safetensors"
RANDOM_MODELS_DIR = "random-models"
SD15_COMPONENTS = ("unet", "vae", "text_encoder")


@contextmanager
def _default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """Creates parameters in `dtype` directly: an fp16 SD1.5 then never holds its 4 GB
    fp32 copy on the way."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def build_random_pipeline(
    family: str, configs: dict[str, dict[str, Any]], device: torch.device, dtype: torch.dtype
) -> StableDiffusionPipeline | StableDiffusionXLPipeline:
    """A pipeline with random weights made on `device` (fast on a GPU; `meta` makes
    shapes only, which the tests use to check the full-size configs)."""
    with torch.device(device), _default_dtype(dtype):
        unet = UNet2DConditionModel.from_config(configs["unet"])
        vae = AutoencoderKL.from_config(configs["vae"])
        text_encoder = CLIPTextModel(CLIPTextConfig.from_dict(configs["text_encoder"]))
        modules: list[torch.nn.Module] = [unet, vae, text_encoder]
        if family == "sdxl":
            text_encoder_2 = CLIPTextModelWithProjection(
                CLIPTextConfig.from_dict(configs["text_encoder_2"])
            )
            modules.append(text_encoder_2)
    for module in modules:
        module.to(dtype=dtype).eval()
    if family == "sdxl":
        return sdxl_pipeline(unet, vae, text_encoder, text_encoder_2)
    return sd15_pipeline(unet, vae, text_encoder)


def save_checkpoint(pipe: StableDiffusionPipeline | StableDiffusionXLPipeline, path: Path) -> int:
    """Writes the single-file checkpoint (renamed into place when complete, so an
    interrupted run leaves no file that looks whole); returns its size."""
    tensors = {
        key: tensor.detach().to("cpu", copy=True).contiguous()
        for key, tensor in pipeline_to_ldm_state_dict(pipe).items()
    }
    staging = path.with_name(f".{path.name}.{os.getpid()}.partial")
    save_file(tensors, staging, metadata={"format": "pt"})
    del tensors
    with staging.open("rb") as f:
        os.fsync(f.fileno())
    staging.chmod(0o644)
    os.replace(staging, path)
    return path.stat().st_size


def full_size_sd15_checkpoint(cache_dir: Path | None = None) -> Path:
    """A random-weight SD1.5 single file of the released size, in the original layout
    and fp16 (as checkpoints are shared): made once per machine in the cache folder.

    Random weights still run end to end (the images are noise); what it proves is that a
    real-sized checkpoint with no config folder loads through the bundled configs.
    """
    path = (cache_dir or cache_root()) / RANDOM_MODELS_DIR / SD15_FILE
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    configs = {name: component_config("sd15", name) for name in SD15_COMPONENTS}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SD15_SEED)
        pipe = build_random_pipeline("sd15", configs, torch.device("cpu"), torch.float16)
    save_checkpoint(pipe, path)
    return path
