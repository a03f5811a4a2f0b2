"""The diffusers config folders of every family the model host loads, as released.

One folder per family (model_index.json, scheduler, UNet, VAE, text encoder(s) and
tokenizer settings) with the numbers of the released models:

    sd15          runwayml/stable-diffusion-v1-5
    sd2           stabilityai/stable-diffusion-2-1-base  (512, epsilon)
    sd2-v         stabilityai/stable-diffusion-2-1       (768, v-prediction)
    sdxl-base     stabilityai/stable-diffusion-xl-base-1.0
    sdxl-refiner  stabilityai/stable-diffusion-xl-refiner-1.0

They differ from the hub's in one way on purpose: no safety checker (the server ships
none). What they lack is the tokenizers' vocabulary, which is derived from
open-clip-torch (modelhost.configs.clip_bpe): `config_folder` completes a folder once,
in a cache folder, and `from_single_file(..., config=that folder)` then loads any
checkpoint of the family with no hub at all.
"""

import hashlib
import json
import os
import shutil
import threading
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from modelhost.configs.clip_bpe import bpe_source, write_clip_bpe

FOLDERS = ("sd15", "sd2", "sd2-v", "sdxl-base", "sdxl-refiner")
CACHE_ENV = "MODELHOST_CACHE_DIR"
TOKENIZER_DIRS = ("tokenizer", "tokenizer_2")


def folder_name(architecture: str, prediction_type: str) -> str:
    """The bundled folder for a detected architecture. SD2 comes in two releases that
    differ only in what the UNet predicts (and the size it was trained at)."""
    if architecture == "sd2" and prediction_type == "v_prediction":
        return "sd2-v"
    if architecture not in FOLDERS:
        raise ValueError(f"no bundled config for architecture '{architecture}'")
    return architecture


def _package_folder(name: str) -> Traversable:
    if name not in FOLDERS:
        raise ValueError(f"no bundled config folder '{name}'")
    return resources.files(__name__) / name


def component_config(name: str, component: str) -> dict[str, Any]:
    """One component's config (`unet`, `vae`, `text_encoder`, ...) of a bundled folder."""
    config: dict[str, Any] = json.loads(
        (_package_folder(name) / component / "config.json").read_text(encoding="utf-8")
    )
    return config


def cache_root() -> Path:
    """MODELHOST_CACHE_DIR, else $XDG_CACHE_HOME/modelhost, else ~/.cache/modelhost."""
    explicit = os.environ.get(CACHE_ENV, "").strip()
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(xdg) if xdg else Path.home() / ".cache") / "modelhost"


def config_folder(name: str, cache_dir: Path | None = None) -> Path:
    """The complete bundled folder `name`, tokenizer vocabulary included, in the cache.

    Built on first use and reused after. Its path names a digest of the bundled files
    and the vocabulary source, so a new release of either gets a new folder rather than
    a stale one.
    """
    _package_folder(name)
    return _complete_bundle(cache_dir or cache_root()) / name


@cache
def _bundle_files() -> tuple[tuple[tuple[str, bytes], ...], str]:
    """The bundled files and the digest naming their completed folder."""
    files = tuple(
        sorted(
            file for name in FOLDERS for file in _package_files(_package_folder(name), f"{name}/")
        )
    )
    digest = hashlib.sha256(bpe_source().read_bytes())
    for relative, data in files:
        digest.update(relative.encode() + b"\0" + data + b"\0")
    return files, digest.hexdigest()[:16]


_building = threading.Lock()


def _complete_bundle(cache_dir: Path) -> Path:
    files, digest = _bundle_files()
    target = cache_dir / "configs" / digest
    with _building:
        if not target.is_dir():
            _build(target, files)
    return target


def _build(target: Path, files: tuple[tuple[str, bytes], ...]) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    # Built aside and renamed into place: another process (or an interrupted run) never
    # sees half a folder.
    staging = target.with_name(f".{target.name}.{os.getpid()}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    for relative, data in files:
        path = staging / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    vocabulary = staging / "clip-bpe"
    vocabulary.mkdir()
    write_clip_bpe(vocabulary, bpe_source())
    for tokenizer in (p for folder in FOLDERS for p in (staging / folder).iterdir()):
        if tokenizer.name in TOKENIZER_DIRS:
            for file in vocabulary.iterdir():
                _link_or_copy(file, tokenizer / file.name)
    try:
        staging.rename(target)
    except OSError:
        if not target.is_dir():
            raise
        shutil.rmtree(staging, ignore_errors=True)  # another process finished first


def _package_files(folder: Traversable, prefix: str) -> list[tuple[str, bytes]]:
    found: list[tuple[str, bytes]] = []
    for entry in folder.iterdir():
        relative = f"{prefix}{entry.name}"
        if entry.is_dir():
            found.extend(_package_files(entry, f"{relative}/"))
        elif entry.name.endswith(".json"):
            found.append((relative, entry.read_bytes()))
    return found


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
