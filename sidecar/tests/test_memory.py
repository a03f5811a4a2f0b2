"""Memory: accounting, residency under a cap, LRU eviction, the RAM tier, OOM retry."""

import gc
import weakref
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
import torch

from modelhost.__main__ import memory_policy_from_env
from modelhost.engine.device import Device
from modelhost.engine.host import ModelHost
from modelhost.engine.pipelines import Pipeline, build_pipeline
from modelhost.engine.types import LoadSource, LoadSpec, MemoryPolicy
from modelhost.errors import NotLoadedError, OutOfMemoryError
from modelhost.v1 import modelhost_pb2 as pb
from modelhost.v1 import modelhost_pb2_grpc as pb_grpc
from tiny import image, size

MARGIN = 200_000  # bytes: more than the few buffers checkpoints do not store


def model(demo_dir: Path, name: str, key: str, dtype: str = "") -> LoadSpec:
    return LoadSpec(
        key=key,
        model_path=str(demo_dir / f"tiny-{name}.safetensors"),
        config_dir=str(demo_dir / f"tiny-{name}.config"),
        dtype=dtype,
    )


def counting_builder(builds: list[str], fail: Callable[[int], bool] = lambda _: False) -> object:
    """build_pipeline that records each call and raises CUDA's OOM when fail(n) says so."""

    def builder(path: Path, *args: object) -> Pipeline:
        builds.append(path.name)
        if fail(len(builds)):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 MiB")
        return build_pipeline(path, *args)  # type: ignore[arg-type]

    return builder


async def test_with_a_cap_for_one_model_loading_a_second_evicts_the_first(
    stub: pb_grpc.ModelHostStub, host: ModelHost, demo_dir: Path
) -> None:
    cap = max(size(demo_dir, "sd15"), size(demo_dir, "sdxl")) + MARGIN
    assert cap < size(demo_dir, "sd15") + size(demo_dir, "sdxl")
    host.policy = MemoryPolicy(cap_bytes=cap)

    def request(name: str) -> pb.LoadModelRequest:
        return pb.LoadModelRequest(
            key=name,
            model_path=str(demo_dir / f"tiny-{name}.safetensors"),
            config_dir=str(demo_dir / f"tiny-{name}.config"),
        )

    first = await stub.LoadModel(request("sd15"))
    assert list(first.evicted) == []
    memory = await stub.GetMemory(pb.GetMemoryRequest())
    assert memory.total_bytes == cap
    assert memory.used_bytes == first.bytes
    assert memory.available_bytes == cap - first.bytes
    assert [m.key for m in memory.models] == ["sd15"]

    second = await stub.LoadModel(request("sdxl"))
    assert second.source == pb.LOAD_SOURCE_DISK
    assert list(second.evicted) == ["sd15"]
    assert list(second.evicted_to_ram) == []
    assert list(second.evicted_on_oom) == []  # made room by plan, not in a retry
    memory = await stub.GetMemory(pb.GetMemoryRequest())
    assert [m.key for m in memory.models] == ["sdxl"]
    assert memory.used_bytes == second.bytes

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in stub.Generate(pb.GenerateRequest(key="sd15", width=64, height=64, steps=1)):
            pass
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_several_models_stay_resident_and_the_least_recently_used_goes_first(
    host: ModelHost, demo_dir: Path
) -> None:
    a = size(demo_dir, "sd15")
    b = size(demo_dir, "sdxl", 2)
    c = size(demo_dir, "sd15", 2)
    host.policy = MemoryPolicy(cap_bytes=a + b + MARGIN)
    assert c <= b + MARGIN
    host.load(model(demo_dir, "sd15", "a"))
    host.load(model(demo_dir, "sdxl", "b", dtype="bfloat16"))
    assert host.resident_keys() == ["a", "b"]
    image(host, "a")  # a is now more recently used than b
    evicted_pipe = weakref.ref(host._keys["b"].base.pipe)

    loaded = host.load(model(demo_dir, "sd15", "c", dtype="bfloat16"))
    assert loaded.evicted == ("b",)
    assert sorted(host.resident_keys()) == ["a", "c"]
    gc.collect()
    assert evicted_pipe() is None, "an evicted pipeline must really be freed"


