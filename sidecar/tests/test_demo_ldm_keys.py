"""Our diffusers -> LDM mapping is the exact inverse of diffusers' own LDM readers,
for layouts other than the demo models' too."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"

from collections.abc import Mapping
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
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from modelhost.demo.ldm_keys import (
    SD15_CLIP_PREFIX,
    SDXL_OPEN_CLIP_PREFIX,
    UNET_PREFIX,
    VAE_PREFIX,
    UnmappedKeyError,
    clip_to_ldm,
    open_clip_to_ldm,
    unet_to_ldm,
    vae_to_ldm,
)


def assert_same_tensors(actual: Mapping[str, torch.Tensor], expected: Mapping[str, Any]) -> None:
    assert sorted(actual) == sorted(expected)
    for key, tensor in expected.items():
        assert torch.equal(actual[key], tensor), key


UNET_LAYOUTS = {
    "sd15-like, one layer per block": dict(
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=(8, 16, 16),
        layers_per_block=1,
        cross_attention_dim=8,
    ),
    "attention only in the middle level, three layers": dict(
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        block_out_channels=(8, 8, 16),
        layers_per_block=3,
        cross_attention_dim=8,
    ),
    "sdxl-like with text_time embedding": dict(
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        block_out_channels=(8, 16),
        layers_per_block=2,
        transformer_layers_per_block=(1, 3),
        use_linear_projection=True,
        cross_attention_dim=12,
        addition_embed_type="text_time",
        addition_time_embed_dim=4,
        projection_class_embeddings_input_dim=8 + 6 * 4,
    ),
}


@pytest.mark.parametrize("layout", UNET_LAYOUTS.values(), ids=UNET_LAYOUTS.keys())
def test_unet_round_trips_through_diffusers_reader(layout: dict[str, Any]) -> None:
    unet = UNet2DConditionModel(norm_num_groups=4, attention_head_dim=2, **layout)
    original = unet.state_dict()

    checkpoint = unet_to_ldm(original, layers_per_block=layout["layers_per_block"])

    assert all(key.startswith(UNET_PREFIX) for key in checkpoint)
    assert_same_tensors(convert_ldm_unet_checkpoint(checkpoint, dict(unet.config)), original)


@pytest.mark.parametrize("levels,layers_per_block", [(2, 1), (3, 2), (4, 3)])
def test_vae_round_trips_through_diffusers_reader(levels: int, layers_per_block: int) -> None:
    vae = AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * levels,
        up_block_types=("UpDecoderBlock2D",) * levels,
        block_out_channels=tuple(4 * (level + 1) for level in range(levels)),
        layers_per_block=layers_per_block,
        norm_num_groups=2,
    )
    original = vae.state_dict()

    checkpoint = vae_to_ldm(original, num_up_blocks=levels)

    assert all(key.startswith(VAE_PREFIX) for key in checkpoint)
    assert checkpoint[f"{VAE_PREFIX}decoder.mid.attn_1.q.weight"].ndim == 4
    # The decoder's first diffusers block (lowest resolution) is LDM's last.
    assert torch.equal(
        checkpoint[f"{VAE_PREFIX}decoder.up.{levels - 1}.block.0.conv1.weight"],
        original["decoder.up_blocks.0.resnets.0.conv1.weight"],
    )
    assert_same_tensors(convert_ldm_vae_checkpoint(checkpoint, dict(vae.config)), original)


def text_config(hidden_size: int, projection_dim: int) -> CLIPTextConfig:
    return CLIPTextConfig(
        vocab_size=64,
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=3,
        num_attention_heads=2,
        max_position_embeddings=10,
        projection_dim=projection_dim,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
    )


def test_clip_round_trips_through_diffusers_reader() -> None:
    original = CLIPTextModel(text_config(16, 16)).state_dict()

    checkpoint = clip_to_ldm(original, prefix=SD15_CLIP_PREFIX)

    assert f"{SD15_CLIP_PREFIX}text_model.embeddings.position_embedding.weight" in checkpoint
    converted = convert_ldm_clip_checkpoint(checkpoint)
    unwrapped = {key.removeprefix("text_model."): tensor for key, tensor in converted.items()}
    expected = {key.removeprefix("text_model."): tensor for key, tensor in original.items()}
    assert_same_tensors(unwrapped, expected)


def test_open_clip_round_trips_through_diffusers_reader() -> None:
    # A projection narrower than the width catches a transposed text_projection.
    model = CLIPTextModelWithProjection(text_config(24, 8))
    original = model.state_dict()

    checkpoint = open_clip_to_ldm(original)

    assert checkpoint[f"{SDXL_OPEN_CLIP_PREFIX}text_projection"].shape == (24, 8)
    assert checkpoint[
        f"{SDXL_OPEN_CLIP_PREFIX}transformer.resblocks.2.attn.in_proj_bias"
    ].shape == (72,)
    converted = convert_open_clip_checkpoint(model, checkpoint, prefix=SDXL_OPEN_CLIP_PREFIX)
    assert_same_tensors(converted, original)


def test_unknown_keys_are_refused_rather_than_dropped() -> None:
    with pytest.raises(UnmappedKeyError, match="controlnet_cond_embedding"):
        unet_to_ldm(
            {"controlnet_cond_embedding.conv_in.weight": torch.zeros(1)}, layers_per_block=2
        )
    with pytest.raises(UnmappedKeyError, match="q/k/v incomplete"):
        open_clip_to_ldm({"text_model.encoder.layers.0.self_attn.q_proj.weight": torch.zeros(1)})
