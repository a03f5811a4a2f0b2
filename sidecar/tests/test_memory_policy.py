"""Memory policy on the model host: pinned keys survive make-room and the out-of-memory
retry, a load that fits only by evicting them is refused naming them, and the RAM tier
moves weights through the device's own host/device copies."""

import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

import grpc
import pytest
import torch

from modelhost.engine.checkpoint import inspect_single_file
from modelhost.engine.device import Device
from modelhost.engine.host import ModelHost
from modelhost.engine.pipelines import Pipeline, build_pipeline
from modelhost.engine.types import LoadSource, LoadSpec, MemoryPolicy
from modelhost.errors import PinnedModelsError
from modelhost.v1 import modelhost_pb2 as pb
from modelhost.v1 import modelhost_pb2_grpc as pb_grpc

MARGIN = 200_000  # bytes: more than the few buffers checkpoints do not store


@pytest.fixture
def copies(demo_dir: Path, tmp_path: Path) -> dict[str, Path]:
    """Three copies of the tiny SD1.5 file: three bases of one size."""
    files = {}
    for name in ("a", "b", "c"):
        files[name] = tmp_path / f"sd15-{name}.safetensors"
        shutil.copy(demo_dir / "tiny-sd15.safetensors", files[name])
    return files


def spec(demo_dir: Path, files: dict[str, Path], key: str, pinned: bool = False) -> LoadSpec:
    return LoadSpec(
        key=key,
        model_path=str(files[key]),
        config_dir=str(demo_dir / "tiny-sd15.config"),
        pinned=pinned,
    )


def room_for_two(demo_dir: Path) -> MemoryPolicy:
    one = inspect_single_file(demo_dir / "tiny-sd15.safetensors").device_bytes(4)
    return MemoryPolicy(cap_bytes=2 * one + MARGIN)


def failing_builder(fail: Callable[[int], bool]) -> object:
    """build_pipeline that raises CUDA's out-of-memory error on the builds fail(n) names."""
    builds = [0]

    def builder(path: Path, *args: object) -> Pipeline:
        builds[0] += 1
        if fail(builds[0]):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 MiB")
        return build_pipeline(path, *args)  # type: ignore[arg-type]

    return builder


def test_make_room_evicts_around_a_pinned_model(demo_dir: Path, copies: dict[str, Path]) -> None:
    host = ModelHost(Device("cpu"), policy=room_for_two(demo_dir))
    host.load(spec(demo_dir, copies, "a", pinned=True))
    host.load(spec(demo_dir, copies, "b"))
    # a is the least recently used, but pinned: b goes.
    loaded = host.load(spec(demo_dir, copies, "c"))
    assert loaded.evicted == ("b",)
    assert sorted(host.resident_keys()) == ["a", "c"]


def test_a_load_that_fits_only_by_evicting_pinned_models_names_them(
    demo_dir: Path, copies: dict[str, Path]
) -> None:
    host = ModelHost(Device("cpu"), policy=room_for_two(demo_dir))
    host.load(spec(demo_dir, copies, "a", pinned=True))
    host.load(spec(demo_dir, copies, "b", pinned=True))
    with pytest.raises(PinnedModelsError) as caught:
        host.load(spec(demo_dir, copies, "c"))
    assert caught.value.keys == ["a", "b"]
    assert "a, b" in str(caught.value)
    assert sorted(host.resident_keys()) == ["a", "b"], "nothing was evicted"


def test_a_later_load_of_the_key_unpins_it(demo_dir: Path, copies: dict[str, Path]) -> None:
    host = ModelHost(Device("cpu"), policy=room_for_two(demo_dir))
    host.load(spec(demo_dir, copies, "a", pinned=True))
    host.load(spec(demo_dir, copies, "b", pinned=True))
    again = host.load(spec(demo_dir, copies, "a", pinned=False))
    assert again.source == LoadSource.RESIDENT, "the pin is policy, not a new definition"
    assert host.load(spec(demo_dir, copies, "c")).evicted == ("a",)


def test_the_out_of_memory_retry_spares_pinned_models(
    demo_dir: Path, copies: dict[str, Path]
) -> None:
    host = ModelHost(Device("cpu"), builder=failing_builder(lambda n: n == 3))  # type: ignore[arg-type]
    host.load(spec(demo_dir, copies, "a", pinned=True))
    host.load(spec(demo_dir, copies, "b"))
    assert host.load(spec(demo_dir, copies, "c")).evicted == ("b",)
    assert sorted(host.resident_keys()) == ["a", "c"]


def test_out_of_memory_after_the_retry_with_pinned_models_names_them(
    demo_dir: Path, copies: dict[str, Path]
) -> None:
    host = ModelHost(Device("cpu"), builder=failing_builder(lambda n: n >= 2))  # type: ignore[arg-type]
    host.load(spec(demo_dir, copies, "a", pinned=True))
    with pytest.raises(PinnedModelsError) as caught:
        host.load(spec(demo_dir, copies, "b"))
    assert caught.value.keys == ["a"]
    assert host.resident_keys() == ["a"]


