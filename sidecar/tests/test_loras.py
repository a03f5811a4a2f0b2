"""LoRAs: keys on one checkpoint share one base pipeline and switch adapters, not weights."""

import gc
import itertools
import threading
import weakref
from pathlib import Path

import pytest
import torch

from imagecompare import assert_changed, assert_same_pixels
from modelhost.demo.factory import tiny_lora_state_dict
from modelhost.demo.tiny import tiny_sd15_pipeline
from modelhost.engine.checkpoint import read_safetensors_header
from modelhost.engine.device import Device
from modelhost.engine.host import ModelHost
from modelhost.engine.pipelines import Pipeline, build_pipeline
from modelhost.engine.types import GenerateParams, LoadSource, LoadSpec, LoraSpec


def spec(demo_dir: Path, key: str, *loras: LoraSpec) -> LoadSpec:
    return LoadSpec(
        key=key,
        model_path=str(demo_dir / "tiny-sd15.safetensors"),
        config_dir=str(demo_dir / "tiny-sd15.config"),
        loras=loras,
    )


def image(host: ModelHost, key: str, seed: int = 3) -> bytes:
    params = GenerateParams(
        key=key, prompt="a red fox", negative_prompt="", width=64, height=64, steps=2,
        guidance_scale=1.0, seed=seed,
    )  # fmt: skip
    return host.generate(params, lambda _: None, threading.Event()).png


