"""The demo model factory: real single files that diffusers itself loads back, offline."""

from __future__ import annotations

import os

# Before diffusers/huggingface_hub are imported: they read it once, at import.
os.environ["HF_HUB_OFFLINE"] = "1"

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline
from safetensors import safe_open

from modelhost.demo.factory import SD15, SDXL, DemoModel, make_demo_models
from modelhost.demo.ldm_keys import (
    SD15_CLIP_PREFIX,
    SDXL_CLIP_PREFIX,
    SDXL_OPEN_CLIP_PREFIX,
    UNET_PREFIX,
    VAE_PREFIX,
)
from modelhost.demo.tiny import (
    SDXL_TEXT_2_HIDDEN,
    SDXL_TEXT_2_PROJECTION,
    tiny_sd15_pipeline,
    tiny_sdxl_pipeline,
)

PROMPT = "a lighthouse at dusk"


class Family:
    def __init__(
        self, model: DemoModel, pipeline_class: Any, build: Any, prefixes: tuple[str, ...]
    ) -> None:
        self.model = model
        self.pipeline_class = pipeline_class
        self.build = build
        self.prefixes = prefixes

    def __repr__(self) -> str:
        return self.model.name


SD15_FAMILY = Family(
    SD15, StableDiffusionPipeline, tiny_sd15_pipeline, (UNET_PREFIX, VAE_PREFIX, SD15_CLIP_PREFIX)
)
SDXL_FAMILY = Family(
    SDXL,
    StableDiffusionXLPipeline,
    tiny_sdxl_pipeline,
    (UNET_PREFIX, VAE_PREFIX, SDXL_CLIP_PREFIX, SDXL_OPEN_CLIP_PREFIX),
)
FAMILIES = pytest.mark.parametrize("family", [SD15_FAMILY, SDXL_FAMILY], ids=repr)


@pytest.fixture(scope="module", autouse=True)
def no_network() -> Iterator[None]:
    """Any TCP connection attempt fails the test; module-scoped so other modules keep sockets."""
    real_connect = socket.socket.connect

    def refuse_inet(self: socket.socket, address: Any) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise AssertionError(f"network access attempted: {address!r}")
        real_connect(self, address)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", refuse_inet)
        yield


