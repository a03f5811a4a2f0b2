"""Writes the demo model tree: tiny single-file checkpoints, their config folders,
tiny LoRAs and a modes.yaml using them. No network, deterministic, a few seconds.
"""

from __future__ import annotations

import copy
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import yaml
from diffusers.configuration_utils import ConfigMixin
from diffusers.pipelines.pipeline_utils import DiffusionPipeline
from peft import LoraConfig, get_peft_model_state_dict, inject_adapter_in_model
from safetensors.torch import save_file
from spandrel.architectures.ESRGAN import ESRGAN
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from modelhost.demo.ldm_keys import StateDict, pipeline_to_ldm_state_dict
from modelhost.demo.tiny import tiny_sd15_pipeline, tiny_sdxl_pipeline

if TYPE_CHECKING:
    from modelhost.demo.ldm_keys import StableDiffusionFamilyPipeline

LORA_DIR = "loras"
UPSCALER_DIR = "upscalers"
# A 2x ESRGAN (RRDBNet) in the original ESRGAN key layout, which spandrel recognises.
UPSCALER = f"{UPSCALER_DIR}/tiny-esrgan-x2.safetensors"
UPSCALER_SCALE = 2
UPSCALER_SEED = 4242
LORA_TARGET_MODULES = ["to_q", "to_k", "to_v", "to_out.0"]
# peft's random init (init_lora_weights=False) alone moves the tiny models' images by only
# 4-7 grey levels on average; this gain makes it 10-18, so a LoRA is plainly visible.
LORA_UP_GAIN = 4.0
# Fixed so that neither safetensors' header nor diffusers' loaders see a timestamp.
SAFETENSORS_METADATA = {"format": "pt"}


@dataclass(frozen=True)
class DemoModel:
    name: str
    seed: int
    lora_seed: int

    @property
    def checkpoint(self) -> str:
        return f"{self.name}.safetensors"

    @property
    def config_dir(self) -> str:
        return f"{self.name}.config"

    @property
    def lora(self) -> str:
        return f"{self.name}-lora.safetensors"


SD15 = DemoModel(name="tiny-sd15", seed=15, lora_seed=1015)
SDXL = DemoModel(name="tiny-sdxl", seed=1024, lora_seed=2024)


def make_demo_models(out_dir: Path) -> Path:
    """Write the demo tree into `out_dir` (created if needed) and return modes.yaml's path.

    Re-running overwrites every file with identical bytes, so it is safe to call on an
    existing tree.
    """
    out_dir = out_dir.resolve()
    (out_dir / LORA_DIR).mkdir(parents=True, exist_ok=True)
    (out_dir / UPSCALER_DIR).mkdir(parents=True, exist_ok=True)

    sd15 = tiny_sd15_pipeline(SD15.seed)
    _write_model(sd15, SD15, out_dir)
    _write_lora(sd15, SD15, out_dir)

    sdxl = tiny_sdxl_pipeline(SDXL.seed)
    _write_model(sdxl, SDXL, out_dir)
    _write_lora(sdxl, SDXL, out_dir)

    _save_safetensors(tiny_upscaler_state_dict(UPSCALER_SEED), out_dir / UPSCALER)

    modes_path = out_dir / "modes.yaml"
    _write_text_atomically(modes_path, render_modes_yaml(out_dir))
    return modes_path


def _write_model(pipe: StableDiffusionFamilyPipeline, model: DemoModel, out_dir: Path) -> None:
    _save_safetensors(pipeline_to_ldm_state_dict(pipe), out_dir / model.checkpoint)
    write_config_folder(pipe, out_dir / model.config_dir)


def write_config_folder(pipe: DiffusionPipeline, folder: Path) -> None:
    """A diffusers folder with every config and tokenizer file but no weights.

    This is what `from_single_file(path, config=folder, local_files_only=True)` reads
    instead of fetching the default repository's configs from the hub.
    """
    staging = folder.with_name(f".{folder.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    pipe.save_config(staging)
    for name, component in pipe.components.items():
        target = staging / name
        if isinstance(component, ConfigMixin):
            component.save_config(target)
        elif isinstance(component, PreTrainedTokenizerBase):
            component.save_pretrained(target)
        elif isinstance(component, PreTrainedModel):
            component.config.save_pretrained(target)
        elif component is not None:
            raise TypeError(f"{name}: no config writer for {type(component).__name__}")
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)


