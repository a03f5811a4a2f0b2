"""The GPU check: its full-size configs are the released models', and its --tiny run
goes through the same code on the CPU (so the GPU script cannot rot)."""

import json
from pathlib import Path

import pytest
import torch

from modelhost.engine.checkpoint import detect_architecture
from modelhost.gpucheck.run import (
    COLUMNS,
    build_random_pipeline,
    component_configs,
    main,
    pipe_state,
    run_check,
)

# Parameter counts of the released SD1.5 and SDXL base components.
RELEASED_PARAMETERS = {
    "sd15": {"unet": 859_520_964, "vae": 83_653_863, "text_encoder": 123_060_480},
    "sdxl": {
        "unet": 2_567_463_684,
        "vae": 83_653_863,
        "text_encoder": 123_060_480,
        "text_encoder_2": 694_659_840,
    },
}


@pytest.mark.parametrize(("family", "architecture"), [("sd15", "sd15"), ("sdxl", "sdxl-base")])
def test_bundled_configs_build_the_released_models(family: str, architecture: str) -> None:
    # On the meta device: shapes without memory, in a fraction of a second.
    pipe = build_random_pipeline(
        family, component_configs(family, tiny=False), torch.device("meta"), torch.float16
    )
    counts = {
        name: sum(p.numel() for p in getattr(pipe, name).parameters())
        for name in RELEASED_PARAMETERS[family]
    }
    assert counts == RELEASED_PARAMETERS[family]
    # The single-file layout the check saves is detected as the right family.
    assert detect_architecture(set(pipe_state(pipe))) == architecture


def test_full_size_without_a_gpu_says_what_to_do(tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(SystemExit, match="--tiny"):
        main(["--workdir", str(tmp_path)])
    assert list(tmp_path.iterdir()) == []  # nothing was built or written


def test_tiny_run_prints_the_table_and_writes_the_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report_path = tmp_path / "report.json"
    main(["--tiny", "--json", str(report_path), "--workdir", str(tmp_path / "work")])
    table = capsys.readouterr().out
    for _, title in COLUMNS:
        assert title in table
    assert "back to baseline" in table and "NOT back" not in table

    report = json.loads(report_path.read_text())
    assert report["tiny"] and report["device"] == "cpu" and report["returned_to_baseline"]
    rows = {row["model"]: row for row in report["rows"]}
    assert set(rows) == {"sd15", "sdxl"}
    assert {row["architecture"] for row in rows.values()} == {"sd15", "sdxl-base"}
    for row in rows.values():
        assert set(row) >= {name for name, _ in COLUMNS}
        assert (row["size"], row["steps"]) == ("64x64", 2)
        assert row["allocated_after_unload"] <= row["allocated_after_load"]
        assert row["allocated_after_load"] >= row["load_bytes"] > 0
        for timing in ("cold_load_s", "resident_switch_s", "ram_switch_s", "generate_s"):
            assert row[timing] > 0
        assert row["resident_switch_s"] < row["cold_load_s"]
        assert row["peak_bytes"] > 0
        # Page-locked copies exist only on CUDA: the bandwidth rows say not applicable.
        bandwidths = ("cold_load_gbps", "file_read_gbps", "ram_switch_gbps", "pinned_copy_gbps")
        assert [row[name] for name in bandwidths] == [None] * 4
    assert "n/a" in table and "not applicable off CUDA" in table
    # The workdir held the checkpoints the host loaded.
    assert (tmp_path / "work" / "sdxl.safetensors").is_file()


def test_one_model_has_no_ram_tier_switch(tmp_path: Path) -> None:
    report = run_check(["sd15"], tiny=True, device_name="cpu", workdir=tmp_path, log=lambda _: None)
    assert [row.model for row in report.rows] == ["sd15"]
    assert report.rows[0].ram_switch_s is None
    assert report.rows[0].allocated_after_unload == 0