@pytest.fixture(scope="module", autouse=True)
def one_cpu_thread() -> Iterator[None]:
    """The tiny models run as fast on one thread, and a busy machine (parallel test
    processes) no longer makes torch's spinning worker threads fight over the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out_dir = tmp_path_factory.mktemp("demo-models")
    make_demo_models(out_dir)
    return out_dir


def load_single_file(family: Family, demo_dir: Path) -> Any:
    pipe = family.pipeline_class.from_single_file(
        str(demo_dir / family.model.checkpoint),
        config=str(demo_dir / family.model.config_dir),
        local_files_only=True,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def in_memory(family: Family) -> Any:
    pipe = family.build(family.model.seed)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def generate(pipe: Any, *, width: int = 64, height: int = 64, steps: int = 4) -> np.ndarray:
    images = pipe(
        PROMPT,
        num_inference_steps=steps,
        width=width,
        height=height,
        guidance_scale=5.0,
        generator=torch.Generator().manual_seed(7),
        output_type="np",
    ).images
    return np.asarray(images[0])


def mean_pixel_difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).mean() * 255)


@FAMILIES
def test_checkpoint_uses_the_original_key_layout(family: Family, demo_dir: Path) -> None:
    with safe_open(str(demo_dir / family.model.checkpoint), framework="pt") as checkpoint:
        keys = list(checkpoint.keys())
        dtypes = {checkpoint.get_slice(key).get_dtype() for key in keys}

    assert dtypes == {"F32"}
    for prefix in family.prefixes:
        assert any(key.startswith(prefix) for key in keys), prefix
    strays = [key for key in keys if not key.startswith(family.prefixes)]
    assert strays == []
    diffusers_names = ("down_blocks.", "up_blocks.", "mid_block.", "resnets.", "attentions.")
    assert [key for key in keys if any(name in key for name in diffusers_names)] == []


def test_sdxl_second_encoder_is_stored_as_open_clip(demo_dir: Path) -> None:
    with safe_open(str(demo_dir / SDXL.checkpoint), framework="pt") as checkpoint:
        in_proj = checkpoint.get_tensor(
            f"{SDXL_OPEN_CLIP_PREFIX}transformer.resblocks.0.attn.in_proj_weight"
        )
        projection = checkpoint.get_tensor(f"{SDXL_OPEN_CLIP_PREFIX}text_projection")
        keys = set(checkpoint.keys())

    assert in_proj.shape == (3 * SDXL_TEXT_2_HIDDEN, SDXL_TEXT_2_HIDDEN)
    assert projection.shape == (SDXL_TEXT_2_HIDDEN, SDXL_TEXT_2_PROJECTION)
    assert f"{SDXL_OPEN_CLIP_PREFIX}positional_embedding" in keys
    assert f"{UNET_PREFIX}label_emb.0.0.weight" in keys
    assert not any("q_proj" in key for key in keys if key.startswith(SDXL_OPEN_CLIP_PREFIX))


@FAMILIES
def test_diffusers_reads_back_every_tensor_exactly(family: Family, demo_dir: Path) -> None:
    original = in_memory(family)
    loaded = load_single_file(family, demo_dir)

    compared = 0
    for name, component in original.components.items():
        if not isinstance(component, torch.nn.Module):
            continue
        expected = component.state_dict()
        actual = getattr(loaded, name).state_dict()
        assert actual.keys() == expected.keys(), name
        for key, tensor in expected.items():
            assert torch.equal(actual[key], tensor), f"{name}.{key}"
            compared += 1
    assert compared > 500


@FAMILIES
def test_single_file_gives_the_same_image_as_the_pipeline_it_came_from(
    family: Family, demo_dir: Path
) -> None:
    expected = generate(in_memory(family))
    actual = generate(load_single_file(family, demo_dir))

    assert expected.shape == (64, 64, 3)
    assert expected.std() > 0.01, "a flat image would make every comparison vacuous"
    np.testing.assert_array_equal(actual, expected)


@FAMILIES
def test_lora_changes_the_image_in_proportion_to_its_strength(
    family: Family, demo_dir: Path
) -> None:
    pipe = load_single_file(family, demo_dir)
    base = generate(pipe)
    pipe.load_lora_weights(str(demo_dir / "loras" / family.model.lora), adapter_name="demo")

    pipe.set_adapters(["demo"], [1.0])
    full = generate(pipe)
    pipe.set_adapters(["demo"], [0.5])
    half = generate(pipe)

    assert mean_pixel_difference(full, base) > 5
    assert mean_pixel_difference(half, base) > 1
    assert mean_pixel_difference(full, half) > 1


def test_modes_yaml_points_at_existing_files(demo_dir: Path) -> None:
    modes_file = demo_dir / "modes.yaml"
    text = modes_file.read_text()
    document = yaml.safe_load(text)

    assert text.startswith("# Generated")
    assert Path(document["model_root"]) == demo_dir.resolve()
    model_root = Path(document["model_root"])
    lora_root = Path(document["lora_root"])
    assert document["default_mode"] in document["modes"]
    assert set(document["modes"]) == {"sdxl-general", "sdxl-portrait", "sd15-fast", "sd15-detail"}
    for name, mode in document["modes"].items():
        assert (model_root / mode["model"]).is_file(), name
        assert (model_root / mode["config"] / "model_index.json").is_file(), name
        assert mode["metadata"]["description"], name
        for lora in mode.get("loras", []):
            path = lora if isinstance(lora, str) else lora["path"]
            assert (lora_root / path).is_file(), f"{name}: {path}"
        if "superres" in mode:
            assert (model_root / mode["superres"]["model"]).is_file(), name
    assert document["modes"]["sd15-fast"]["scheduler"] == "lcm"
    assert document["modes"]["sd15-fast"]["superres"] == {
        "model": "upscalers/tiny-esrgan-x2.safetensors",
        "scale": 2,
    }


def test_every_mode_generates_at_its_defaults(demo_dir: Path) -> None:
    document = yaml.safe_load((demo_dir / "modes.yaml").read_text())
    families = {SD15.checkpoint: SD15_FAMILY, SDXL.checkpoint: SDXL_FAMILY}

    for name, mode in document["modes"].items():
        pipe = load_single_file(families[mode["model"]], demo_dir)
        loras: list[dict[str, Any]] = [
            {"path": lora, "strength": 1.0, "adapter_name": Path(lora).stem}
            if isinstance(lora, str)
            else lora
            for lora in mode.get("loras", [])
        ]
        for lora in loras:
            pipe.load_lora_weights(
                str(demo_dir / "loras" / lora["path"]), adapter_name=lora["adapter_name"]
            )
        if loras:
            pipe.set_adapters(
                [lora["adapter_name"] for lora in loras], [lora["strength"] for lora in loras]
            )
        width, height = (int(side) for side in mode["default_size"].split("x"))

        image = pipe(
            PROMPT,
            num_inference_steps=mode["default_steps"],
            width=width,
            height=height,
            guidance_scale=mode["default_guidance"],
            generator=torch.Generator().manual_seed(0),
            output_type="np",
        ).images[0]

        assert image.shape == (height, width, 3), name
        assert np.isfinite(image).all(), name


def test_factory_is_deterministic_and_idempotent(
    demo_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    second = tmp_path_factory.mktemp("demo-models-again")
    make_demo_models(second)
    make_demo_models(second)

    def files(root: Path) -> dict[Path, bytes]:
        # modes.yaml names its own folder, so only it may differ between trees.
        return {
            path.relative_to(root): path.read_bytes()
            for path in sorted(root.rglob("*"))
            if path.is_file() and path.name != "modes.yaml"
        }

    first_files, second_files = files(demo_dir), files(second)
    assert first_files.keys() == second_files.keys()
    assert len([path for path in first_files if path.suffix == ".safetensors"]) == 5
    for path, content in first_files.items():
        assert second_files[path] == content, path
    assert not list(second.rglob(".*.partial")), "staging files left behind"
