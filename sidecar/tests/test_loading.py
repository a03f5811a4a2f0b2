"""Loading: every checkpoint family from its keys, dtypes, pickles, and errors with reasons."""

from pathlib import Path

import grpc
import pytest
import torch
from safetensors.torch import load_file, save_file

from modelhost.demo.ldm_keys import open_clip_to_ldm, unet_to_ldm, vae_to_ldm
from modelhost.demo.tiny import tiny_sd15_pipeline, tiny_sdxl_pipeline
from modelhost.engine.checkpoint import inspect_single_file
from modelhost.engine.device import Device
from modelhost.engine.host import ModelHost
from modelhost.engine.types import LoadSpec
from modelhost.errors import InvalidModelError, ModelFileNotFoundError
from modelhost.v1 import modelhost_pb2 as pb
from modelhost.v1 import modelhost_pb2_grpc as pb_grpc


def sd15_spec(demo_dir: Path, key: str = "sd15", **extra: object) -> LoadSpec:
    return LoadSpec(
        key=key,
        model_path=str(demo_dir / "tiny-sd15.safetensors"),
        config_dir=str(demo_dir / "tiny-sd15.config"),
        **extra,  # type: ignore[arg-type]
    )


def _save(state_dict: dict[str, torch.Tensor], path: Path) -> Path:
    save_file({k: v.detach().contiguous().clone() for k, v in state_dict.items()}, path)
    return path


def test_an_sd2_style_checkpoint_is_detected_from_its_keys(tmp_path: Path) -> None:
    # SD2's original layout: the SD UNet and VAE with an OpenCLIP text encoder under
    # cond_stage_model.model (SD1.5 has a HF CLIP under cond_stage_model.transformer).
    pipe = tiny_sd15_pipeline(0)
    state = unet_to_ldm(pipe.unet.state_dict(), layers_per_block=2)
    state |= vae_to_ldm(pipe.vae.state_dict(), num_up_blocks=4)
    state |= open_clip_to_ldm(pipe.text_encoder.state_dict(), prefix="cond_stage_model.model.")
    path = _save(state, tmp_path / "sd2-style.safetensors")
    assert inspect_single_file(path).architecture == "sd2"


def test_an_sdxl_refiner_checkpoint_is_detected_from_its_keys(tmp_path: Path) -> None:
    # The refiner has only the OpenCLIP encoder, as embedders.0.
    pipe = tiny_sdxl_pipeline(0)
    state = unet_to_ldm(pipe.unet.state_dict(), layers_per_block=2)
    state |= vae_to_ldm(pipe.vae.state_dict(), num_up_blocks=4)
    state |= open_clip_to_ldm(
        pipe.text_encoder_2.state_dict(), prefix="conditioner.embedders.0.model."
    )
    path = _save(state, tmp_path / "refiner-style.safetensors")
    assert inspect_single_file(path).architecture == "sdxl-refiner"


def test_dtype_defaults_to_fp32_on_cpu_and_fp16_on_cuda() -> None:
    device = Device("cpu")
    assert device.default_dtype() == torch.float32
    device.is_cuda = True  # only the policy is under test, not a real CUDA device
    assert device.default_dtype() == torch.float16


def test_dtype_is_overridable_per_load(host: ModelHost, demo_dir: Path) -> None:
    full = host.load(sd15_spec(demo_dir, key="fp32"))
    half = host.load(sd15_spec(demo_dir, key="bf16", dtype="bfloat16"))
    assert host._keys["fp32"].base.pipe.unet.dtype == torch.float32
    assert host._keys["bf16"].base.pipe.unet.dtype == torch.bfloat16
    # Different dtypes are different pipelines, each measured and estimated at its dtype.
    assert half.estimated_bytes * 2 == full.estimated_bytes
    assert abs(half.bytes * 2 - full.bytes) < full.bytes / 1000


