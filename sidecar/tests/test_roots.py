"""The model roots: every path of a load is resolved with its symlinks and must lie
inside a root, whoever asks; SetModelRoots replaces them. And pickle weights inside a
diffusers folder are refused like pickle files."""

import os
import re
import shutil
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest

from modelhost.demo.tiny import tiny_sd15_pipeline
from modelhost.engine.device import Device
from modelhost.engine.host import ModelHost
from modelhost.engine.inventory import Inventory
from modelhost.engine.pipelines import Pipeline, build_pipeline
from modelhost.engine.roots import ModelRoots
from modelhost.engine.types import LoadSpec, LoraSpec
from modelhost.errors import InvalidModelError, InvalidRequestError
from modelhost.servicer import ModelHostServicer
from modelhost.v1 import modelhost_pb2 as pb
from modelhost.v1 import modelhost_pb2_grpc as pb_grpc

OUTSIDE = "resolves outside the model roots"


@pytest.fixture
def root(demo_dir: Path, tmp_path: Path) -> Path:
    """A model root holding a copy of the demo tree."""
    copy = tmp_path / "models"
    shutil.copytree(demo_dir, copy)
    return copy


@pytest.fixture
def elsewhere(demo_dir: Path, tmp_path: Path) -> Path:
    """Good models outside the root: a load that reached them would succeed."""
    copy = tmp_path / "elsewhere"
    shutil.copytree(demo_dir, copy)
    return copy


@pytest.fixture
def builds() -> list[Path]:
    return []


@pytest.fixture
def guarded(root: Path, builds: list[Path]) -> ModelHost:
    """A host limited to `root` whose every pipeline build is recorded."""

    def builder(path: Path, *args: object) -> Pipeline:
        builds.append(path)
        return build_pipeline(path, *args)  # type: ignore[arg-type]

    return ModelHost(Device("cpu"), builder=builder, roots=ModelRoots([root]))


def sd15(model: Path, config: Path, key: str = "k", *loras: LoraSpec, **more: str) -> LoadSpec:
    return LoadSpec(key=key, model_path=str(model), config_dir=str(config), loras=loras, **more)  # type: ignore[arg-type]


def test_a_link_inside_the_root_that_points_outside_is_refused_unopened(
    guarded: ModelHost, builds: list[Path], root: Path, elsewhere: Path
) -> None:
    link = root / "link.safetensors"
    link.symlink_to(elsewhere / "tiny-sd15.safetensors")
    with pytest.raises(InvalidRequestError) as refused:
        guarded.load(sd15(link, root / "tiny-sd15.config"))
    assert str(refused.value) == (
        f"model_path: {link} {OUTSIDE} ({os.path.realpath(root)}); refused"
    )
    assert builds == [] and guarded.resident_keys() == []


def test_a_link_inside_the_root_that_stays_inside_loads(
    guarded: ModelHost, builds: list[Path], root: Path
) -> None:
    link = root / "links" / "alias.safetensors"
    link.parent.mkdir()
    link.symlink_to(root / "tiny-sd15.safetensors")
    result = guarded.load(sd15(link, root / "tiny-sd15.config"))
    assert result.architecture == "sd15" and builds == [link]


def test_dot_dot_escapes_are_refused(guarded: ModelHost, root: Path, elsewhere: Path) -> None:
    escaping = root / ".." / elsewhere.name / "tiny-sd15.safetensors"
    assert escaping.is_file()  # the path text starts with the root, the file is outside
    with pytest.raises(InvalidRequestError, match=f"model_path: .* {OUTSIDE}"):
        guarded.load(sd15(escaping, root / "tiny-sd15.config"))


@pytest.mark.parametrize(
    ("field", "make"),
    [
        ("config_dir", lambda root, out: sd15(root / "tiny-sd15.safetensors", out)),
        (
            "loras[1].path",
            lambda root, out: sd15(
                root / "tiny-sd15.safetensors",
                root / "tiny-sd15.config",
                "k",
                LoraSpec(str(root / "loras" / "tiny-sd15-lora.safetensors")),
                LoraSpec(str(out)),
            ),
        ),
        (
            "superres_model",
            lambda root, out: sd15(
                root / "tiny-sd15.safetensors", root / "tiny-sd15.config", superres_model=str(out)
            ),
        ),
        (
            "vae_path",
            lambda root, out: sd15(
                root / "tiny-sd15.safetensors", root / "tiny-sd15.config", vae_path=str(out)
            ),
        ),
    ],
    ids=["config", "lora", "upscaler", "vae"],
)
def test_every_path_of_the_load_is_checked(
    guarded: ModelHost, builds: list[Path], root: Path, elsewhere: Path, field: str, make: object
) -> None:
    targets = {
        "config_dir": elsewhere / "tiny-sd15.config",
        "loras[1].path": elsewhere / "loras" / "tiny-sd15-lora.safetensors",
        "superres_model": elsewhere / "upscalers" / "tiny-esrgan-x2.safetensors",
        "vae_path": elsewhere / "tiny-sd15.config" / "vae",
    }
    link = root / f"escape-{targets[field].name}"
    link.symlink_to(targets[field])
    with pytest.raises(InvalidRequestError, match=f"^{re.escape(f'{field}: {link} {OUTSIDE}')}"):
        guarded.load(make(root, link))  # type: ignore[operator]
    assert builds == []