def test_a_load_that_can_never_fit_is_refused_before_evicting_anything(
    host: ModelHost, demo_dir: Path
) -> None:
    small = size(demo_dir, "sd15", 2)
    host.policy = MemoryPolicy(cap_bytes=small + MARGIN)
    host.load(model(demo_dir, "sd15", "small", dtype="bfloat16"))
    with pytest.raises(OutOfMemoryError, match="bytes needed"):
        host.load(model(demo_dir, "sdxl", "big"))
    assert host.resident_keys() == ["small"]


def test_a_generating_pipeline_is_never_evicted(host: ModelHost, demo_dir: Path) -> None:
    host.policy = MemoryPolicy(cap_bytes=size(demo_dir, "sdxl") + MARGIN)
    host.load(model(demo_dir, "sd15", "busy"))
    # The state a generation puts its base in while it runs (the device lock keeps
    # a real load from running alongside; this checks the eviction rule itself).
    host._keys["busy"].base.busy += 1
    with pytest.raises(OutOfMemoryError):
        host.load(model(demo_dir, "sdxl", "other"))
    assert host.resident_keys() == ["busy"]
    host._keys["busy"].base.busy -= 1
    assert host.load(model(demo_dir, "sdxl", "other")).evicted == ("busy",)


def test_the_reserve_is_kept_free(host: ModelHost, demo_dir: Path) -> None:
    cap = 3 * size(demo_dir, "sd15")
    host.policy = MemoryPolicy(cap_bytes=cap, reserve_bytes=cap - size(demo_dir, "sd15") // 2)
    memory = host.memory()
    assert memory.reserve_bytes == host.policy.reserve_bytes
    assert memory.available_bytes == cap - host.policy.reserve_bytes
    with pytest.raises(OutOfMemoryError):
        host.load(model(demo_dir, "sd15", "k"))


def test_without_settings_there_are_no_artificial_limits(host: ModelHost) -> None:
    memory = host.memory()
    real = host.device.memory()
    assert memory.total_bytes == real.total_bytes
    assert memory.reserve_bytes == 0
    assert memory.ram_tier_capacity_bytes == 0
    assert not host.policy.strict


def test_the_ram_tier_parks_an_evicted_model_and_brings_it_back(
    demo_dir: Path,
) -> None:
    builds: list[str] = []
    sd15, sdxl = size(demo_dir, "sd15"), size(demo_dir, "sdxl")
    host = ModelHost(
        Device("cpu"),
        policy=MemoryPolicy(cap_bytes=max(sd15, sdxl) + MARGIN, ram_cache_bytes=sdxl + MARGIN),
        builder=counting_builder(builds),  # type: ignore[arg-type]
    )
    host.load(model(demo_dir, "sd15", "a"))
    before = image(host, "a")
    second = host.load(model(demo_dir, "sdxl", "b"))
    assert second.evicted == ("a",)
    assert second.evicted_to_ram == ("a",)
    memory = host.memory()
    tiers = {m.key: (m.tier, m.in_ram_tier) for m in memory.models}
    assert tiers == {"a": ("ram", True), "b": ("device", False)}
    assert memory.ram_tier_bytes == next(m.bytes for m in memory.models if m.key == "a")
    assert memory.used_bytes == second.bytes

    again = host.load(model(demo_dir, "sd15", "a"))
    assert again.source == LoadSource.RAM
    assert again.evicted_to_ram == ("b",)
    assert builds == ["tiny-sd15.safetensors", "tiny-sdxl.safetensors"], "read from disk again"
    # Exact: the same weights back on the same device (the CPU), one process, one path.
    assert image(host, "a") == before
    # A generation on a parked key brings it back by itself.
    image(host, "b")
    assert {m.key for m in host.memory().models if m.in_ram_tier} == {"a"}


def test_a_full_ram_tier_drops_its_least_recently_used(demo_dir: Path) -> None:
    sd15 = size(demo_dir, "sd15")
    # The device holds the fp32 SD1.5, or one bf16 model at a time; the RAM tier one
    # fp32 SD1.5, or the bf16 SDXL, but not both.
    host = ModelHost(
        Device("cpu"),
        policy=MemoryPolicy(cap_bytes=sd15 + 2 * MARGIN, ram_cache_bytes=sd15 + MARGIN),
    )
    host.load(model(demo_dir, "sd15", "a"))
    parked_pipe = weakref.ref(host._keys["a"].base.pipe)
    assert host.load(model(demo_dir, "sdxl", "b", dtype="bfloat16")).evicted_to_ram == ("a",)
    # b goes to the RAM tier, which has to drop a to take it.
    assert host.load(model(demo_dir, "sd15", "c", dtype="bfloat16")).evicted_to_ram == ("b",)
    assert sorted(host.resident_keys()) == ["b", "c"]
    gc.collect()
    assert parked_pipe() is None, "a pipeline dropped from the RAM tier must really be freed"
    with pytest.raises(NotLoadedError):
        image(host, "a")


def test_out_of_memory_during_a_load_evicts_every_idle_model_and_retries_once(
    demo_dir: Path,
) -> None:
    builds: list[str] = []
    host = ModelHost(
        Device("cpu"),
        builder=counting_builder(builds, fail=lambda n: n == 3),  # type: ignore[arg-type]
    )
    host.load(model(demo_dir, "sd15", "a"))
    host.load(model(demo_dir, "sd15", "b", dtype="bfloat16"))
    loaded = host.load(model(demo_dir, "sdxl", "c"))
    assert len(builds) == 4
    assert set(loaded.evicted) == {"a", "b"}
    assert set(loaded.evicted_on_oom) == {"a", "b"}
    assert host.resident_keys() == ["c"]
    # The next load starts afresh: nothing of it was evicted, by plan or in a retry.
    again = host.load(model(demo_dir, "sdxl", "d", dtype="bfloat16"))
    assert (again.evicted, again.evicted_on_oom) == ((), ())


async def test_out_of_memory_after_the_retry_is_resource_exhausted(
    demo_dir: Path, tmp_path: Path, executor: object
) -> None:
    from modelhost.servicer import ModelHostServicer

    builds: list[str] = []
    host = ModelHost(
        Device("cpu"),
        builder=counting_builder(builds, fail=lambda n: n > 1),  # type: ignore[arg-type]
    )
    host.load(model(demo_dir, "sd15", "idle"))
    server = grpc.aio.server()
    pb_grpc.add_ModelHostServicer_to_server(ModelHostServicer(host, executor), server)  # type: ignore[arg-type]
    address = f"unix:{tmp_path}/oom.sock"
    server.add_insecure_port(address)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            stub = pb_grpc.ModelHostStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.LoadModel(
                    pb.LoadModelRequest(
                        key="xl",
                        model_path=str(demo_dir / "tiny-sdxl.safetensors"),
                        config_dir=str(demo_dir / "tiny-sdxl.config"),
                    )
                )
    finally:
        await server.stop(None)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "out of memory" in (caught.value.details() or "")
    assert len(builds) == 3  # the first load, then the failed attempt and its one retry
    assert host.resident_keys() == []


def test_memory_settings_come_from_the_environment() -> None:
    assert memory_policy_from_env({}) == MemoryPolicy()
    policy = memory_policy_from_env(
        {"MEMORY_CAP_BYTES": "8000000000", "MEMORY_RESERVE_BYTES": "1000", "RAM_CACHE_BYTES": "5"}
    )
    assert policy == MemoryPolicy(cap_bytes=8_000_000_000, reserve_bytes=1000, ram_cache_bytes=5)
    with pytest.raises(SystemExit, match="MEMORY_CAP_BYTES"):
        memory_policy_from_env({"MEMORY_CAP_BYTES": "8GB"})
