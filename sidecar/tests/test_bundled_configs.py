"""The bundled config folders are the released models': their components have the
released parameter counts, the original single-file layout of each converts through
diffusers' own readers into exactly their shapes, detection on that layout picks the
folder, and a folder completes (tokenizer vocabulary included) into the cache offline."""

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from diffusers.loaders.single_file_utils import (
    convert_ldm_clip_checkpoint,
    convert_ldm_unet_checkpoint,
    convert_ldm_vae_checkpoint,
    convert_open_clip_checkpoint,
)
from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

from modelhost.configs import CACHE_ENV, FOLDERS, cache_root, component_config, config_folder
from modelhost.demo.ldm_keys import clip_to_ldm, open_clip_to_ldm, unet_to_ldm, vae_to_ldm
from modelhost.engine.checkpoint import EPSILON, V_PREDICTION, TensorInfo, detect_architecture
from modelhost.engine.pipelines import PIPELINE_CLASSES

# Parameter counts of the released components (SD1.5 UNet 859,520,964; SD2 UNet
# 865,910,724 and its 23-layer OpenCLIP-H text model 340,387,840; SDXL base UNet
# 2,567,463,684; the refiner's UNet 2,259,526,660, matching its conv_in of 384x4x3x3).
SD_VAE = 83_653_863
CLIP_L = 123_060_480
OPEN_CLIP_BIG_G = 694_659_840
RELEASED_PARAMETERS = {
    "sd15": {"unet": 859_520_964, "vae": SD_VAE, "text_encoder": CLIP_L},
    "sd2": {"unet": 865_910_724, "vae": SD_VAE, "text_encoder": 340_387_840},
    "sd2-v": {"unet": 865_910_724, "vae": SD_VAE, "text_encoder": 340_387_840},
    "sdxl-base": {
        "unet": 2_567_463_684,
        "vae": SD_VAE,
        "text_encoder": CLIP_L,
        "text_encoder_2": OPEN_CLIP_BIG_G,
    },
    "sdxl-refiner": {"unet": 2_259_526_660, "vae": SD_VAE, "text_encoder_2": OPEN_CLIP_BIG_G},
}
# Where each family's text encoders sit in the original single-file layout.
TEXT_PREFIXES = {
    "sd15": {"text_encoder": "cond_stage_model.transformer."},
    "sd2": {"text_encoder": "cond_stage_model.model."},
    "sd2-v": {"text_encoder": "cond_stage_model.model."},
    "sdxl-base": {
        "text_encoder": "conditioner.embedders.0.transformer.",
        "text_encoder_2": "conditioner.embedders.1.model.",
    },
    "sdxl-refiner": {"text_encoder_2": "conditioner.embedders.0.model."},
}
ARCHITECTURES = {
    "sd15": "sd15",
    "sd2": "sd2",
    "sd2-v": "sd2",
    "sdxl-base": "sdxl-base",
    "sdxl-refiner": "sdxl-refiner",
}


def _meta_components(folder: str) -> dict[str, torch.nn.Module]:
    components: dict[str, torch.nn.Module] = {}
    with torch.device("meta"):
        components["unet"] = UNet2DConditionModel.from_config(component_config(folder, "unet"))
        components["vae"] = AutoencoderKL.from_config(component_config(folder, "vae"))
        for name in TEXT_PREFIXES[folder]:
            config = CLIPTextConfig.from_dict(component_config(folder, name))
            text_class = CLIPTextModelWithProjection if name == "text_encoder_2" else CLIPTextModel
            components[name] = text_class(config)
    return components


