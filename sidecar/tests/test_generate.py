"""Generation parameters and super-resolution, through the gRPC surface."""

import io
import itertools
from pathlib import Path

import grpc
import pytest
from PIL import Image

from imagecompare import assert_changed
from modelhost.engine.checkpoint import read_safetensors_header
from modelhost.v1 import modelhost_pb2 as pb
from modelhost.v1 import modelhost_pb2_grpc as pb_grpc

Stub = pb_grpc.ModelHostStub
UPSCALER = "upscalers/tiny-esrgan-x2.safetensors"


def load_request(demo_dir: Path, key: str = "sd15", **extra: object) -> pb.LoadModelRequest:
    return pb.LoadModelRequest(
        key=key,
        model_path=str(demo_dir / "tiny-sd15.safetensors"),
        config_dir=str(demo_dir / "tiny-sd15.config"),
        **extra,  # type: ignore[arg-type]
    )


async def image(stub: Stub, key: str = "sd15", **extra: object) -> pb.GeneratedImage:
    fields: dict[str, object] = dict(
        key=key, prompt="a castle on a hill", width=64, height=64, steps=2,
        guidance_scale=5.0, seed=11,
    )  # fmt: skip
    fields.update(extra)
    events = [e async for e in stub.Generate(pb.GenerateRequest(**fields))]  # type: ignore[arg-type]
    return events[-1].image


async def test_the_negative_prompt_changes_the_image_under_guidance(
    stub: Stub, demo_dir: Path
) -> None:
    await stub.LoadModel(load_request(demo_dir))
    plain = (await image(stub)).png
    negative = (await image(stub, negative_prompt="blurry, dark")).png
    assert_changed(plain, negative)
    # Exact: the same request twice on one host runs the same code in one process.
    assert (await image(stub, negative_prompt="blurry, dark")).png == negative
    # Without classifier-free guidance (scale 1) diffusers never encodes it: the same
    # computation as without one, so the same bytes.
    unguided = (await image(stub, guidance_scale=1.0)).png
    assert (await image(stub, guidance_scale=1.0, negative_prompt="blurry")).png == unguided


async def test_the_guidance_scale_changes_the_image(stub: Stub, demo_dir: Path) -> None:
    await stub.LoadModel(load_request(demo_dir))
    images = {g: (await image(stub, guidance_scale=g)).png for g in (1.0, 3.0, 7.5)}
    for a, b in itertools.combinations(images, 2):
        assert_changed(images[a], images[b], f"guidance {a} vs {b}")


async def test_superres_upscales_the_png_and_says_so(stub: Stub, demo_dir: Path) -> None:
    upscaler = str(demo_dir / UPSCALER)
    plain = await stub.LoadModel(load_request(demo_dir, key="plain"))
    loaded = await stub.LoadModel(load_request(demo_dir, superres_model=upscaler))
    # The key accounts for its upscaler's weights on top of the shared base.
    upscaler_bytes = sum(t.numel * 4 for t in read_safetensors_header(Path(upscaler)).values())
    assert loaded.source == pb.LOAD_SOURCE_SHARED_BASE
    assert loaded.bytes == upscaler_bytes
    assert plain.bytes > upscaler_bytes

    upscaled = await image(stub, width=64, height=48, superres=True)
    assert upscaled.superres_applied
    assert (upscaled.width, upscaled.height) == (128, 96)
    decoded = Image.open(io.BytesIO(upscaled.png))
    assert decoded.format == "PNG"
    assert decoded.size == (128, 96)

    not_asked = await image(stub, width=64, height=48)
    assert not not_asked.superres_applied
    assert (not_asked.width, not_asked.height) == (64, 48)
    assert Image.open(io.BytesIO(not_asked.png)).size == (64, 48)
    # Exact: the same request twice on one host.
    assert (await image(stub, width=64, height=48, superres=True)).png == upscaled.png


async def test_superres_scale_other_than_the_models_resizes_its_output(
    stub: Stub, demo_dir: Path
) -> None:
    upscaler = str(demo_dir / UPSCALER)
    await stub.LoadModel(load_request(demo_dir, superres_model=upscaler, superres_scale=3))
    upscaled = await image(stub, superres=True)
    assert (upscaled.width, upscaled.height) == (192, 192)
    assert Image.open(io.BytesIO(upscaled.png)).size == (192, 192)


async def expect_invalid(call: object) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    return caught.value.details() or ""


async def test_superres_without_an_upscaler_is_invalid_argument(stub: Stub, demo_dir: Path) -> None:
    await stub.LoadModel(load_request(demo_dir))
    details = await expect_invalid(image(stub, superres=True))
    assert "superres_model" in details
    assert "'sd15'" in details


async def test_an_upscaler_that_is_not_one_is_invalid_argument(stub: Stub, demo_dir: Path) -> None:
    not_an_upscaler = str(demo_dir / "loras" / "tiny-sd15-lora.safetensors")
    details = await expect_invalid(
        stub.LoadModel(load_request(demo_dir, superres_model=not_an_upscaler))
    )
    assert "upscaler" in details
    assert not (await stub.GetMemory(pb.GetMemoryRequest())).models


async def test_a_missing_upscaler_is_not_found(stub: Stub, demo_dir: Path, tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.safetensors")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.LoadModel(load_request(demo_dir, superres_model=missing))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert missing in (caught.value.details() or "")
