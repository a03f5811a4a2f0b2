"""Detection tells SD1.5 / SD2-512 / SD2-768-v / SDXL base / refiner from a single file,
and each picks its bundled config folder (the 768-v one with the v-prediction scheduler).

The tiny demo models carry the families' key layouts. SD2's v-prediction rule reads a
statistic of real weights, so those cases use full-size random tensors shaped as in the
released files: only the tensors the rule reads, not a model."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from modelhost.configs import CACHE_ENV
from modelhost.demo.ldm_keys import pipeline_to_ldm_state_dict
from modelhost.demo.tiny import tiny_sd15_pipeline, tiny_sdxl_pipeline
from modelhost.engine.checkpoint import (
    EPSILON,
    V_PREDICTION,
    V_PREDICTION_STATISTIC_KEY,
    inspect_diffusers_folder,
    inspect_single_file,
)
from modelhost.engine.pipelines import default_config_dir

UNET_IN = "model.diffusion_model.input_blocks.0.0.weight"
OPEN_CLIP_H = "cond_stage_model.model.ln_final.weight"


@pytest.fixture(autouse=True)
def cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv(CACHE_ENV, str(folder))
    return folder


def _save(path: Path, tensors: dict[str, torch.Tensor]) -> Path:
    save_file({k: v.contiguous() for k, v in tensors.items()}, path)
    return path


def _sd2_tensors(norm_bias_std: float, in_channels: int = 4) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(2)
    # SD2's last output block works at 320 channels, so this norm bias has 320 values.
    bias = torch.randn(320, generator=generator, dtype=torch.float32)
    bias = (bias - bias.mean()) / bias.std(unbiased=False) * norm_bias_std
    return {
        UNET_IN: torch.zeros(320, in_channels, 3, 3, dtype=torch.float16),
        V_PREDICTION_STATISTIC_KEY: bias.to(torch.float16),
        OPEN_CLIP_H: torch.ones(1024, dtype=torch.float16),
    }


def _scheduler(config_dir: str) -> dict[str, object]:
    config: dict[str, object] = json.loads(
        (Path(config_dir) / "scheduler" / "scheduler_config.json").read_text()
    )
    return config


def test_tiny_sd15_is_sd15_epsilon_with_the_sd15_folder(tmp_path: Path) -> None:
    path = _save(tmp_path / "sd15.safetensors", pipeline_to_ldm_state_dict(tiny_sd15_pipeline()))
    info = inspect_single_file(path)
    assert (info.architecture, info.prediction_type) == ("sd15", EPSILON)
    config_dir = default_config_dir(info)
    assert Path(config_dir).name == "sd15"
    assert _scheduler(config_dir)["_class_name"] == "PNDMScheduler"


def test_tiny_sdxl_is_sdxl_base_with_the_sdxl_base_folder(tmp_path: Path) -> None:
    path = _save(tmp_path / "xl.safetensors", pipeline_to_ldm_state_dict(tiny_sdxl_pipeline()))
    info = inspect_single_file(path)
    assert (info.architecture, info.prediction_type) == ("sdxl-base", EPSILON)
    config_dir = Path(default_config_dir(info))
    assert config_dir.name == "sdxl-base"
    assert (config_dir / "tokenizer_2" / "vocab.json").is_file()


def test_refiner_is_told_by_its_single_open_clip_encoder_and_size_embedding(
    tmp_path: Path,
) -> None:
    tensors = {
        "model.diffusion_model.input_blocks.0.0.weight": torch.zeros(384, 4, 3, 3),
        # The refiner's size/aesthetic-score embedding input is 2560 wide.
        "model.diffusion_model.label_emb.0.0.weight": torch.zeros(1536, 2560),
        "conditioner.embedders.0.model.ln_final.weight": torch.ones(1280),
    }
    info = inspect_single_file(_save(tmp_path / "refiner.safetensors", tensors))
    assert (info.architecture, info.prediction_type) == ("sdxl-refiner", EPSILON)
    assert Path(default_config_dir(info)).name == "sdxl-refiner"


@pytest.mark.parametrize(
    ("std", "prediction_type", "folder", "scheduler"),
    [
        (0.15, V_PREDICTION, "sd2-v", "DDIMScheduler"),
        (0.04, EPSILON, "sd2", "PNDMScheduler"),
    ],
)
def test_sd2_768_v_is_told_from_512_by_the_norm_bias_statistic(
    tmp_path: Path, std: float, prediction_type: str, folder: str, scheduler: str
) -> None:
    info = inspect_single_file(_save(tmp_path / "sd2.safetensors", _sd2_tensors(std)))
    assert (info.architecture, info.prediction_type) == ("sd2", prediction_type)
    config_dir = default_config_dir(info)
    assert Path(config_dir).name == folder
    assert _scheduler(config_dir)["_class_name"] == scheduler
    assert _scheduler(config_dir)["prediction_type"] == prediction_type


def test_the_rule_is_a_strict_threshold_at_0_09(tmp_path: Path) -> None:
    above = inspect_single_file(_save(tmp_path / "above.safetensors", _sd2_tensors(0.095)))
    below = inspect_single_file(_save(tmp_path / "below.safetensors", _sd2_tensors(0.085)))
    assert (above.prediction_type, below.prediction_type) == (V_PREDICTION, EPSILON)


def test_sd2_inpainting_unets_are_epsilon_whatever_the_statistic(tmp_path: Path) -> None:
    tensors = _sd2_tensors(0.15, in_channels=9)
    info = inspect_single_file(_save(tmp_path / "inpaint.safetensors", tensors))
    assert (info.architecture, info.prediction_type) == ("sd2", EPSILON)


def test_pickle_checkpoints_get_the_same_rule(tmp_path: Path) -> None:
    path = tmp_path / "sd2-768.ckpt"
    torch.save({"state_dict": _sd2_tensors(0.15)}, path)
    info = inspect_single_file(path)
    assert (info.architecture, info.prediction_type) == ("sd2", V_PREDICTION)


def test_an_explicit_prediction_type_overrides_the_detected_one(tmp_path: Path) -> None:
    info = inspect_single_file(_save(tmp_path / "sd2.safetensors", _sd2_tensors(0.04)))
    assert Path(default_config_dir(info, V_PREDICTION)).name == "sd2-v"
    v_info = inspect_single_file(_save(tmp_path / "sd2-v.safetensors", _sd2_tensors(0.15)))
    assert Path(default_config_dir(v_info, EPSILON)).name == "sd2"


def test_a_diffusers_folder_needs_no_bundled_config_and_says_its_prediction_type(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "pipe"
    (folder / "scheduler").mkdir(parents=True)
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    (folder / "scheduler" / "scheduler_config.json").write_text(
        json.dumps({"_class_name": "DDIMScheduler", "prediction_type": "v_prediction"})
    )
    info = inspect_diffusers_folder(folder)
    assert info.prediction_type == V_PREDICTION
    assert default_config_dir(info) == ""