def test_a_pickle_checkpoint_loads_when_allowed(demo_dir: Path, tmp_path: Path) -> None:
    weights = load_file(demo_dir / "tiny-sd15.safetensors")
    ckpt = tmp_path / "tiny-sd15.ckpt"
    torch.save({"state_dict": weights, "global_step": 10}, ckpt)
    refusing = ModelHost(Device("cpu"))
    with pytest.raises(InvalidModelError, match="--allow-pickle"):
        refusing.load(LoadSpec(key="k", model_path=str(ckpt)))

    host = ModelHost(Device("cpu"), allow_pickle=True)
    from_pickle = host.load(
        LoadSpec(key="ckpt", model_path=str(ckpt), config_dir=str(demo_dir / "tiny-sd15.config"))
    )
    from_safetensors = host.load(sd15_spec(demo_dir))
    assert from_pickle.architecture == "sd15"
    assert from_pickle.estimated_bytes == from_safetensors.estimated_bytes
    assert from_pickle.bytes == from_safetensors.bytes


def test_a_pickle_that_needs_arbitrary_code_is_refused_with_the_reason(tmp_path: Path) -> None:
    ckpt = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "object": Path("/")}, ckpt)
    host = ModelHost(Device("cpu"), allow_pickle=True)
    with pytest.raises(InvalidModelError, match="cannot read the pickle checkpoint"):
        host.load(LoadSpec(key="k", model_path=str(ckpt)))


def test_a_missing_config_folder_is_not_found_with_its_path(
    host: ModelHost, demo_dir: Path, tmp_path: Path
) -> None:
    missing = str(tmp_path / "nowhere.config")
    spec = LoadSpec(key="k", model_path=str(demo_dir / "tiny-sd15.safetensors"), config_dir=missing)
    with pytest.raises(ModelFileNotFoundError, match=missing):
        host.load(spec)
    assert host.resident_keys() == []


def _truncated(demo_dir: Path, tmp_path: Path) -> Path:
    data = (demo_dir / "tiny-sd15.safetensors").read_bytes()
    path = tmp_path / "truncated.safetensors"
    path.write_bytes(data[: len(data) - 1000])
    return path


def _bad_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "folder-model"
    folder.mkdir()
    (folder / "model_index.json").write_text("{not json")
    return folder


def _no_unet(demo_dir: Path, tmp_path: Path) -> Path:
    return demo_dir / "loras" / "tiny-sd15-lora.safetensors"


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda demo, tmp: _truncated(demo, tmp), "cannot load"),
        (lambda demo, tmp: _bad_folder(tmp), "not valid JSON"),
        (lambda demo, tmp: tmp, "not a diffusers pipeline"),
        (_no_unet, "unrecognised checkpoint"),
    ],
    ids=["truncated", "bad-model-index", "plain-folder", "a-lora-as-model"],
)
async def test_an_unusable_model_is_invalid_argument_with_the_reason(
    stub: pb_grpc.ModelHostStub, demo_dir: Path, tmp_path: Path, make: object, reason: str
) -> None:
    path = make(demo_dir, tmp_path)  # type: ignore[operator]
    request = pb.LoadModelRequest(
        key="k", model_path=str(path), config_dir=str(demo_dir / "tiny-sd15.config")
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.LoadModel(request)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = caught.value.details() or ""
    assert reason in details
    assert "Traceback" not in details


def test_a_key_loaded_again_with_another_definition_is_invalid(
    host: ModelHost, demo_dir: Path
) -> None:
    from modelhost.errors import InvalidRequestError

    host.load(sd15_spec(demo_dir))
    with pytest.raises(InvalidRequestError, match="different definition"):
        host.load(sd15_spec(demo_dir, dtype="bfloat16"))


def test_every_load_source_has_a_proto_value() -> None:
    from modelhost.engine.types import LoadSource
    from modelhost.servicer import _LOAD_SOURCES

    assert set(_LOAD_SOURCES) == set(LoadSource)
    assert len(set(_LOAD_SOURCES.values())) == len(LoadSource)
