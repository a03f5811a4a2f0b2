"""How soon the model host's inventory follows the disk: a file copied in (by rename, as
copy tools and editors do), a file rewritten in place, a file deleted, and a loaded file
touched until GetMemory calls its key stale. Watched by OS events (inotify) and by
polling (--watch-poll). The tests only check that each change is seen; this measures how
fast.

    PYTHONPATH=sidecar/src HF_HUB_OFFLINE=1 \
        sidecar/.venv/bin/python bench/inventory-latency.py [ROUNDS]

Prints JSON and writes bench/results/inventory-latency.json.
"""

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from diffusers.utils import logging as diffusers_logging
from modelhost.demo.factory import make_demo_models
from modelhost.engine.device import Device
from modelhost.engine.host import ModelHost
from modelhost.engine.inventory import Inventory
from modelhost.engine.types import LoadSpec

REPO = Path(__file__).resolve().parent.parent
RESULT = REPO / "bench" / "results" / "inventory-latency.json"
GIVE_UP_SECONDS = 60.0


def seconds_until(condition: Callable[..., bool], *args: object) -> float:
    started = time.perf_counter()
    while not condition(*args):
        if time.perf_counter() - started > GIVE_UP_SECONDS:
            raise SystemExit(f"a change was not seen within {GIVE_UP_SECONDS:.0f} s")
        time.sleep(0.002)
    return time.perf_counter() - started


def names(inventory: Inventory) -> dict[str, int]:
    return {Path(f.path).name: f.size_bytes for f in inventory.files()}


def listed(inventory: Inventory, name: str) -> bool:
    return name in names(inventory)


def listed_with_size(inventory: Inventory, name: str, size: int) -> bool:
    return names(inventory).get(name) == size


def gone(inventory: Inventory, name: str) -> bool:
    return name not in names(inventory)


def stale(host: ModelHost) -> bool:
    return host.memory().models[0].stale


def fresh(host: ModelHost) -> bool:
    return not stale(host)


def measure(demo: Path, work: Path, polling: bool, rounds: int) -> dict[str, list[float]]:
    root = work / ("polling" if polling else "inotify")
    shutil.copytree(demo, root)
    inventory = Inventory([root], polling=polling)
    inventory.start()
    host = ModelHost(Device("cpu"), changes=inventory)
    checkpoint = root / "tiny-sd15.safetensors"
    host.load(
        LoadSpec(key="k", model_path=str(checkpoint), config_dir=str(root / "tiny-sd15.config"))
    )
    source = root / "tiny-sdxl.safetensors"
    lora = root / "loras" / "tiny-sd15-lora.safetensors"
    timings: dict[str, list[float]] = {"copied in": [], "rewritten": [], "deleted": [], "stale": []}

    try:
        for n in range(rounds):
            target = root / f"new-{n}.safetensors"
            staging = root / f".new-{n}.part"
            shutil.copyfile(source, staging)
            os.replace(staging, target)
            timings["copied in"].append(seconds_until(listed, inventory, target.name))

            target.write_bytes(lora.read_bytes())
            size = target.stat().st_size
            timings["rewritten"].append(
                seconds_until(listed_with_size, inventory, target.name, size)
            )

            target.unlink()
            timings["deleted"].append(seconds_until(gone, inventory, target.name))

            later = checkpoint.stat().st_mtime + 10 * (n + 1)
            os.utime(checkpoint, (later, later))
            timings["stale"].append(seconds_until(stale, host))
            # A new key on the changed file is fresh; the old one is dropped for the next round.
            host.unload("k")
            host.load(
                LoadSpec(
                    key="k", model_path=str(checkpoint), config_dir=str(root / "tiny-sd15.config")
                )
            )
            seconds_until(fresh, host)
    finally:
        inventory.stop()
    return timings


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return "unknown"


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    diffusers_logging.disable_progress_bar()
    diffusers_logging.set_verbosity_error()
    with tempfile.TemporaryDirectory(prefix="inventory-bench-") as tmp:
        work = Path(tmp)
        demo = work / "demo"
        make_demo_models(demo)
        results: dict[str, dict[str, dict[str, float]]] = {}
        for polling in (False, True):
            timings = measure(demo, work, polling, rounds)
            results["polling" if polling else "inotify"] = {
                change: {
                    "median_ms": round(statistics.median(values) * 1000, 1),
                    "max_ms": round(max(values) * 1000, 1),
                }
                for change, values in timings.items()
            }
    report = {
        "benchmark": "inventory-latency",
        "rounds": rounds,
        "settle_seconds": Inventory([]).settle_seconds,
        "poll_seconds": Inventory([]).poll_seconds,
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "commit": commit(),
        "results": results,
    }
    text = json.dumps(report, indent=2)
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
