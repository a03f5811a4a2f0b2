"""A mode's own VAE, and SDXL's VAE decoding in fp32 under an fp16 pipeline."""

import io
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL
from PIL import Image
from safetensors.torch import save_file

from modelhost.demo.ldm_keys import VAE_PREFIX, vae_to_ldm
from modelhost.engine.host import ModelHost
from modelhost.engine.types import GenerateParams, LoadSpec
from modelhost.errors import InvalidModelError, ModelFileNotFoundError


def spec(demo_dir: Path, family: str, key: str, **extra: Any) -> LoadSpec:
    return LoadSpec(
        key=key,
        model_path=str(demo_dir / f"tiny-{family}.safetensors"),
        config_dir=str(demo_dir / f"tiny-{family}.config"),
        **extra,
    )


def generate(host: ModelHost, key: str) -> np.ndarray:
    params = GenerateParams(
        key=key, prompt="a lighthouse", negative_prompt="", width=64, height=64, steps=2,
        guidance_scale=5.0, seed=5,
    )  # fmt: skip
    image = host.generate(params, lambda _p: None, threading.Event())
    return np.asarray(Image.open(io.BytesIO(image.png)).convert("RGB"), dtype=np.int16)


def other_vae(config_dir: Path, seed: int, **config: Any) -> Any:
    """An AutoencoderKL shaped like the family's, with other random weights (typed Any:
    diffusers' lazy module hides its methods from type checkers)."""
    torch.manual_seed(seed)
    return AutoencoderKL.from_config(AutoencoderKL.load_config(str(config_dir / "vae")), **config)


@pytest.fixture
def decoder_dtypes(
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[list[tuple[torch.dtype, torch.dtype]]]:
    """(latents dtype, decoder weights dtype) of every VAE decode."""
    seen: list[tuple[torch.dtype, torch.dtype]] = []
    decode = AutoencoderKL.decode

    def recording_decode(self: Any, z: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        seen.append((z.dtype, next(self.decoder.parameters()).dtype))
        return decode(self, z, *args, **kwargs)

    monkeypatch.setattr(AutoencoderKL, "decode", recording_decode)
    yield seen


def test_sdxl_in_fp16_decodes_in_fp32_as_its_vae_config_asks(
    host: ModelHost, demo_dir: Path, decoder_dtypes: list[tuple[torch.dtype, torch.dtype]]
) -> None:
    host.load(spec(demo_dir, "sdxl", "sdxl", dtype="float16"))
    pipe = host._keys["sdxl"].base.pipe
    # The single-file load keeps the config folder's force_upcast.
    assert pipe.vae.config.force_upcast is True
    assert pipe.unet.dtype == torch.float16
    image = generate(host, "sdxl")
    assert decoder_dtypes == [(torch.float32, torch.float32)]
    assert pipe.vae.dtype == torch.float16  # back to fp16 after the decode
    assert image.shape == (64, 64, 3)


def test_an_fp16_safe_vae_folder_is_used_as_given(
    host: ModelHost,
    demo_dir: Path,
    tmp_path: Path,
    decoder_dtypes: list[tuple[torch.dtype, torch.dtype]],
) -> None:
    folder = tmp_path / "sdxl-vae-fp16-fix"
    safe = other_vae(demo_dir / "tiny-sdxl.config", seed=3, force_upcast=False)
    safe.save_pretrained(str(folder), safe_serialization=True)
    host.load(spec(demo_dir, "sdxl", "sdxl", dtype="float16", vae_path=str(folder)))
    vae = host._keys["sdxl"].base.pipe.vae
    assert vae.config.force_upcast is False
    for name, tensor in safe.state_dict().items():
        assert torch.equal(vae.state_dict()[name], tensor.to(torch.float16)), name
    generate(host, "sdxl")
    assert decoder_dtypes == [(torch.float16, torch.float16)]


def test_a_single_file_vae_replaces_the_checkpoints_own_for_its_key_only(
    host: ModelHost, demo_dir: Path, tmp_path: Path
) -> None:
    replacement = other_vae(demo_dir / "tiny-sd15.config", seed=7)
    ldm = vae_to_ldm(replacement.state_dict(), num_up_blocks=len(replacement.config.up_block_types))
    # Standalone VAE files (vae-ft-mse-840000, sdxl_vae) carry the LDM names unprefixed.
    vae_file = tmp_path / "vae-ft-tiny.safetensors"
    save_file({k.removeprefix(VAE_PREFIX): v.contiguous() for k, v in ldm.items()}, vae_file)

    host.load(spec(demo_dir, "sd15", "own"))
    host.load(spec(demo_dir, "sd15", "swapped", vae_path=str(vae_file)))
    own, swapped = host._keys["own"].base, host._keys["swapped"].base
    assert own is not swapped  # other weights: another base pipeline
    for name, tensor in replacement.state_dict().items():
        assert torch.allclose(swapped.pipe.vae.state_dict()[name], tensor), name
    assert swapped.pipe.vae.config.force_upcast == own.pipe.vae.config.force_upcast
    # The two keys share the UNet's weights (same file) and differ in the decoder alone.
    difference = np.abs(generate(host, "swapped") - generate(host, "own")) > 3
    assert difference.mean() > 0.2
    uses = host.file_uses()
    assert uses[str(vae_file.resolve())].keys == ("swapped",)


def test_a_missing_or_pickled_vae_is_refused_before_any_load(
    host: ModelHost, demo_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(ModelFileNotFoundError):
        host.load(spec(demo_dir, "sd15", "a", vae_path=str(tmp_path / "missing.safetensors")))
    pickle = tmp_path / "vae.pt"
    pickle.write_bytes(b"not read")
    with pytest.raises(InvalidModelError, match="pickle"):
        host.load(spec(demo_dir, "sd15", "b", vae_path=str(pickle)))
    assert host.memory().models == ()
