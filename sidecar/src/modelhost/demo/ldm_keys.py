"""Diffusers state dicts -> the original single-file ("LDM" / A1111) key layout.

diffusers ships only the opposite direction in its wheel (LDM -> diffusers, used by
`from_single_file`); the reverse lives in repository scripts that hard-code SD's sizes.
This module is the inverse of diffusers' own readers in
`diffusers.loaders.single_file_utils` (`convert_ldm_unet_checkpoint`,
`convert_ldm_vae_checkpoint`, `convert_ldm_clip_checkpoint`,
`convert_open_clip_checkpoint`), generic over block counts and layers per block.
Every function is strict: a key it cannot place raises, so a new diffusers layer can
never be dropped silently from a checkpoint.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, TypeAlias

import torch

if TYPE_CHECKING:
    # Only for annotations: the mappings themselves need nothing but torch.
    from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import (
        StableDiffusionPipeline,
    )
    from diffusers.pipelines.stable_diffusion_xl.pipeline_stable_diffusion_xl import (
        StableDiffusionXLPipeline,
    )

    StableDiffusionFamilyPipeline: TypeAlias = StableDiffusionPipeline | StableDiffusionXLPipeline

StateDict = dict[str, torch.Tensor]

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
SD15_CLIP_PREFIX = "cond_stage_model.transformer."
SDXL_CLIP_PREFIX = "conditioner.embedders.0.transformer."
SDXL_OPEN_CLIP_PREFIX = "conditioner.embedders.1.model."

_UNET_FIXED_KEYS = {
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "conv_in": "input_blocks.0.0",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
    # SDXL's pooled-text + size/crop conditioning ("text_time") is LDM's label_emb.
    "add_embedding.linear_1": "label_emb.0.0",
    "add_embedding.linear_2": "label_emb.0.2",
}

_UNET_RESNET_PARTS = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}

_VAE_FIXED_KEYS = {
    "encoder.conv_in": "encoder.conv_in",
    "encoder.conv_out": "encoder.conv_out",
    "encoder.conv_norm_out": "encoder.norm_out",
    "decoder.conv_in": "decoder.conv_in",
    "decoder.conv_out": "decoder.conv_out",
    "decoder.conv_norm_out": "decoder.norm_out",
    "quant_conv": "quant_conv",
    "post_quant_conv": "post_quant_conv",
}

_VAE_ATTENTION_PARTS = {
    "group_norm": "norm",
    "to_q": "q",
    "to_k": "k",
    "to_v": "v",
    "to_out.0": "proj_out",
}

_OPEN_CLIP_FIXED_KEYS = {
    "text_model.embeddings.token_embedding.weight": "token_embedding.weight",
    "text_model.embeddings.position_embedding.weight": "positional_embedding",
    "text_model.final_layer_norm.weight": "ln_final.weight",
    "text_model.final_layer_norm.bias": "ln_final.bias",
}

_OPEN_CLIP_LAYER_PARTS = {
    "self_attn.out_proj": "attn.out_proj",
    "layer_norm1": "ln_1",
    "layer_norm2": "ln_2",
    "mlp.fc1": "mlp.c_fc",
    "mlp.fc2": "mlp.c_proj",
}


class UnmappedKeyError(ValueError):
    """A diffusers key has no place in the original layout."""


def _split_param(key: str) -> tuple[str, str]:
    module, _, param = key.rpartition(".")
    return module, param


def _rename_first(rest: str, table: Mapping[str, str], key: str) -> str:
    for diffusers_part, ldm_part in table.items():
        if rest == diffusers_part or rest.startswith(diffusers_part + "."):
            return ldm_part + rest[len(diffusers_part) :]
    raise UnmappedKeyError(f"no LDM name for {key!r}")


def unet_to_ldm(unet_state_dict: Mapping[str, torch.Tensor], *, layers_per_block: int) -> StateDict:
    """Map a `UNet2DConditionModel` state dict to `model.diffusion_model.*` keys.

    LDM numbers the UNet as flat `input_blocks` / `output_blocks` lists: each down block
    takes `layers_per_block` slots plus one for its downsampler, each up block
    `layers_per_block + 1` slots with the upsampler riding in its last slot.
    """
    down_stride = layers_per_block + 1
    up_blocks_with_attention = {
        int(match.group(1))
        for key in unet_state_dict
        if (match := re.match(r"up_blocks\.(\d+)\.attentions\.", key))
    }

    def down_resnet(m: re.Match[str]) -> str:
        slot = 1 + int(m[1]) * down_stride + int(m[2])
        return f"input_blocks.{slot}.0.{_rename_first(m[3], _UNET_RESNET_PARTS, m[0])}"

    def down_attention(m: re.Match[str]) -> str:
        return f"input_blocks.{1 + int(m[1]) * down_stride + int(m[2])}.1.{m[3]}"

    def downsampler(m: re.Match[str]) -> str:
        return f"input_blocks.{1 + int(m[1]) * down_stride + layers_per_block}.0.op.{m[2]}"

    def mid_resnet(m: re.Match[str]) -> str:
        # The mid block is resnet, attention, resnet: resnets sit in slots 0 and 2.
        slot = 2 * int(m[1])
        return f"middle_block.{slot}.{_rename_first(m[2], _UNET_RESNET_PARTS, m[0])}"

    def mid_attention(m: re.Match[str]) -> str:
        return f"middle_block.1.{m[1]}"

    def up_resnet(m: re.Match[str]) -> str:
        slot = int(m[1]) * down_stride + int(m[2])
        return f"output_blocks.{slot}.0.{_rename_first(m[3], _UNET_RESNET_PARTS, m[0])}"

    def up_attention(m: re.Match[str]) -> str:
        return f"output_blocks.{int(m[1]) * down_stride + int(m[2])}.1.{m[3]}"

    def upsampler(m: re.Match[str]) -> str:
        block = int(m[1])
        position = 2 if block in up_blocks_with_attention else 1
        return f"output_blocks.{block * down_stride + layers_per_block}.{position}.conv.{m[2]}"

    rules: list[tuple[str, Callable[[re.Match[str]], str]]] = [
        (r"down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", down_resnet),
        (r"down_blocks\.(\d+)\.attentions\.(\d+)\.(.+)", down_attention),
        (r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", downsampler),
        (r"mid_block\.resnets\.([01])\.(.+)", mid_resnet),
        (r"mid_block\.attentions\.0\.(.+)", mid_attention),
        (r"up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", up_resnet),
        (r"up_blocks\.(\d+)\.attentions\.(\d+)\.(.+)", up_attention),
        (r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", upsampler),
    ]

    converted: StateDict = {}
    for key, tensor in unet_state_dict.items():
        module, param = _split_param(key)
        if module in _UNET_FIXED_KEYS:
            ldm_key = f"{_UNET_FIXED_KEYS[module]}.{param}"
        else:
            ldm_key = _apply_rules(key, rules)
        converted[UNET_PREFIX + ldm_key] = tensor
    return converted


def vae_to_ldm(vae_state_dict: Mapping[str, torch.Tensor], *, num_up_blocks: int) -> StateDict:
    """Map an `AutoencoderKL` state dict to `first_stage_model.*` keys.

    LDM's decoder lists its up blocks from the lowest resolution up, the reverse of
    diffusers, and its mid-block attention uses 1x1 convolutions where diffusers uses
    linear layers.
    """

    def down_resnet(m: re.Match[str]) -> str:
        return f"encoder.down.{m[1]}.block.{m[2]}.{_vae_resnet_part(m[3])}"

    def downsampler(m: re.Match[str]) -> str:
        return f"encoder.down.{m[1]}.downsample.conv.{m[2]}"

    def up_resnet(m: re.Match[str]) -> str:
        ldm_block = num_up_blocks - 1 - int(m[1])
        return f"decoder.up.{ldm_block}.block.{m[2]}.{_vae_resnet_part(m[3])}"

    def upsampler(m: re.Match[str]) -> str:
        return f"decoder.up.{num_up_blocks - 1 - int(m[1])}.upsample.conv.{m[2]}"

    def mid_resnet(m: re.Match[str]) -> str:
        return f"{m[1]}.mid.block_{int(m[2]) + 1}.{_vae_resnet_part(m[3])}"

    def mid_attention(m: re.Match[str]) -> str:
        return f"{m[1]}.mid.attn_1.{_rename_first(m[2], _VAE_ATTENTION_PARTS, m[0])}"

    rules: list[tuple[str, Callable[[re.Match[str]], str]]] = [
        (r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", down_resnet),
        (r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", downsampler),
        (r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", up_resnet),
        (r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", upsampler),
        (r"(encoder|decoder)\.mid_block\.resnets\.([01])\.(.+)", mid_resnet),
        (r"(encoder|decoder)\.mid_block\.attentions\.0\.(.+)", mid_attention),
    ]

    converted: StateDict = {}
    for key, tensor in vae_state_dict.items():
        module, param = _split_param(key)
        if module in _VAE_FIXED_KEYS:
            ldm_key = f"{_VAE_FIXED_KEYS[module]}.{param}"
        else:
            ldm_key = _apply_rules(key, rules)
        is_attention_projection = ".mid.attn_1." in ldm_key and tensor.ndim == 2
        converted[VAE_PREFIX + ldm_key] = (
            tensor[:, :, None, None] if is_attention_projection else tensor
        )
    return converted


def _vae_resnet_part(rest: str) -> str:
    return rest.replace("conv_shortcut", "nin_shortcut", 1)


def _apply_rules(key: str, rules: list[tuple[str, Callable[[re.Match[str]], str]]]) -> str:
    for pattern, rename in rules:
        match = re.fullmatch(pattern, key)
        if match:
            return rename(match)
    raise UnmappedKeyError(f"no LDM name for {key!r}")


def _with_text_model_prefix(key: str) -> str:
    # transformers >= 5.6 flattened CLIPTextModel (no `text_model.` level); the original
    # layout always has it, and diffusers strips it again when the model lacks it.
    return key if key.startswith("text_model.") else f"text_model.{key}"


def clip_to_ldm(text_encoder_state_dict: Mapping[str, torch.Tensor], *, prefix: str) -> StateDict:
    """Map a `CLIPTextModel` state dict under `prefix` (the original layout is the HF one)."""
    return {
        prefix + _with_text_model_prefix(key): tensor
        for key, tensor in text_encoder_state_dict.items()
    }


def open_clip_to_ldm(
    text_encoder_state_dict: Mapping[str, torch.Tensor], *, prefix: str = SDXL_OPEN_CLIP_PREFIX
) -> StateDict:
    """Map a `CLIPTextModelWithProjection` state dict to the OpenCLIP layout.

    OpenCLIP fuses q, k, v into one `in_proj` (rows in that order) and applies
    `x @ text_projection`, so its projection is the transpose of the HF linear weight.
    """
    normalized = {
        key if key == "text_projection.weight" else _with_text_model_prefix(key): tensor
        for key, tensor in text_encoder_state_dict.items()
    }
    converted: StateDict = {}
    pending_in_proj: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    layer_pattern = re.compile(r"text_model\.encoder\.layers\.(\d+)\.(.+)")

    for key, tensor in normalized.items():
        if key in _OPEN_CLIP_FIXED_KEYS:
            converted[prefix + _OPEN_CLIP_FIXED_KEYS[key]] = tensor
            continue
        if key == "text_projection.weight":
            converted[prefix + "text_projection"] = tensor.T.contiguous()
            continue
        match = layer_pattern.fullmatch(key)
        if match is None:
            raise UnmappedKeyError(f"no OpenCLIP name for {key!r}")
        layer, rest = match[1], match[2]
        qkv = re.fullmatch(r"self_attn\.([qkv])_proj\.(weight|bias)", rest)
        if qkv:
            pending_in_proj.setdefault((layer, qkv[2]), {})[qkv[1]] = tensor
            continue
        ldm_rest = _rename_first(rest, _OPEN_CLIP_LAYER_PARTS, key)
        converted[f"{prefix}transformer.resblocks.{layer}.{ldm_rest}"] = tensor

    for (layer, param), parts in pending_in_proj.items():
        if set(parts) != {"q", "k", "v"}:
            raise UnmappedKeyError(f"layer {layer} {param}: q/k/v incomplete, have {sorted(parts)}")
        fused = torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)
        converted[f"{prefix}transformer.resblocks.{layer}.attn.in_proj_{param}"] = fused
    return converted


def pipeline_to_ldm_state_dict(pipe: StableDiffusionFamilyPipeline) -> StateDict:
    """The single-file checkpoint of an SD1.5- or SDXL-family pipeline.

    SDXL is recognised by its second text encoder; its first encoder keeps the HF
    layout and the second takes OpenCLIP's, as in Stability's released files.
    """
    layers_per_block = pipe.unet.config.layers_per_block
    if not isinstance(layers_per_block, int):
        raise ValueError("the LDM layout needs one layers_per_block for every UNet block")

    checkpoint = unet_to_ldm(pipe.unet.state_dict(), layers_per_block=layers_per_block)
    checkpoint |= vae_to_ldm(
        pipe.vae.state_dict(), num_up_blocks=len(pipe.vae.config.up_block_types)
    )
    if getattr(pipe, "text_encoder_2", None) is not None:
        checkpoint |= clip_to_ldm(pipe.text_encoder.state_dict(), prefix=SDXL_CLIP_PREFIX)
        checkpoint |= open_clip_to_ldm(pipe.text_encoder_2.state_dict())
    else:
        checkpoint |= clip_to_ldm(pipe.text_encoder.state_dict(), prefix=SD15_CLIP_PREFIX)
    return checkpoint