def test_a_link_inside_a_config_folder_that_points_outside_is_refused(
    guarded: ModelHost, root: Path, elsewhere: Path
) -> None:
    config = root / "tiny-sd15.config"
    scheduler = config / "scheduler" / "scheduler_config.json"
    scheduler.unlink()
    scheduler.symlink_to(elsewhere / "tiny-sd15.config" / "scheduler" / "scheduler_config.json")
    with pytest.raises(
        InvalidRequestError, match=re.escape(f"config_dir: {scheduler} (inside {config}) {OUTSIDE}")
    ):
        guarded.load(sd15(root / "tiny-sd15.safetensors", config))


def test_no_roots_no_restriction(host: ModelHost, elsewhere: Path) -> None:
    result = host.load(sd15(elsewhere / "tiny-sd15.safetensors", elsewhere / "tiny-sd15.config"))
    assert result.architecture == "sd15"


# ------------------------------------------------------------------ over gRPC


@pytest.fixture
async def served(
    guarded: ModelHost, executor: ThreadPoolExecutor, root: Path, tmp_path: Path
) -> AsyncIterator[tuple[pb_grpc.ModelHostStub, Inventory]]:
    inventory = Inventory([root])
    inventory.start()
    server = grpc.aio.server()
    pb_grpc.add_ModelHostServicer_to_server(
        ModelHostServicer(guarded, executor, inventory=inventory), server
    )
    address = f"unix:{tmp_path}/roots.sock"
    server.add_insecure_port(address)
    await server.start()
    async with grpc.aio.insecure_channel(address) as channel:
        yield pb_grpc.ModelHostStub(channel), inventory
    await server.stop(None)
    inventory.stop()


def load_request(folder: Path, key: str) -> pb.LoadModelRequest:
    return pb.LoadModelRequest(
        key=key,
        model_path=str(folder / "tiny-sd15.safetensors"),
        config_dir=str(folder / "tiny-sd15.config"),
    )


async def test_set_model_roots_replaces_what_loads_may_read_and_what_is_listed(
    served: tuple[pb_grpc.ModelHostStub, Inventory], root: Path, elsewhere: Path
) -> None:
    stub, _ = served
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.LoadModel(load_request(elsewhere, "there"))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert OUTSIDE in (refused.value.details() or "")

    reply = await stub.SetModelRoots(pb.SetModelRootsRequest(roots=[str(elsewhere)] * 2))
    assert list(reply.roots) == [os.path.realpath(elsewhere)]
    assert (await stub.LoadModel(load_request(elsewhere, "there"))).architecture == "sd15"
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.LoadModel(load_request(root, "here"))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    listing = await stub.ListModels(pb.ListModelsRequest())
    assert list(listing.roots) == [os.path.realpath(elsewhere)]
    assert {Path(m.path).parent for m in listing.models} >= {Path(os.path.realpath(elsewhere))}
    assert all(m.path.startswith(os.path.realpath(elsewhere)) for m in listing.models)


@pytest.mark.parametrize(
    ("roots", "reason"),
    [([], "roots: at least one folder is required"), (["models"], "roots: must be absolute")],
    ids=["empty", "relative"],
)
async def test_set_model_roots_refuses_no_roots_and_relative_ones(
    served: tuple[pb_grpc.ModelHostStub, Inventory], roots: list[str], reason: str, root: Path
) -> None:
    stub, inventory = served
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.SetModelRoots(pb.SetModelRootsRequest(roots=roots))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (refused.value.details() or "").startswith(reason)
    assert inventory.roots == (Path(os.path.realpath(root)),)


# ------------------------------------------------- pickle in a diffusers folder


@pytest.fixture(scope="module")
def pickle_pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A whole diffusers pipeline folder saved with pickle (.bin) weights."""
    folder = tmp_path_factory.mktemp("pickled") / "sd15-bin"
    tiny_sd15_pipeline(3).save_pretrained(folder, safe_serialization=False)
    assert (folder / "unet" / "diffusion_pytorch_model.bin").is_file()
    return folder


def test_pickle_weights_inside_a_diffusers_folder_are_refused(
    host: ModelHost, pickle_pipeline: Path
) -> None:
    with pytest.raises(InvalidModelError) as refused:
        host.load(LoadSpec(key="bin", model_path=str(pickle_pipeline)))
    message = str(refused.value)
    named = Path(message.split(":", 1)[0])
    assert named.parent.parent == pickle_pipeline and named.suffix == ".bin"
    assert "pickle weights can run arbitrary code and are refused" in message
    assert "--allow-pickle" in message
    assert host.resident_keys() == []


def test_pickle_weights_inside_a_diffusers_folder_load_when_allowed(pickle_pipeline: Path) -> None:
    allowed = ModelHost(Device("cpu"), allow_pickle=True)
    result = allowed.load(LoadSpec(key="bin", model_path=str(pickle_pipeline)))
    assert result.architecture == "sd15"


async def test_a_root_inside_another_is_watched_once(
    served: tuple[pb_grpc.ModelHostStub, Inventory], root: Path
) -> None:
    stub, _ = served
    loras = root / "loras"
    reply = await stub.SetModelRoots(pb.SetModelRootsRequest(roots=[str(root), str(loras)]))
    assert list(reply.roots) == [os.path.realpath(root), os.path.realpath(loras)]
    listing = await stub.ListModels(pb.ListModelsRequest())
    assert list(listing.roots) == [os.path.realpath(root)]
    paths = [m.path for m in listing.models]
    assert len(paths) == len(set(paths))
    assert str(loras / "tiny-sd15-lora.safetensors") in paths
