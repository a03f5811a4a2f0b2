"""Samplers chosen per generation, clip skip and the prediction-type override."""

import io
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from PIL import Image

from modelhost.engine import pipelines
from modelhost.engine.device import Device
from modelhost.engine.host import ModelHost
from modelhost.engine.pipelines import build_pipeline
from modelhost.engine.schedulers import SCHEDULER_NAMES
from modelhost.engine.types import GenerateParams, LoadSpec
from modelhost.errors import InvalidRequestError
from modelhost.v1 import modelhost_pb2 as pb
from modelhost.v1 import modelhost_pb2_grpc as pb_grpc

# Pixels (0..255) closer than this count as equal: the same image through different
# schedulers' float paths must not be compared bit for bit.
TOLERANCE = 3
EXPECTED: dict[str, tuple[str, dict[str, Any]]] = {
    "euler": ("EulerDiscreteScheduler", {"use_karras_sigmas": False}),
    "euler_a": ("EulerAncestralDiscreteScheduler", {}),
    "dpmpp_2m": (
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "dpmsolver++", "use_karras_sigmas": False},
    ),
    "dpmpp_2m_karras": (
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "dpmsolver++", "use_karras_sigmas": True},
    ),
    "dpmpp_2m_sde_karras": (
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "sde-dpmsolver++", "use_karras_sigmas": True},
    ),
    "dpmpp_sde_karras": ("DPMSolverSDEScheduler", {"use_karras_sigmas": True}),
    "ddim": ("DDIMScheduler", {"clip_sample": False}),
    "pndm": ("PNDMScheduler", {"skip_prk_steps": True}),
    "lcm": ("LCMScheduler", {}),
    "unipc": ("UniPCMultistepScheduler", {}),
}


class CountingBuilder:
    def __init__(self) -> None:
        self.builds = 0

    def __call__(self, *args: Any) -> Any:
        self.builds += 1
        return build_pipeline(*args)


@pytest.fixture
def builder() -> CountingBuilder:
    return CountingBuilder()


@pytest.fixture
def counted_host(builder: CountingBuilder) -> ModelHost:
    return ModelHost(Device("cpu"), builder=builder)


