"""The full-size random SD1.5 file is made once per cache folder and reused after; the
e2e suite (test/real-checkpoint.e2e-spec.ts) makes and loads the real one."""

from pathlib import Path

import pytest
import torch

from modelhost.demo import full_size
from modelhost.demo.full_size import (
    RANDOM_MODELS_DIR,
    SD15_FILE,
    full_size_sd15_checkpoint,
    save_checkpoint,
)
from modelhost.demo.tiny import tiny_sd15_pipeline
from modelhost.engine.checkpoint import inspect_single_file


def test_an_existing_file_is_reused_not_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    existing = tmp_path / RANDOM_MODELS_DIR / SD15_FILE
    existing.parent.mkdir()
    existing.write_bytes(b"made before")

    def refuse(*_: object) -> None:
        raise AssertionError("rebuilt a file the cache already holds")

    monkeypatch.setattr(full_size, "build_random_pipeline", refuse)
    assert full_size_sd15_checkpoint(tmp_path) == existing
    assert existing.read_bytes() == b"made before"


def test_a_checkpoint_appears_whole_or_not_at_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "model.safetensors"

    def interrupted(*_: object, **__: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(full_size, "save_file", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tiny_sd15_pipeline(), path)
    assert not path.exists()

    monkeypatch.undo()
    size = save_checkpoint(tiny_sd15_pipeline(), path)
    assert size == path.stat().st_size
    assert inspect_single_file(path).architecture == "sd15"
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]


def test_random_pipelines_are_made_in_the_asked_dtype() -> None:
    configs = {name: full_size.component_config("sd15", name) for name in full_size.SD15_COMPONENTS}
    pipe = full_size.build_random_pipeline("sd15", configs, torch.device("meta"), torch.float16)
    assert {p.dtype for p in pipe.unet.parameters()} == {torch.float16}
    assert torch.get_default_dtype() == torch.float32  # restored
