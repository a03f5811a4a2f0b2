import json
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from modelhost.engine.checkpoint import (
    detect_architecture,
    inspect_single_file,
    read_safetensors_header,
)
from modelhost.errors import InvalidModelError, ModelFileNotFoundError

UNET = "model.diffusion_model.input_blocks.0.0.weight"


@pytest.mark.parametrize(
    ("keys", "architecture"),
    [
        ({UNET, "cond_stage_model.transformer.text_model.embeddings.position_ids"}, "sd15"),
        ({UNET, "cond_stage_model.model.token_embedding.weight"}, "sd2"),
        (
            {
                UNET,
                "conditioner.embedders.0.transformer.text_model.final_layer_norm.weight",
                "conditioner.embedders.1.model.ln_final.weight",
            },
            "sdxl-base",
        ),
        (
            {
                UNET,
                "model.diffusion_model.label_emb.0.0.weight",
                "conditioner.embedders.0.model.ln_final.weight",
            },
            "sdxl-refiner",
        ),
        # SD2 resaved in Stability's newer layout: one OpenCLIP encoder, no size embedding.
        ({UNET, "conditioner.embedders.0.model.ln_final.weight"}, "sd2"),
    ],
)
def test_architecture_is_detected_from_key_structure(keys: set[str], architecture: str) -> None:
    assert detect_architecture(keys) == architecture


def test_a_checkpoint_without_a_unet_is_refused() -> None:
    with pytest.raises(InvalidModelError, match="no UNet weights"):
        detect_architecture({"cond_stage_model.transformer.x"})


def test_a_checkpoint_without_a_known_text_encoder_is_refused() -> None:
    with pytest.raises(InvalidModelError, match="no known text encoder"):
        detect_architecture({UNET, "something.else"})


def test_demo_checkpoints_are_detected(demo_dir: Path) -> None:
    assert inspect_single_file(demo_dir / "tiny-sd15.safetensors").architecture == "sd15"
    assert inspect_single_file(demo_dir / "tiny-sdxl.safetensors").architecture == "sdxl-base"


def test_device_bytes_are_the_exact_tensor_bytes(demo_dir: Path) -> None:
    path = demo_dir / "tiny-sd15.safetensors"
    tensors = load_file(path)
    fp32 = sum(t.numel() * t.element_size() for t in tensors.values())
    fp16 = sum(
        t.numel() * (2 if t.is_floating_point() else t.element_size()) for t in tensors.values()
    )
    info = inspect_single_file(path)
    assert info.device_bytes(4) == fp32
    assert info.device_bytes(2) == fp16
    assert fp16 < fp32


def test_a_missing_file_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(ModelFileNotFoundError, match=str(tmp_path / "nope.safetensors")):
        read_safetensors_header(tmp_path / "nope.safetensors")


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"abc", "shorter than its header"),
        (struct.pack("<Q", 2**40) + b"{}", "bad header length"),
        (struct.pack("<Q", 4) + b"\xff\xfe{}", "header is not JSON"),
        (struct.pack("<Q", 2) + b"[]", "not a JSON object"),
    ],
)
def test_a_corrupt_file_is_invalid_with_the_reason(
    tmp_path: Path, content: bytes, reason: str
) -> None:
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(InvalidModelError, match=reason):
        read_safetensors_header(path)


def test_a_malformed_tensor_entry_names_the_tensor(tmp_path: Path) -> None:
    header = json.dumps({"w": {"dtype": "F99", "shape": [2], "data_offsets": [0, 8]}}).encode()
    path = tmp_path / "bad.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + bytes(8))
    with pytest.raises(InvalidModelError, match="'w'"):
        read_safetensors_header(path)


def test_header_reading_ignores_metadata(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    path = tmp_path / "m.safetensors"
    save_file({"a": torch.zeros(3, 4, dtype=torch.float16)}, path, metadata={"k": "v"})
    tensors = read_safetensors_header(path)
    assert list(tensors) == ["a"]
    assert tensors["a"].numel == 12
    assert tensors["a"].dtype == "F16"
