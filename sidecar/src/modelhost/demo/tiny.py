"""Tiny random-weight SD1.5- and SDXL-family pipelines, built in memory from a seed.

They keep Stable Diffusion's block layouts (so the standard single-file key mapping
holds) with channel counts small enough that a 64x64, 4-step image takes a fraction
of a second on a CPU and a whole checkpoint is a few MB.
"""

from __future__ import annotations

import torch

# Concrete modules rather than `from diffusers import ...`: for a type checker the
# package root resolves these names to its placeholder ("dummy") classes.
from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel
from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import (
    StableDiffusionPipeline,
)
from diffusers.pipelines.stable_diffusion_xl.pipeline_stable_diffusion_xl import (
    StableDiffusionXLPipeline,
)
from diffusers.schedulers.scheduling_euler_discrete import EulerDiscreteScheduler
from transformers import (
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    CLIPTokenizer,
)

# SD's prompt length; pipelines pad every prompt to it, and it bounds the position table.
MAX_TOKENS = 77

BOS_TOKEN = "<|startoftext|>"
EOS_TOKEN = "<|endoftext|>"

SD15_TEXT_HIDDEN = 32
SDXL_TEXT_HIDDEN = 32
# Different from SDXL_TEXT_HIDDEN on purpose: diffusers picks the CLIP or OpenCLIP
# reader by comparing position-embedding widths, so equal widths would fill the second
# encoder from the first encoder's weights.
SDXL_TEXT_2_HIDDEN = 48
SDXL_TEXT_2_PROJECTION = 32
SDXL_TIME_EMBED_DIM = 8


def _byte_level_alphabet() -> list[str]:
    """GPT-2's reversible byte -> printable character table, which CLIP's BPE runs on."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    remapped = [byte for byte in range(256) if byte not in printable]
    table = {byte: chr(byte) for byte in printable}
    table |= {byte: chr(256 + offset) for offset, byte in enumerate(remapped)}
    return [table[byte] for byte in range(256)]


def tiny_vocab() -> dict[str, int]:
    """Every byte alone and word-final, so any prompt tokenizes without unknowns."""
    alphabet = _byte_level_alphabet()
    tokens = [*alphabet, *(f"{char}</w>" for char in alphabet), BOS_TOKEN, EOS_TOKEN]
    return {token: index for index, token in enumerate(tokens)}


def tiny_tokenizer() -> CLIPTokenizer:
    return CLIPTokenizer(vocab=tiny_vocab(), merges=[], model_max_length=MAX_TOKENS)


def _text_config(hidden_size: int, *, projection_dim: int | None = None) -> CLIPTextConfig:
    vocab = tiny_vocab()
    return CLIPTextConfig(
        vocab_size=len(vocab),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        # Two layers at least: SDXL conditions on the penultimate hidden state.
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=MAX_TOKENS,
        projection_dim=projection_dim or hidden_size,
        bos_token_id=vocab[BOS_TOKEN],
        eos_token_id=vocab[EOS_TOKEN],
        pad_token_id=vocab[EOS_TOKEN],
    )


def _tiny_vae(scaling_factor: float) -> AutoencoderKL:
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 16, 16, 16),
        layers_per_block=2,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=64,
        scaling_factor=scaling_factor,
    )


def sd_scheduler() -> EulerDiscreteScheduler:
    # SD's training schedule, so the tiny models step like the real ones.
    return EulerDiscreteScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        prediction_type="epsilon",
        timestep_spacing="leading",
        steps_offset=1,
    )


def sd15_pipeline(
    unet: UNet2DConditionModel, vae: AutoencoderKL, text_encoder: CLIPTextModel
) -> StableDiffusionPipeline:
    """SD1.5-family pipeline of these modules, the in-memory tokenizer and SD's scheduler."""
    # diffusers annotates `scheduler` with its enum of scheduler names rather than a
    # scheduler type, and the optional safety components as required.
    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tiny_tokenizer(),
        unet=unet,
        scheduler=sd_scheduler(),  # type: ignore[arg-type]
        safety_checker=None,  # type: ignore[arg-type]
        feature_extractor=None,  # type: ignore[arg-type]
        requires_safety_checker=False,
    )


def sdxl_pipeline(
    unet: UNet2DConditionModel,
    vae: AutoencoderKL,
    text_encoder: CLIPTextModel,
    text_encoder_2: CLIPTextModelWithProjection,
) -> StableDiffusionXLPipeline:
    """SDXL-family pipeline of these modules, the in-memory tokenizers and SD's scheduler."""
    return StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tiny_tokenizer(),
        tokenizer_2=tiny_tokenizer(),
        unet=unet,
        scheduler=sd_scheduler(),  # type: ignore[arg-type]
    )


def tiny_sd15_pipeline(seed: int = 0) -> StableDiffusionPipeline:
    """SD1.5's layout: 4 UNet levels, cross-attention in the first three, 2 layers each."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            sample_size=8,
            in_channels=4,
            out_channels=4,
            down_block_types=(
                "CrossAttnDownBlock2D",
                "CrossAttnDownBlock2D",
                "CrossAttnDownBlock2D",
                "DownBlock2D",
            ),
            up_block_types=(
                "UpBlock2D",
                "CrossAttnUpBlock2D",
                "CrossAttnUpBlock2D",
                "CrossAttnUpBlock2D",
            ),
            block_out_channels=(16, 16, 32, 32),
            layers_per_block=2,
            norm_num_groups=8,
            cross_attention_dim=SD15_TEXT_HIDDEN,
            attention_head_dim=2,
        )
        vae = _tiny_vae(scaling_factor=0.18215)
        text_encoder = CLIPTextModel(_text_config(SD15_TEXT_HIDDEN))
    return sd15_pipeline(unet, vae, text_encoder)


def tiny_sdxl_pipeline(seed: int = 0) -> StableDiffusionXLPipeline:
    """SDXL's layout: 3 UNet levels (plain, cross-attn, cross-attn), text_time embedding."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            sample_size=8,
            in_channels=4,
            out_channels=4,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
            block_out_channels=(16, 32, 32),
            layers_per_block=2,
            norm_num_groups=8,
            # Deeper transformers in the lowest level, as in SDXL's (1, 2, 10).
            transformer_layers_per_block=(1, 1, 2),
            attention_head_dim=(2, 2, 2),
            use_linear_projection=True,
            cross_attention_dim=SDXL_TEXT_HIDDEN + SDXL_TEXT_2_HIDDEN,
            addition_embed_type="text_time",
            addition_time_embed_dim=SDXL_TIME_EMBED_DIM,
            # Pooled text embedding plus six size/crop numbers, each sinusoidally embedded.
            projection_class_embeddings_input_dim=SDXL_TEXT_2_PROJECTION + 6 * SDXL_TIME_EMBED_DIM,
        )
        vae = _tiny_vae(scaling_factor=0.13025)
        text_encoder = CLIPTextModel(_text_config(SDXL_TEXT_HIDDEN))
        text_encoder_2 = CLIPTextModelWithProjection(
            _text_config(SDXL_TEXT_2_HIDDEN, projection_dim=SDXL_TEXT_2_PROJECTION)
        )
    return sdxl_pipeline(unet, vae, text_encoder, text_encoder_2)
