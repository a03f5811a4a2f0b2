"""The model host's single-file load (engine.single_file): the weights diffusers' own
from_single_file gives, in the asked dtype, and a checkpoint that lacks a weight refused
with the weight's name."""

import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from modelhost.engine import single_file
from modelhost.engine.pipelines import PIPELINE_CLASSES, build_pipeline
from modelhost.errors import InvalidModelError

CPU = torch.device("cpu")


@pytest.mark.parametrize(
    ("family", "architecture", "dtype"),
    [
        ("sd15", "sd15", torch.float32),
        ("sd15", "sd15", torch.bfloat16),
        ("sdxl", "sdxl-base", torch.float32),
    ],
)
def test_the_weights_are_those_diffusers_loads(
    demo_dir: Path, family: str, architecture: str, dtype: torch.dtype
) -> None:
    path = demo_dir / f"tiny-{family}.safetensors"
    config = str(demo_dir / f"tiny-{family}.config")
    assert single_file.fast_path_applies(path)
    with single_file.recorded_steps() as steps:
        ours = build_pipeline(path, architecture, config, dtype, CPU)
    assert set(steps) == {
        "read",
        "header + key conversion",
        "module construction",
        "assign + cast",
        "device copy",
    }
    theirs = PIPELINE_CLASSES[architecture].from_single_file(
        str(path), config=config, torch_dtype=dtype, local_files_only=True
    )
    assert type(ours) is type(theirs)
    assert ours.components.keys() == theirs.components.keys()
    for name, component in theirs.components.items():
        if not isinstance(component, torch.nn.Module):
            assert type(ours.components[name]) is type(component), name
            continue
        expected = component.state_dict()
        got = ours.components[name].state_dict()
        assert got.keys() == expected.keys(), name
        for key, tensor in expected.items():
            assert got[key].dtype == tensor.dtype, f"{name}.{key}"
            assert got[key].device == CPU, f"{name}.{key}"
            assert torch.equal(got[key], tensor), f"{name}.{key}"
        assert not ours.components[name].training, name


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_no_weight_reads_the_file_after_the_load(
    demo_dir: Path, tmp_path: Path, dtype: torch.dtype
) -> None:
    """The load maps the file: a weight left a view of the mapping would change with the file
    (a private mapping still sees the file's pages it never wrote). Overwritten in place after
    the load, the file changes nothing."""
    path = tmp_path / "model.safetensors"
    shutil.copyfile(demo_dir / "tiny-sd15.safetensors", path)
    pipe = build_pipeline(path, "sd15", str(demo_dir / "tiny-sd15.config"), dtype, CPU)
    before = {
        f"{name}.{key}": tensor.clone()
        for name, component in pipe.components.items()
        if isinstance(component, torch.nn.Module)
        for key, tensor in component.state_dict().items()
    }
    header = 8 + int.from_bytes(path.read_bytes()[:8], "little")
    with path.open("r+b") as f:
        f.seek(header)
        f.write(b"\x7f" * (path.stat().st_size - header))
    for name, component in pipe.components.items():
        if isinstance(component, torch.nn.Module):
            for key, tensor in component.state_dict().items():
                assert torch.equal(tensor, before[f"{name}.{key}"]), f"{name}.{key}"


def test_a_checkpoint_without_a_unet_weight_is_refused_naming_it(
    demo_dir: Path, tmp_path: Path
) -> None:
    state = load_file(demo_dir / "tiny-sd15.safetensors")
    gone = "model.diffusion_model.out.2.weight"
    del state[gone]
    path = tmp_path / "no-out.safetensors"
    save_file(state, path)
    with pytest.raises(InvalidModelError, match=r"unet: the checkpoint has no conv_out\.weight"):
        build_pipeline(path, "sd15", str(demo_dir / "tiny-sd15.config"), torch.float32, CPU)


def test_a_file_in_another_layout_takes_diffusers_path(tmp_path: Path) -> None:
    path = tmp_path / "other.safetensors"
    save_file({"some.weight": torch.zeros(2)}, path)
    assert not single_file.fast_path_applies(path)
    assert not single_file.fast_path_applies(tmp_path / "model.ckpt")
