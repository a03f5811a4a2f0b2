"""The model inventory: what ListModels lists, and that it follows the disk.

How fast it follows is measured by bench/inventory-latency.py (docs/BENCHMARKS.md), not
asserted here: a busy machine must not fail a test of behaviour."""

import asyncio
import json
import math
import os
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pytest

from modelhost.engine.device import Device
from modelhost.engine.host import ModelHost
from modelhost.engine.inventory import Inventory, ModelFileInfo
from modelhost.servicer import ModelHostServicer
from modelhost.v1 import modelhost_pb2 as pb
from modelhost.v1 import modelhost_pb2_grpc as pb_grpc

# Far beyond the settle and poll periods (well under a second): only a change that is
# never seen runs into it.
DEADLINE_SECONDS = 60.0


def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Polls until condition() holds; fails naming `what` when it never does."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not seen within {DEADLINE_SECONDS:.0f} s")
        time.sleep(0.01)


async def wait_until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not seen within {DEADLINE_SECONDS:.0f} s")
        await asyncio.sleep(0.01)


def by_name(inventory: Inventory) -> dict[str, ModelFileInfo]:
    return {Path(f.path).name: f for f in inventory.files()}


@pytest.fixture
def root(demo_dir: Path, tmp_path: Path) -> Path:
    """A model root holding a copy of the demo tree (a few MB)."""
    copy = tmp_path / "models"
    shutil.copytree(demo_dir, copy)
    return copy


@pytest.fixture(params=[False, True], ids=["inotify", "polling"])
def inventory(root: Path, request: pytest.FixtureRequest) -> Iterator[Inventory]:
    watched = Inventory([root], polling=request.param)
    watched.start()
    yield watched
    watched.stop()


def copy_in_by_rename(source: Path, target: Path) -> None:
    """What copy tools and editors do: write a temporary name, then rename it."""
    staging = target.with_name(f".{target.name}.part")
    shutil.copyfile(source, staging)
    os.replace(staging, target)


def test_lists_every_model_with_its_architecture(root: Path) -> None:
    (root / "notes.txt").write_text("not a model")
    (root / ".hidden.safetensors").write_bytes(b"staging")
    (root / "junk.safetensors").write_bytes(b"\x00" * 64)
    (root / "old.ckpt").write_bytes(b"not unpickled by the inventory")
    inventory = Inventory([root])
    inventory.start()
    try:
        files = by_name(inventory)
    finally:
        inventory.stop()
    assert set(files) == {
        "tiny-sd15.safetensors", "tiny-sdxl.safetensors", "tiny-sd15.config",
        "tiny-sdxl.config", "tiny-sd15-lora.safetensors", "tiny-sdxl-lora.safetensors",
        "tiny-esrgan-x2.safetensors", "junk.safetensors", "old.ckpt",
    }  # fmt: skip
    expected = {
        "tiny-sd15.safetensors": ("sd15", "safetensors"),
        "tiny-sdxl.safetensors": ("sdxl-base", "safetensors"),
        "tiny-sd15.config": ("sd15", "diffusers-config"),
        "tiny-sdxl.config": ("sdxl-base", "diffusers-config"),
        "tiny-sd15-lora.safetensors": ("lora", "safetensors"),
        "tiny-esrgan-x2.safetensors": ("upscaler", "safetensors"),
        "junk.safetensors": ("unknown", "safetensors"),
        "old.ckpt": ("unknown", "pickle"),
    }
    for name, (architecture, file_format) in expected.items():
        assert (files[name].architecture, files[name].format) == (architecture, file_format), name
    sd15 = files["tiny-sd15.safetensors"]
    assert sd15.size_bytes == (root / "tiny-sd15.safetensors").stat().st_size
    assert sd15.mtime_unix_ms == (root / "tiny-sd15.safetensors").stat().st_mtime_ns // 10**6
    assert sd15.root == str(root) and sd15.reason == ""
    assert "not a safetensors file" in files["junk.safetensors"].reason
    assert "pickle" in files["old.ckpt"].reason