def _shapes(state: dict[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    return {key: tuple(tensor.shape) for key, tensor in state.items()}


def _text_shapes(state: dict[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    """Shapes under one naming: transformers 5 modules drop the `text_model.` level that
    diffusers' readers keep (loading maps one onto the other), and position ids are a
    buffer the original layout does not always carry."""
    shapes = {key.removeprefix("text_model."): shape for key, shape in _shapes(state).items()}
    shapes.pop("embeddings.position_ids", None)
    return shapes


def test_every_family_has_a_folder() -> None:
    assert set(FOLDERS) == set(RELEASED_PARAMETERS)


@pytest.mark.parametrize("folder", FOLDERS)
def test_components_have_the_released_parameter_counts(folder: str) -> None:
    counts = {
        name: sum(p.numel() for p in module.parameters())
        for name, module in _meta_components(folder).items()
    }
    assert counts == RELEASED_PARAMETERS[folder]


@pytest.mark.parametrize("folder", FOLDERS)
def test_the_original_layout_converts_into_the_bundled_shapes(folder: str) -> None:
    components = _meta_components(folder)
    unet, vae = components["unet"], components["vae"]
    unet_config: Any = unet.config
    vae_config: Any = vae.config
    checkpoint = unet_to_ldm(unet.state_dict(), layers_per_block=unet_config.layers_per_block)
    checkpoint |= vae_to_ldm(vae.state_dict(), num_up_blocks=len(vae_config.up_block_types))
    for name, prefix in TEXT_PREFIXES[folder].items():
        state = components[name].state_dict()
        if prefix.endswith(".model."):
            checkpoint |= open_clip_to_ldm(state, prefix=prefix)
        else:
            checkpoint |= clip_to_ldm(state, prefix=prefix)

    # Detection reads the layout alone and picks this family.
    assert detect_architecture(set(checkpoint)) == ARCHITECTURES[folder]

    # diffusers' own single-file readers map the layout onto exactly the bundled shapes.
    assert _shapes(convert_ldm_unet_checkpoint(checkpoint, dict(unet_config))) == _shapes(
        unet.state_dict()
    )
    assert _shapes(convert_ldm_vae_checkpoint(checkpoint, dict(vae_config))) == _shapes(
        vae.state_dict()
    )
    for name, prefix in TEXT_PREFIXES[folder].items():
        module = components[name]
        if prefix.endswith(".model."):
            converted = convert_open_clip_checkpoint(module, checkpoint, prefix=prefix)
        else:
            converted = convert_ldm_clip_checkpoint(checkpoint, remove_prefix=prefix)
        assert _text_shapes(converted) == _text_shapes(module.state_dict())


def _package_json(folder: str, relative: str) -> dict[str, Any]:
    config: dict[str, Any] = json.loads(
        (Path(__file__).parents[1] / "src/modelhost/configs" / folder / relative).read_text()
    )
    return config


@pytest.mark.parametrize(
    ("folder", "scheduler", "prediction_type", "sample_size"),
    [
        ("sd15", "PNDMScheduler", EPSILON, 64),
        ("sd2", "PNDMScheduler", EPSILON, 64),
        ("sd2-v", "DDIMScheduler", V_PREDICTION, 96),
        ("sdxl-base", "EulerDiscreteScheduler", EPSILON, 128),
        ("sdxl-refiner", "EulerDiscreteScheduler", EPSILON, 128),
    ],
)
def test_pipeline_and_scheduler_are_the_released_ones(
    folder: str, scheduler: str, prediction_type: str, sample_size: int
) -> None:
    index = _package_json(folder, "model_index.json")
    assert index["_class_name"] == PIPELINE_CLASSES[ARCHITECTURES[folder]].__name__
    assert index["scheduler"] == ["diffusers", scheduler]
    scheduler_config = _package_json(folder, "scheduler/scheduler_config.json")
    assert scheduler_config["_class_name"] == scheduler
    # PNDM's released SD1.5 config predates the field; diffusers' default is epsilon.
    assert scheduler_config.get("prediction_type", EPSILON) == prediction_type
    assert (scheduler_config["beta_start"], scheduler_config["beta_end"]) == (0.00085, 0.012)
    assert component_config(folder, "unet")["sample_size"] == sample_size
    # The image size the VAE was released for is the UNet's latent size times 8.
    assert component_config(folder, "vae")["sample_size"] == sample_size * 8


def test_sdxl_vae_asks_to_be_upcast_in_fp16() -> None:
    assert component_config("sdxl-base", "vae")["force_upcast"] is True
    assert component_config("sdxl-base", "vae")["scaling_factor"] == 0.13025
    assert component_config("sd15", "vae")["scaling_factor"] == 0.18215


def test_cache_root_follows_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "modelhost"
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "explicit"))
    assert cache_root() == tmp_path / "explicit"


def test_a_folder_completes_once_into_the_cache_and_loads_offline(tmp_path: Path) -> None:
    folder = config_folder("sdxl-base", tmp_path)
    assert folder.parent.parent == tmp_path / "configs"
    vocab = folder / "tokenizer" / "vocab.json"
    for tokenizer in ("tokenizer", "tokenizer_2"):
        assert (folder / tokenizer / "vocab.json").is_file()
        assert (folder / tokenizer / "merges.txt").read_text().startswith("#version: 0.2\n")
    # Reused, not rebuilt: the same folder and the same file.
    written = vocab.stat().st_mtime_ns
    assert config_folder("sd15", tmp_path).parent == folder.parent
    assert vocab.stat().st_mtime_ns == written
    assert not [p for p in (tmp_path / "configs").iterdir() if p.name.startswith(".")]

    tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer", local_files_only=True)
    assert (tokenizer.model_max_length, tokenizer.pad_token) == (77, "<|endoftext|>")
    assert len(tokenizer) == 49408


def test_sd2_folders_pad_with_the_open_clip_token(tmp_path: Path) -> None:
    for name in ("sd2", "sd2-v"):
        tokenizer = CLIPTokenizer.from_pretrained(config_folder(name, tmp_path) / "tokenizer")
        assert (tokenizer.pad_token, tokenizer.pad_token_id) == ("!", 0)


def test_detection_uses_label_emb_to_tell_the_refiner_from_sd2_in_the_sgm_layout() -> None:
    unet = {"model.diffusion_model.input_blocks.0.0.weight": TensorInfo("F16", 1, (1, 4, 3, 3))}
    openclip = {"conditioner.embedders.0.model.ln_final.weight": TensorInfo("F16", 1, (1,))}
    label = {"model.diffusion_model.label_emb.0.0.weight": TensorInfo("F16", 1, (1, 1))}
    assert detect_architecture(unet | openclip) == "sd2"
    assert detect_architecture(unet | openclip | label) == "sdxl-refiner"


def test_a_removed_cache_folder_is_built_again(tmp_path: Path) -> None:
    folder = config_folder("sd15", tmp_path)
    shutil.rmtree(tmp_path / "configs")
    assert config_folder("sd15", tmp_path) == folder
    assert (folder / "tokenizer" / "vocab.json").is_file()