def tiny_lora_state_dict(unet: torch.nn.Module, seed: int) -> StateDict:
    """Random rank-4 LoRA weights for `unet`'s attention projections (diffusers keys)."""
    lora_config = LoraConfig(
        r=4, lora_alpha=4, init_lora_weights=False, target_modules=LORA_TARGET_MODULES
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        adapted = inject_adapter_in_model(lora_config, copy.deepcopy(unet))
    state_dict: StateDict = get_peft_model_state_dict(adapted)
    return {
        key: (tensor * LORA_UP_GAIN if ".lora_B." in key else tensor).contiguous()
        for key, tensor in state_dict.items()
    }


def tiny_upscaler_state_dict(seed: int) -> StateDict:
    """Random weights of a 2x ESRGAN with 8 filters and one RRDB block (under 1 MB).

    Random weights still upscale: the output is twice the size, only not prettier.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=UPSCALER_SCALE)
    state_dict: StateDict = model.state_dict()
    return state_dict


def _write_lora(pipe: StableDiffusionFamilyPipeline, model: DemoModel, out_dir: Path) -> None:
    lora_layers: dict[str, torch.nn.Module | torch.Tensor] = dict(
        tiny_lora_state_dict(pipe.unet, model.lora_seed)
    )
    lora_dir = out_dir / LORA_DIR
    staging_name = f".{model.lora}.partial"
    type(pipe).save_lora_weights(
        save_directory=lora_dir, unet_lora_layers=lora_layers, weight_name=staging_name
    )
    _publish(lora_dir / staging_name, lora_dir / model.lora)


def _save_safetensors(state_dict: StateDict, path: Path) -> None:
    # Independent contiguous copies: safetensors refuses views and shared storage.
    tensors = {key: tensor.detach().contiguous().clone() for key, tensor in state_dict.items()}
    staging = path.with_name(f".{path.name}.partial")
    save_file(tensors, staging, metadata=SAFETENSORS_METADATA)
    _publish(staging, path)


def _write_text_atomically(path: Path, text: str) -> None:
    staging = path.with_name(f".{path.name}.partial")
    staging.write_text(text, encoding="utf-8")
    _publish(staging, path)


def _publish(staging: Path, path: Path) -> None:
    """Move a finished file into place in one step, so a watcher never sees half of it.

    safetensors creates its files owner-only (0600); the server may run as another user
    (a container), so the demo files are made world-readable like the config folders.
    """
    staging.chmod(0o644)
    os.replace(staging, path)


def render_modes_yaml(model_root: Path) -> str:
    document = {
        "model_root": str(model_root),
        "lora_root": str(model_root / LORA_DIR),
        "default_mode": "sdxl-general",
        "modes": {
            "sdxl-general": {
                "model": SDXL.checkpoint,
                "config": SDXL.config_dir,
                "default_size": "64x64",
                "default_steps": 4,
                "default_guidance": 5.0,
                "metadata": {"description": "Tiny random-weight SDXL-family model"},
            },
            "sdxl-portrait": {
                "model": SDXL.checkpoint,
                "config": SDXL.config_dir,
                "loras": [{"path": SDXL.lora, "strength": 0.8, "adapter_name": "portrait"}],
                "default_size": "48x64",
                "default_steps": 4,
                "default_guidance": 5.0,
                "metadata": {"description": "Tiny SDXL with a LoRA, portrait-shaped output"},
            },
            "sd15-fast": {
                "model": SD15.checkpoint,
                "config": SD15.config_dir,
                "superres": {"model": UPSCALER, "scale": UPSCALER_SCALE},
                # 4 steps at guidance 1.0 are LCM settings: they need its sampler.
                "scheduler": "lcm",
                "default_size": "64x64",
                "default_steps": 4,
                "default_guidance": 1.0,
                "metadata": {"description": "Tiny random-weight SD1.5-family model"},
            },
            "sd15-detail": {
                "model": SD15.checkpoint,
                "config": SD15.config_dir,
                "loras": [SD15.lora],
                "default_size": "64x64",
                "default_steps": 4,
                "default_guidance": 5.0,
                "metadata": {"description": "Tiny SD1.5 with a LoRA in the simple list form"},
            },
        },
    }
    header = (
        "# Generated by modelhost.demo.factory.make_demo_models: tiny random-weight\n"
        "# models for tests and demos. Regenerate rather than edit.\n"
    )
    return header + yaml.safe_dump(document, sort_keys=False)