def test_a_diffusers_folder_with_weights_is_one_entry(root: Path) -> None:
    folder = root / "pipelines" / "sd15-diffusers"
    shutil.copytree(root / "tiny-sd15.config", folder)
    shutil.copyfile(
        root / "loras" / "tiny-sd15-lora.safetensors",
        folder / "unet" / "diffusion_pytorch_model.safetensors",
    )
    inventory = Inventory([root])
    inventory.start()
    try:
        files = by_name(inventory)
    finally:
        inventory.stop()
    assert files["sd15-diffusers"].format == "diffusers"
    assert files["sd15-diffusers"].architecture == "sd15"
    assert "diffusion_pytorch_model.safetensors" not in files  # part of the folder


def test_a_file_copied_in_by_rename_appears_in_time(inventory: Inventory, root: Path) -> None:
    target = root / "incoming" / "new-model.safetensors"
    target.parent.mkdir()
    copy_in_by_rename(root / "tiny-sdxl.safetensors", target)
    wait_for(lambda: "new-model.safetensors" in by_name(inventory), "the new file listed")
    assert by_name(inventory)["new-model.safetensors"].architecture == "sdxl-base"


def test_a_file_changed_in_place_is_described_again(inventory: Inventory, root: Path) -> None:
    target = root / "tiny-sd15.safetensors"
    # Rewritten in place (no rename) with other content: now a LoRA of another size.
    target.write_bytes((root / "loras" / "tiny-sd15-lora.safetensors").read_bytes())
    size = target.stat().st_size
    wait_for(
        lambda: by_name(inventory)["tiny-sd15.safetensors"].size_bytes == size,
        "the rewritten file described again",
    )
    assert by_name(inventory)["tiny-sd15.safetensors"].architecture == "lora"


def test_a_deleted_file_leaves_and_a_moved_folder_follows(inventory: Inventory, root: Path) -> None:
    (root / "tiny-sdxl.safetensors").unlink()
    os.replace(root / "loras", root / "adapters")
    wait_for(lambda: "tiny-sdxl.safetensors" not in by_name(inventory), "the deleted file gone")
    wait_for(
        lambda: (
            Path(by_name(inventory)["tiny-sd15-lora.safetensors"].path).parent.name == "adapters"
        ),
        "the moved folder followed",
    )


def test_no_roots_no_inventory_and_a_missing_root_is_skipped(tmp_path: Path) -> None:
    empty = Inventory([])
    empty.start()
    assert empty.files() == []
    missing = Inventory([tmp_path / "nowhere"])
    missing.start()
    try:
        assert missing.files() == []
    finally:
        missing.stop()


# ----------------------------------------------------------- through gRPC, stale


@pytest.fixture
def watched(root: Path) -> Iterator[Inventory]:
    inventory = Inventory([root])
    inventory.start()
    yield inventory
    inventory.stop()


@pytest.fixture
def watching_host(watched: Inventory) -> ModelHost:
    """A host that learns from the inventory whether its files changed, as served."""
    return ModelHost(Device("cpu"), changes=watched)


@pytest.fixture
async def stub_with_inventory(
    watching_host: ModelHost,
    watched: Inventory,
    executor: ThreadPoolExecutor,
    tmp_path: Path,
) -> AsyncIterator[pb_grpc.ModelHostStub]:
    host, inventory = watching_host, watched
    server = grpc.aio.server()
    pb_grpc.add_ModelHostServicer_to_server(
        ModelHostServicer(host, executor, inventory=inventory), server
    )
    address = f"unix:{tmp_path}/inventory.sock"
    server.add_insecure_port(address)
    await server.start()
    async with grpc.aio.insecure_channel(address) as channel:
        yield pb_grpc.ModelHostStub(channel)
    await server.stop(None)


def load_request(root: Path, key: str) -> pb.LoadModelRequest:
    return pb.LoadModelRequest(
        key=key,
        model_path=str(root / "tiny-sd15.safetensors"),
        config_dir=str(root / "tiny-sd15.config"),
        loras=[pb.Lora(path=str(root / "loras" / "tiny-sd15-lora.safetensors"), strength=1.0)],
    )


