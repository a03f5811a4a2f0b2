"""Both sides' generated gRPC code must match proto/: regenerate and compare."""

import filecmp
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GENERATED = [Path("sidecar/src/modelhost/v1"), Path("apps/gateway/src/model-host/generated")]


def _files(folder: Path) -> set[Path]:
    return {
        p.relative_to(folder)
        for p in folder.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    subprocess.run(["bash", str(ROOT / "scripts" / "gen-proto.sh"), str(tmp_path)], check=True)
    for folder in GENERATED:
        committed, fresh = ROOT / folder, tmp_path / folder
        assert _files(committed) == _files(fresh), f"{folder}: files differ; run npm run proto:gen"
        for name in _files(fresh):
            assert filecmp.cmp(committed / name, fresh / name, shallow=False), (
                f"{folder / name} is stale; run npm run proto:gen"
            )
