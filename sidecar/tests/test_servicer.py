"""The model host through its real gRPC surface, on the tiny demo models, on CPU."""

import asyncio
import gc
import io
import itertools
import pickle
import weakref
from pathlib import Path

import grpc
import pytest
from PIL import Image

from imagecompare import assert_changed
from modelhost.engine.host import ModelHost
from modelhost.v1 import modelhost_pb2 as pb
from modelhost.v1 import modelhost_pb2_grpc as pb_grpc

Stub = pb_grpc.ModelHostStub


def sd15_request(demo_dir: Path, key: str = "sd15", **extra: object) -> pb.LoadModelRequest:
    return pb.LoadModelRequest(
        key=key,
        model_path=str(demo_dir / "tiny-sd15.safetensors"),
        config_dir=str(demo_dir / "tiny-sd15.config"),
        **extra,  # type: ignore[arg-type]
    )


def generate_request(key: str = "sd15", seed: int = 42, **extra: object) -> pb.GenerateRequest:
    fields: dict[str, object] = dict(
        key=key, prompt="a beautiful landscape", width=64, height=64, steps=3,
        guidance_scale=1.0, seed=seed,
    )  # fmt: skip
    fields.update(extra)
    return pb.GenerateRequest(**fields)  # type: ignore[arg-type]


async def generate(stub: Stub, request: pb.GenerateRequest) -> list[pb.GenerateEvent]:
    return [event async for event in stub.Generate(request)]


async def test_load_reports_architecture_bytes_and_source(stub: Stub, demo_dir: Path) -> None:
    reply = await stub.LoadModel(sd15_request(demo_dir))
    assert reply.key == "sd15"
    assert reply.architecture == "sd15"
    assert reply.device == "cpu"
    assert reply.source == pb.LOAD_SOURCE_DISK
    # fp32 on CPU: the measured bytes are the header's tensor bytes plus a few
    # non-persistent buffers (position ids) that checkpoints do not store.
    assert reply.estimated_bytes > 0
    assert 0 <= reply.bytes - reply.estimated_bytes < reply.estimated_bytes / 1000
    again = await stub.LoadModel(sd15_request(demo_dir))
    assert again.source == pb.LOAD_SOURCE_RESIDENT
    assert again.bytes == reply.bytes


async def test_sdxl_loads_from_its_single_file(stub: Stub, demo_dir: Path) -> None:
    reply = await stub.LoadModel(
        pb.LoadModelRequest(
            key="xl",
            model_path=str(demo_dir / "tiny-sdxl.safetensors"),
            config_dir=str(demo_dir / "tiny-sdxl.config"),
        )
    )
    assert reply.architecture == "sdxl-base"
    events = await generate(stub, generate_request("xl", width=64, height=64))
    image = Image.open(io.BytesIO(events[-1].image.png))
    assert image.size == (64, 64)


async def test_generate_streams_progress_then_a_png_of_the_asked_size(
    stub: Stub, demo_dir: Path
) -> None:
    await stub.LoadModel(sd15_request(demo_dir))
    events = await generate(stub, generate_request(width=64, height=48, steps=3))
    assert [e.WhichOneof("event") for e in events] == ["progress"] * 3 + ["image"]
    assert [(e.progress.step, e.progress.total_steps) for e in events[:3]] == [
        (1, 3),
        (2, 3),
        (3, 3),
    ]
    image = events[-1].image
    assert (image.width, image.height, image.seed) == (64, 48, 42)
    assert not image.superres_applied
    decoded = Image.open(io.BytesIO(image.png))
    assert decoded.format == "PNG"
    assert decoded.size == (64, 48)


async def test_same_inputs_give_the_same_bytes_and_the_seed_matters(
    stub: Stub, demo_dir: Path
) -> None:
    await stub.LoadModel(sd15_request(demo_dir))
    first = (await generate(stub, generate_request(seed=7)))[-1].image.png
    second = (await generate(stub, generate_request(seed=7)))[-1].image.png
    other_seed = (await generate(stub, generate_request(seed=8)))[-1].image.png
    other_prompt = (await generate(stub, generate_request(seed=7, prompt="a city")))[-1].image.png
    # Exact: the same request twice on one host runs the same code in one process.
    assert first == second
    assert_changed(first, other_seed, "another seed")
    assert_changed(first, other_prompt, "another prompt")


async def test_a_lora_and_its_strength_change_the_image(stub: Stub, demo_dir: Path) -> None:
    lora = str(demo_dir / "loras" / "tiny-sd15-lora.safetensors")
    await stub.LoadModel(sd15_request(demo_dir, key="plain"))
    await stub.LoadModel(
        sd15_request(demo_dir, key="full", loras=[pb.Lora(path=lora, strength=1.0)])
    )
    await stub.LoadModel(
        sd15_request(demo_dir, key="half", loras=[pb.Lora(path=lora, strength=0.5)])
    )
    images = {
        k: (await generate(stub, generate_request(k)))[-1].image.png
        for k in ("plain", "full", "half")
    }
    for a, b in itertools.combinations(images, 2):
        assert_changed(images[a], images[b], f"{a} vs {b}")