async def test_list_models_over_grpc_and_a_changed_file_marks_its_keys_stale(
    stub_with_inventory: pb_grpc.ModelHostStub, root: Path
) -> None:
    stub = stub_with_inventory
    await stub.LoadModel(load_request(root, "detail"))
    listing = await stub.ListModels(pb.ListModelsRequest())
    assert list(listing.roots) == [str(root)] and not listing.polling
    files = {Path(m.path).name: m for m in listing.models}
    assert list(files["tiny-sd15.safetensors"].resident_keys) == ["detail"]
    assert list(files["tiny-sd15-lora.safetensors"].resident_keys) == ["detail"]
    assert not files["tiny-sd15.safetensors"].stale
    memory = await stub.GetMemory(pb.GetMemoryRequest())
    assert [(m.key, m.stale) for m in memory.models] == [("detail", False)]

    # A touch is enough: the host cannot know the bytes are the same without reading them.
    checkpoint = root / "tiny-sd15.safetensors"
    later = checkpoint.stat().st_mtime + 10
    os.utime(checkpoint, (later, later))

    async def stale() -> bool:
        memory = await stub.GetMemory(pb.GetMemoryRequest())
        return [(m.key, m.stale) for m in memory.models] == [("detail", True)]

    await wait_until(stale, "the key on the touched checkpoint reported stale")
    listing = await stub.ListModels(pb.ListModelsRequest())
    files = {Path(m.path).name: m for m in listing.models}
    assert files["tiny-sd15.safetensors"].stale
    assert not files["tiny-sd15-lora.safetensors"].stale

    # A new key on the changed file reads it again instead of sharing the stale base.
    fresh = await stub.LoadModel(load_request(root, "detail-new"))
    assert fresh.source == pb.LOAD_SOURCE_DISK
    memory = await stub.GetMemory(pb.GetMemoryRequest())
    assert {(m.key, m.stale) for m in memory.models} == {("detail", True), ("detail-new", False)}
    await stub.UnloadModel(pb.UnloadModelRequest(key="detail"))
    listing = await stub.ListModels(pb.ListModelsRequest())
    files = {Path(m.path).name: m for m in listing.models}
    assert list(files["tiny-sd15.safetensors"].resident_keys) == ["detail-new"]
    assert not files["tiny-sd15.safetensors"].stale


def test_a_changed_lora_marks_its_key_stale(watching_host: ModelHost, root: Path) -> None:
    from modelhost.engine.types import LoadSpec, LoraSpec

    host = watching_host
    lora = root / "loras" / "tiny-sd15-lora.safetensors"
    host.load(
        LoadSpec(
            key="k",
            model_path=str(root / "tiny-sd15.safetensors"),
            config_dir=str(root / "tiny-sd15.config"),
            loras=(LoraSpec(path=str(lora)),),
        )
    )
    assert not host.memory().models[0].stale
    lora.unlink()  # gone from disk counts as changed
    wait_for(lambda: host.memory().models[0].stale, "the key of the deleted LoRA reported stale")
    assert host.file_uses()[str(lora.resolve())].stale


def test_memory_reads_no_files(
    watching_host: ModelHost, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """memory() runs on the event loop: staleness comes from the inventory, not a stat."""
    from modelhost.engine.types import LoadSpec

    watching_host.load(LoadSpec(key="k", model_path=str(root / "tiny-sd15.safetensors"),
                                config_dir=str(root / "tiny-sd15.config")))  # fmt: skip
    touched: list[str] = []
    real_path_stat, real_stat, real_walk = Path.stat, os.stat, os.walk

    def path_stat(self: Path, *args: Any, **kwargs: Any) -> os.stat_result:
        touched.append(str(self))
        return real_path_stat(self, *args, **kwargs)

    def stat(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        touched.append(str(path))
        return real_stat(path, *args, **kwargs)

    def walk(path: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
        touched.append(str(path))
        return real_walk(path, *args, **kwargs)

    with monkeypatch.context() as patched:
        patched.setattr(Path, "stat", path_stat)
        patched.setattr(os, "stat", stat)
        patched.setattr(os, "walk", walk)
        models = watching_host.memory().models
    assert [m.key for m in models] == ["k"]
    # (The device's own figures may read /proc: that is not the model files.)
    assert [p for p in touched if not p.startswith(("/proc/", "/sys/"))] == []


def test_header_shapes_are_kept(root: Path) -> None:
    from modelhost.engine.checkpoint import read_safetensors_header

    path = root / "upscalers" / "tiny-esrgan-x2.safetensors"
    data = path.read_bytes()
    raw = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])
    for name, tensor in read_safetensors_header(path).items():
        assert list(tensor.shape) == raw[name]["shape"]
        assert tensor.numel == math.prod(tensor.shape)