@pytest.fixture
def used(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """The scheduler each generation ran with: (class name, config)."""
    record: list[tuple[str, dict[str, Any]]] = []
    run = pipelines._run

    def recording_run(pipe: Any, *args: Any) -> Any:
        record.append((type(pipe.scheduler).__name__, dict(pipe.scheduler.config)))
        return run(pipe, *args)

    monkeypatch.setattr(pipelines, "_run", recording_run)
    yield record


def sd15(demo_dir: Path, key: str = "sd15", **extra: Any) -> LoadSpec:
    return LoadSpec(
        key=key,
        model_path=str(demo_dir / "tiny-sd15.safetensors"),
        config_dir=str(demo_dir / "tiny-sd15.config"),
        **extra,
    )


def pixels(host: ModelHost, key: str = "sd15", **extra: Any) -> np.ndarray:
    fields: dict[str, Any] = dict(
        key=key, prompt="a castle on a hill", negative_prompt="", width=64, height=64,
        steps=2, guidance_scale=5.0, seed=11,
    )  # fmt: skip
    fields.update(extra)
    with warnings.catch_warnings():
        # torchsde's Brownian interval warns about float rounding at the last step.
        warnings.filterwarnings("ignore", message="Should have tb<=t1")
        image = host.generate(GenerateParams(**fields), lambda _p: None, threading.Event())
    return np.asarray(Image.open(io.BytesIO(image.png)).convert("RGB"), dtype=np.int16)


def differing_fraction(a: np.ndarray, b: np.ndarray) -> float:
    return float((np.abs(a - b) > TOLERANCE).mean())


def test_every_scheduler_generates_on_the_loaded_model_without_a_reload(
    counted_host: ModelHost,
    builder: CountingBuilder,
    demo_dir: Path,
    used: list[tuple[str, dict[str, Any]]],
) -> None:
    counted_host.load(sd15(demo_dir))
    pipe = counted_host._keys["sd15"].base.pipe
    loaded_scheduler = pipe.scheduler
    own_config = dict(loaded_scheduler.config)
    # Three steps: with two, Euler a's only noise injection is too small to see.
    own = pixels(counted_host, steps=3)
    images = {name: pixels(counted_host, scheduler=name, steps=3) for name in SCHEDULER_NAMES}

    assert set(SCHEDULER_NAMES) == set(EXPECTED)
    assert builder.builds == 1
    assert [m.key for m in counted_host.memory().models] == ["sd15"]
    assert pipe.scheduler is loaded_scheduler  # the loaded one is back after each call
    assert used[0][0] == type(loaded_scheduler).__name__
    for (cls_name, config), name in zip(used[1:], SCHEDULER_NAMES, strict=True):
        want_cls, want_config = EXPECTED[name]
        assert cls_name == want_cls, name
        assert {k: config[k] for k in want_config} == want_config, name
        # What the checkpoint's own config says about its training carries over.
        for fact in ("beta_schedule", "beta_start", "beta_end", "num_train_timesteps"):
            assert config[fact] == own_config[fact], (name, fact)
    # The tiny model's own scheduler is Euler; deterministic DDIM is the same first-order
    # solver of the same ODE on the same timesteps. Every other sampler gives another image.
    for name in ("euler", "ddim"):
        assert differing_fraction(images[name], own) < 0.01, name
    for name in SCHEDULER_NAMES:
        if name not in ("euler", "ddim"):
            assert differing_fraction(images[name], own) > 0.2, name
    assert differing_fraction(images["lcm"], images["dpmpp_2m"]) > 0.2


def test_stochastic_samplers_give_the_same_image_for_the_same_seed(
    host: ModelHost, demo_dir: Path
) -> None:
    host.load(sd15(demo_dir))
    for name in ("euler_a", "dpmpp_sde_karras", "dpmpp_2m_sde_karras", "lcm"):
        first = pixels(host, scheduler=name)
        assert differing_fraction(pixels(host, scheduler=name), first) == 0.0, name
        assert differing_fraction(pixels(host, scheduler=name, seed=12), first) > 0.2, name


def test_clip_skip_changes_the_image_and_is_bounded_by_the_text_encoder(
    host: ModelHost, demo_dir: Path
) -> None:
    host.load(sd15(demo_dir))
    plain = pixels(host)
    skipped = pixels(host, clip_skip=1)
    assert differing_fraction(skipped, plain) > 0.2
    assert differing_fraction(pixels(host, clip_skip=1), skipped) == 0.0
    # The tiny text encoder has 2 layers: skipping both leaves nothing.
    with pytest.raises(InvalidRequestError, match="at most 1 can be skipped"):
        pixels(host, clip_skip=2)


def test_the_prediction_type_override_lands_in_every_generation_scheduler_config(
    host: ModelHost, demo_dir: Path, used: list[tuple[str, dict[str, Any]]]
) -> None:
    host.load(sd15(demo_dir, key="eps"))
    host.load(sd15(demo_dir, key="v", prediction_type="v_prediction"))
    # Same checkpoint, config and dtype: one base pipeline, the override is per key.
    assert host._keys["eps"].base is host._keys["v"].base
    epsilon = pixels(host, key="eps")
    v = pixels(host, key="v")
    v_lcm = pixels(host, key="v", scheduler="lcm")
    assert [(c, cfg["prediction_type"]) for c, cfg in used] == [
        ("EulerDiscreteScheduler", "epsilon"),
        ("EulerDiscreteScheduler", "v_prediction"),
        ("LCMScheduler", "v_prediction"),
    ]
    assert host._keys["v"].base.pipe.scheduler.config.prediction_type == "epsilon"
    assert differing_fraction(v, epsilon) > 0.2
    assert differing_fraction(v_lcm, v) > 0.2


def test_an_unknown_prediction_type_is_refused_at_load(host: ModelHost, demo_dir: Path) -> None:
    with pytest.raises(InvalidRequestError, match="epsilon, v_prediction"):
        host.load(sd15(demo_dir, prediction_type="x_prediction"))
    assert host.memory().models == ()


async def test_an_unknown_scheduler_is_invalid_argument_naming_the_allowed_list(
    stub: pb_grpc.ModelHostStub, demo_dir: Path
) -> None:
    await stub.LoadModel(
        pb.LoadModelRequest(
            key="sd15",
            model_path=str(demo_dir / "tiny-sd15.safetensors"),
            config_dir=str(demo_dir / "tiny-sd15.config"),
        )
    )
    request = pb.GenerateRequest(
        key="sd15", prompt="x", width=64, height=64, steps=2, guidance_scale=1.0,
        scheduler="k_euler",
    )  # fmt: skip
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        _ = [e async for e in stub.Generate(request)]
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = raised.value.details() or ""
    assert "'k_euler'" in details
    assert ", ".join(SCHEDULER_NAMES) in details
    memory = await stub.GetMemory(pb.GetMemoryRequest())
    assert [m.key for m in memory.models] == ["sd15"]


def test_the_loaded_scheduler_is_back_after_a_generation_fails(
    host: ModelHost, demo_dir: Path
) -> None:
    host.load(sd15(demo_dir))
    pipe = host._keys["sd15"].base.pipe
    loaded = pipe.scheduler

    def fail(*_args: Any) -> None:
        raise RuntimeError("the UNet failed")

    handle = pipe.unet.register_forward_pre_hook(fail)
    try:
        with pytest.raises(RuntimeError, match="the UNet failed"):
            pixels(host, scheduler="lcm")
    finally:
        handle.remove()
    assert pipe.scheduler is loaded


def test_sdxl_takes_a_sampler_and_clip_skip_through_its_two_text_encoders(
    host: ModelHost, demo_dir: Path, used: list[tuple[str, dict[str, Any]]]
) -> None:
    host.load(
        LoadSpec(
            key="sdxl",
            model_path=str(demo_dir / "tiny-sdxl.safetensors"),
            config_dir=str(demo_dir / "tiny-sdxl.config"),
        )
    )
    plain = pixels(host, key="sdxl")
    skipped = pixels(host, key="sdxl", clip_skip=1)
    karras = pixels(host, key="sdxl", scheduler="dpmpp_2m_karras")
    assert differing_fraction(skipped, plain) > 0.2
    assert differing_fraction(karras, plain) > 0.2
    assert used[-1][0] == "DPMSolverMultistepScheduler"
    with pytest.raises(InvalidRequestError, match="at most 1 can be skipped"):
        pixels(host, key="sdxl", clip_skip=2)