async def test_pinned_travels_in_the_load_request_and_its_refusal_is_failed_precondition(
    stub: pb_grpc.ModelHostStub, host: ModelHost, demo_dir: Path, copies: dict[str, Path]
) -> None:
    host.policy = room_for_two(demo_dir)

    def request(key: str, pinned: bool) -> pb.LoadModelRequest:
        return pb.LoadModelRequest(
            key=key,
            model_path=str(copies[key]),
            config_dir=str(demo_dir / "tiny-sd15.config"),
            pinned=pinned,
        )

    await stub.LoadModel(request("a", True))
    await stub.LoadModel(request("b", True))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.LoadModel(request("c", False))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "pinned model(s): a, b" in (caught.value.details() or "")


class RecordingDevice(Device):
    """The CPU, noting which weights go through the RAM tier's copies."""

    def __init__(self) -> None:
        super().__init__("cpu")
        self.moves: list[tuple[str, int]] = []

    def to_host(self, modules: Iterable[torch.nn.Module]) -> None:
        modules = list(modules)
        self.moves.append(("host", sum(p.numel() for m in modules for p in m.parameters())))
        super().to_host(modules)

    def to_device(self, modules: Iterable[torch.nn.Module]) -> None:
        modules = list(modules)
        self.moves.append(("device", sum(p.numel() for m in modules for p in m.parameters())))
        super().to_device(modules)


def test_the_ram_tier_moves_every_weight_through_the_device(
    demo_dir: Path, copies: dict[str, Path]
) -> None:
    device = RecordingDevice()
    one = inspect_single_file(demo_dir / "tiny-sd15.safetensors").device_bytes(4)
    host = ModelHost(device, policy=MemoryPolicy(cap_bytes=one + MARGIN, ram_cache_bytes=2 * one))
    host.load(spec(demo_dir, copies, "a"))
    pipe = host._keys["a"].base.pipe
    parameters = sum(
        p.numel()
        for c in pipe.components.values()
        if isinstance(c, torch.nn.Module)
        for p in c.parameters()
    )
    assert host.load(spec(demo_dir, copies, "b")).evicted_to_ram == ("a",)
    assert host.load(spec(demo_dir, copies, "a")).source == LoadSource.RAM
    # a parked, b parked to make room for a's return, a moved back: all of a's weights.
    assert device.moves == [("host", parameters), ("host", parameters), ("device", parameters)]
    assert not device.pins_host_memory, "no page-locked memory without CUDA"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="page-locked memory needs CUDA")
def test_on_cuda_parked_weights_are_page_locked_and_come_back() -> None:
    device = Device("cuda:0")
    module = torch.nn.Linear(64, 64).to(device.torch_device)
    before = module.weight.detach().clone()
    device.to_host([module])
    assert module.weight.device.type == "cpu" and module.weight.is_pinned()
    device.to_device([module])
    assert module.weight.device == device.torch_device
    assert torch.equal(module.weight, before)


def test_offload_parks_the_key_in_the_ram_tier_when_it_fits(
    demo_dir: Path, copies: dict[str, Path]
) -> None:
    one = inspect_single_file(demo_dir / "tiny-sd15.safetensors").device_bytes(4)
    host = ModelHost(Device("cpu"), policy=MemoryPolicy(ram_cache_bytes=one + MARGIN))
    host.load(spec(demo_dir, copies, "a"))
    freed, parked = host.offload("a")
    assert parked and freed > 0
    assert [(m.key, m.in_ram_tier) for m in host.memory().models] == [("a", True)]
    assert host.load(spec(demo_dir, copies, "a")).source == LoadSource.RAM
    # Without room in the tier it is unloaded.
    host.policy = MemoryPolicy()
    freed, parked = host.offload("a")
    assert not parked and freed > 0
    assert host.resident_keys() == []


async def test_unload_to_the_ram_tier_travels_in_the_request(
    stub: pb_grpc.ModelHostStub, host: ModelHost, demo_dir: Path, copies: dict[str, Path]
) -> None:
    host.policy = MemoryPolicy(ram_cache_bytes=2**30)
    await stub.LoadModel(
        pb.LoadModelRequest(
            key="a", model_path=str(copies["a"]), config_dir=str(demo_dir / "tiny-sd15.config")
        )
    )
    reply = await stub.UnloadModel(pb.UnloadModelRequest(key="a", to_ram_tier=True))
    assert reply.parked and reply.freed_bytes > 0
    assert host.resident_keys() == ["a"]
    dropped = await stub.UnloadModel(pb.UnloadModelRequest(key="a"))
    assert not dropped.parked and dropped.freed_bytes > 0
    assert host.resident_keys() == []