@pytest.fixture(scope="module")
def second_lora(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Another LoRA for the tiny SD1.5, from a different seed."""
    folder = tmp_path_factory.mktemp("loras")
    pipe = tiny_sd15_pipeline(15)
    layers: dict[str, torch.nn.Module | torch.Tensor] = dict(
        tiny_lora_state_dict(pipe.unet, seed=77)
    )
    type(pipe).save_lora_weights(
        save_directory=folder, unet_lora_layers=layers, weight_name="style.safetensors"
    )
    return str(folder / "style.safetensors")


@pytest.fixture
def lora(demo_dir: Path) -> str:
    return str(demo_dir / "loras" / "tiny-sd15-lora.safetensors")


@pytest.fixture
def builds() -> list[str]:
    return []


@pytest.fixture
def counting_host(builds: list[str]) -> ModelHost:
    """A host whose every base pipeline build (a read of the checkpoint) is recorded."""

    def builder(path: Path, *args: object) -> Pipeline:
        builds.append(str(path))
        return build_pipeline(path, *args)  # type: ignore[arg-type]

    return ModelHost(Device("cpu"), builder=builder)


def test_a_second_key_on_the_same_checkpoint_shares_the_resident_base(
    counting_host: ModelHost, builds: list[str], demo_dir: Path, lora: str
) -> None:
    host = counting_host
    plain = host.load(spec(demo_dir, "plain"))
    detail = host.load(spec(demo_dir, "detail", LoraSpec(lora, 0.8)))

    assert plain.source == LoadSource.DISK
    assert detail.source == LoadSource.SHARED_BASE
    assert len(builds) == 1, "the second load read the base checkpoint again"
    assert host._keys["plain"].base is host._keys["detail"].base
    # Only the adapter was added: its measured bytes are the LoRA's weights.
    lora_bytes = sum(t.numel * 4 for t in read_safetensors_header(Path(lora)).values())
    assert detail.estimated_bytes == lora_bytes
    assert detail.bytes == lora_bytes
    assert detail.bytes < plain.bytes / 10

    memory = host.memory()
    by_key = {m.key: m for m in memory.models}
    assert {m.base_key for m in memory.models} == {"plain"}
    assert by_key["plain"].bytes == plain.bytes
    assert by_key["detail"].bytes == detail.bytes


def test_adapter_name_defaults_to_the_file_stem(host: ModelHost, demo_dir: Path, lora: str) -> None:
    host.load(spec(demo_dir, "detail", LoraSpec(lora, 1.0)))
    assert host._keys["detail"].adapters == (("tiny-sd15-lora", 1.0),)


def test_alternating_keys_give_the_same_bytes_as_each_alone(
    counting_host: ModelHost, builds: list[str], demo_dir: Path, lora: str, second_lora: str
) -> None:
    variants = {
        "plain": (),
        "detail": (LoraSpec(lora, 1.0),),
        "detail-half": (LoraSpec(lora, 0.5),),
        "both": (LoraSpec(lora, 1.0), LoraSpec(second_lora, 0.7, adapter_name="style")),
    }
    alone = {}
    for key, loras in variants.items():
        single = ModelHost(Device("cpu"))
        single.load(spec(demo_dir, key, *loras))
        alone[key] = image(single, key)
    for a, b in itertools.combinations(variants, 2):
        assert_changed(alone[a], alone[b], f"{a} vs {b}: each LoRA set and strength must show")

    host = counting_host
    for key, loras in variants.items():
        host.load(spec(demo_dir, key, *loras))
    assert len(builds) == 1
    # Another instance, and adapters switched on one pipeline rather than loaded alone
    # (other peft code paths for the same weights): the same pixels, within rounding.
    for key in [*variants, *reversed(variants), "plain", "both", "detail"]:
        assert_same_pixels(image(host, key), alone[key], key)


def test_same_adapter_name_for_different_files_on_one_base(
    host: ModelHost, demo_dir: Path, lora: str, second_lora: str
) -> None:
    host.load(spec(demo_dir, "a", LoraSpec(lora, 1.0, adapter_name="look")))
    host.load(spec(demo_dir, "b", LoraSpec(second_lora, 1.0, adapter_name="look")))
    names = {host._keys[k].adapters[0][0] for k in ("a", "b")}
    assert len(names) == 2
    assert_changed(image(host, "a"), image(host, "b"))


def test_the_same_lora_at_two_strengths_is_one_adapter(
    host: ModelHost, demo_dir: Path, lora: str
) -> None:
    host.load(spec(demo_dir, "full", LoraSpec(lora, 1.0)))
    half = host.load(spec(demo_dir, "half", LoraSpec(lora, 0.5)))
    assert half.bytes == 0
    assert len(host._keys["full"].base.adapters) == 1
    assert_changed(image(host, "full"), image(host, "half"))


def test_unloading_one_key_keeps_the_base_for_the_other(
    host: ModelHost, demo_dir: Path, lora: str
) -> None:
    host.load(spec(demo_dir, "plain"))
    before_lora = image(host, "plain")
    detail = host.load(spec(demo_dir, "detail", LoraSpec(lora, 1.0)))
    assert_changed(image(host, "detail"), before_lora)
    pipe = weakref.ref(host._keys["plain"].base.pipe)

    assert host.unload("detail") == detail.bytes
    assert host.resident_keys() == ["plain"]
    assert not host._keys["plain"].base.adapters
    # The adapter is gone from the pipeline: the plain image is what it was (within
    # rounding: its layers went through peft's wrappers meanwhile).
    assert_same_pixels(image(host, "plain"), before_lora)

    host.unload("plain")
    gc.collect()
    assert pipe() is None


def test_a_lora_file_listed_twice_is_invalid(host: ModelHost, demo_dir: Path, lora: str) -> None:
    from modelhost.errors import InvalidRequestError

    with pytest.raises(InvalidRequestError, match="twice"):
        host.load(spec(demo_dir, "k", LoraSpec(lora, 1.0), LoraSpec(lora, 0.5)))


def test_a_failed_lora_leaves_the_shared_base_and_its_keys_as_they_were(
    host: ModelHost, demo_dir: Path, lora: str, tmp_path: Path
) -> None:
    from modelhost.errors import InvalidModelError

    host.load(spec(demo_dir, "plain"))
    baseline = image(host, "plain")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 32)
    with pytest.raises(InvalidModelError):
        host.load(spec(demo_dir, "broken", LoraSpec(lora, 1.0), LoraSpec(str(bad), 1.0)))
    assert host.resident_keys() == ["plain"]
    assert not host._keys["plain"].base.adapters
    assert_same_pixels(image(host, "plain"), baseline)
