"""What several engine tests ask of the tiny demo models: a file's size on the device, and a
small image from a loaded key."""

import threading
from pathlib import Path

from modelhost.engine.checkpoint import inspect_single_file
from modelhost.engine.host import ModelHost
from modelhost.engine.types import GenerateParams


def size(demo_dir: Path, name: str, item_size: int = 4) -> int:
    return inspect_single_file(demo_dir / f"tiny-{name}.safetensors").device_bytes(item_size)


def image(host: ModelHost, key: str) -> bytes:
    params = GenerateParams(
        key=key, prompt="a quiet harbour", negative_prompt="", width=64, height=64, steps=2,
        guidance_scale=1.0, seed=5,
    )  # fmt: skip
    return host.generate(params, lambda _: None, threading.Event()).png
