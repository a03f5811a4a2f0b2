"""modes.yaml.example, pointed at files in the released single-file layout, needs no
line it does not show: every mode's file is detected and read with its family's bundled
config folder.

What this proves on a CPU is detection and the folder choice, from files with the
families' real key layouts (the tiny demo models'). Loading a full-size SD1.5 file with
no `config:` is proven end to end by test/real-checkpoint.e2e-spec.ts; full-size SDXL
does not fit a CPU test run and is proven by the GPU check (python -m modelhost.gpucheck).
"""

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from safetensors.torch import save_file

from modelhost.configs import CACHE_ENV
from modelhost.demo.ldm_keys import pipeline_to_ldm_state_dict
from modelhost.demo.tiny import tiny_sd15_pipeline, tiny_sdxl_pipeline
from modelhost.engine.checkpoint import inspect_single_file
from modelhost.engine.pipelines import PIPELINE_CLASSES, default_config_dir

EXAMPLE = Path(__file__).parents[2] / "modes.yaml.example"
# The family of each file the example names, as its name says.
LAYOUTS = {"sdxl/": tiny_sdxl_pipeline, "sd15/": tiny_sd15_pipeline}
EXPECTED_FOLDERS = {"sdxl-general": "sdxl-base", "sdxl-portrait": "sdxl-base", "sd15-fast": "sd15"}


@pytest.fixture(autouse=True)
def cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))


def test_every_mode_of_the_example_gets_its_family_folder(tmp_path: Path) -> None:
    example: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    modes: dict[str, dict[str, Any]] = example["modes"]
    assert set(modes) == set(EXPECTED_FOLDERS)
    model_root = tmp_path / "models"
    for name, mode in modes.items():
        assert "config" not in mode, name
        model = model_root / mode["model"]
        if not model.exists():
            family = next(prefix for prefix in LAYOUTS if mode["model"].startswith(prefix))
            make = LAYOUTS[family]
            model.parent.mkdir(parents=True, exist_ok=True)
            state = {k: v.contiguous() for k, v in pipeline_to_ldm_state_dict(make()).items()}
            save_file(state, model)

        info = inspect_single_file(model)
        config_dir = Path(default_config_dir(info))
        assert config_dir.name == EXPECTED_FOLDERS[name], name
        index = json.loads((config_dir / "model_index.json").read_text())
        assert index["_class_name"] == PIPELINE_CLASSES[info.architecture].__name__
        for tokenizer in ("tokenizer", "tokenizer_2"):
            if tokenizer in index and index[tokenizer][0] is not None:
                assert (config_dir / tokenizer / "vocab.json").is_file()
                assert (config_dir / tokenizer / "merges.txt").is_file()