async def test_memory_lists_resident_models(stub: Stub, demo_dir: Path) -> None:
    lora = str(demo_dir / "loras" / "tiny-sd15-lora.safetensors")
    loaded = await stub.LoadModel(
        sd15_request(demo_dir, loras=[pb.Lora(path=lora, strength=0.8, adapter_name="detail")])
    )
    stats = await stub.GetMemory(pb.GetMemoryRequest())
    assert stats.device == "cpu"
    assert stats.total_bytes > stats.available_bytes > 0
    assert stats.used_bytes == stats.total_bytes - stats.available_bytes
    [model] = stats.models
    assert model.key == "sd15"
    assert model.bytes == loaded.bytes
    assert model.tier == "device"
    assert model.architecture == "sd15"
    assert model.model_path.endswith("tiny-sd15.safetensors")
    assert [(x.path, round(x.strength, 3), x.adapter_name) for x in model.loras] == [
        (lora, 0.8, "detail")
    ]
    assert model.last_used_unix_ms > 0


async def test_unload_drops_every_reference(stub: Stub, host: ModelHost, demo_dir: Path) -> None:
    loaded = await stub.LoadModel(sd15_request(demo_dir))
    await generate(stub, generate_request())
    pipe_ref = weakref.ref(host._keys["sd15"].base.pipe)
    reply = await stub.UnloadModel(pb.UnloadModelRequest(key="sd15"))
    assert reply.freed_bytes == loaded.bytes
    gc.collect()
    assert pipe_ref() is None
    assert (await stub.GetMemory(pb.GetMemoryRequest())).models == []


async def test_cancelling_a_generation_stops_it_and_keeps_the_host_serving(
    stub: Stub, demo_dir: Path
) -> None:
    await stub.LoadModel(sd15_request(demo_dir))
    call = stub.Generate(generate_request(steps=50))
    first = await call.read()
    assert first.WhichOneof("event") == "progress"
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call.read()
    # The device thread is free again: a new generation completes.
    events = await generate(stub, generate_request(steps=2))
    assert events[-1].WhichOneof("event") == "image"


async def expect_error(call: object, code: grpc.StatusCode) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    assert caught.value.code() == code
    details = caught.value.details() or ""
    assert "Traceback" not in details
    return details


async def test_a_missing_model_is_not_found_with_its_path(stub: Stub, tmp_path: Path) -> None:
    path = str(tmp_path / "missing.safetensors")
    details = await expect_error(
        stub.LoadModel(pb.LoadModelRequest(key="k", model_path=path)), grpc.StatusCode.NOT_FOUND
    )
    assert path in details


async def test_a_missing_lora_is_not_found(stub: Stub, demo_dir: Path) -> None:
    lora = str(demo_dir / "loras" / "nope.safetensors")
    details = await expect_error(
        stub.LoadModel(sd15_request(demo_dir, loras=[pb.Lora(path=lora, strength=1)])),
        grpc.StatusCode.NOT_FOUND,
    )
    assert lora in details
    # A failed load leaves nothing resident.
    assert (await stub.GetMemory(pb.GetMemoryRequest())).models == []


async def test_a_corrupt_model_is_invalid_argument(stub: Stub, tmp_path: Path) -> None:
    path = tmp_path / "corrupt.safetensors"
    path.write_bytes(b"\x00" * 64)
    details = await expect_error(
        stub.LoadModel(pb.LoadModelRequest(key="k", model_path=str(path))),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert "not a safetensors file" in details


async def test_a_pickle_checkpoint_is_refused(stub: Stub, tmp_path: Path) -> None:
    path = tmp_path / "model.ckpt"
    path.write_bytes(pickle.dumps({"state_dict": {}}))
    details = await expect_error(
        stub.LoadModel(pb.LoadModelRequest(key="k", model_path=str(path))),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert "--allow-pickle" in details


async def test_a_bad_dtype_is_invalid_argument(stub: Stub, demo_dir: Path) -> None:
    details = await expect_error(
        stub.LoadModel(sd15_request(demo_dir, dtype="float8")), grpc.StatusCode.INVALID_ARGUMENT
    )
    assert "dtype" in details


async def test_generating_on_a_model_that_is_not_loaded_is_failed_precondition(
    stub: Stub,
) -> None:
    details = await expect_error(
        generate(stub, generate_request("ghost")), grpc.StatusCode.FAILED_PRECONDITION
    )
    assert "ghost" in details


async def test_a_size_that_is_not_a_multiple_of_8_is_invalid(stub: Stub, demo_dir: Path) -> None:
    await stub.LoadModel(sd15_request(demo_dir))
    await expect_error(generate(stub, generate_request(width=60)), grpc.StatusCode.INVALID_ARGUMENT)


async def test_unloading_an_unknown_key_is_failed_precondition(stub: Stub) -> None:
    await expect_error(
        stub.UnloadModel(pb.UnloadModelRequest(key="ghost")), grpc.StatusCode.FAILED_PRECONDITION
    )


async def test_an_unexpected_error_is_internal_without_its_details(
    stub: Stub, host: ModelHost, demo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*_: object) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(host, "load", explode)
    details = await expect_error(stub.LoadModel(sd15_request(demo_dir)), grpc.StatusCode.INTERNAL)
    assert details == "internal error: RuntimeError"
