"""What a load is checked against before anything is read or evicted: the file exists
and is no refused pickle, the dtype, LoRAs and VAE are usable; and what follows from
the request alone (the base it shares, what its upscaler will cost)."""

from pathlib import Path

import torch

from modelhost.engine.bases import Base, BaseId, resolved
from modelhost.engine.checkpoint import (
    PICKLE_SUFFIXES,
    CheckpointInfo,
    inspect_diffusers_folder,
    inspect_single_file,
    read_safetensors_header,
)
from modelhost.engine.files import fingerprint
from modelhost.engine.pipelines import DTYPES
from modelhost.engine.types import LoadSpec
from modelhost.errors import (
    InvalidModelError,
    InvalidRequestError,
    ModelFileNotFoundError,
    ModelHostError,
)


def inspect(spec: LoadSpec, allow_pickle: bool) -> CheckpointInfo:
    path = Path(spec.model_path)
    if not path.exists():
        raise ModelFileNotFoundError(spec.model_path)
    if path.is_dir():
        if not allow_pickle:
            refuse_pickle_components(path)
        return inspect_diffusers_folder(path)
    if path.suffix.lower() in PICKLE_SUFFIXES and not allow_pickle:
        raise InvalidModelError(
            f"{spec.model_path}: pickle checkpoints can run arbitrary code and are refused; "
            "convert it to .safetensors or start the model host with --allow-pickle"
        )
    return inspect_single_file(path)


def check_vae(spec: LoadSpec, allow_pickle: bool) -> None:
    """Before the checkpoint is read: a VAE that cannot be used must not cost a load."""
    if not spec.vae_path:
        return
    path = Path(spec.vae_path)
    if not path.exists():
        raise ModelFileNotFoundError(spec.vae_path)
    if path.suffix.lower() in PICKLE_SUFFIXES and not allow_pickle:
        raise InvalidModelError(
            f"{spec.vae_path}: pickle files can run arbitrary code and are refused; "
            "convert it to .safetensors or start the model host with --allow-pickle"
        )


def dtype_of(name: str, default: torch.dtype) -> torch.dtype:
    if not name:
        return default
    if name not in DTYPES:
        raise InvalidRequestError(f"dtype must be one of {', '.join(DTYPES)}, got '{name}'")
    return DTYPES[name]


def check_loras(spec: LoadSpec) -> None:
    files = [resolved(lora.path) for lora in spec.loras]
    if len(set(files)) != len(files):
        raise InvalidRequestError("a LoRA file is listed twice; give it one strength")


def base_id(spec: LoadSpec, dtype: torch.dtype) -> BaseId:
    dtype_name = next(name for name, value in DTYPES.items() if value == dtype)
    config = resolved(spec.config_dir) if spec.config_dir else ""
    model = resolved(spec.model_path)
    vae = resolved(spec.vae_path) if spec.vae_path else ""
    vae_fingerprint = fingerprint(Path(vae)) if vae else None
    return (model, config, dtype_name, fingerprint(Path(model)), vae, vae_fingerprint)


def upscaler_estimate(spec: LoadSpec, base: Base | None) -> int:
    if not spec.superres_model:
        return 0
    if base is not None and resolved(spec.superres_model) in base.upscalers:
        return 0
    path = Path(spec.superres_model)
    try:
        if path.suffix.lower() == ".safetensors":
            return sum(
                t.numel * 4 for t in read_safetensors_header(path).values()
            )  # upscalers stay fp32 unless the load is half precision: an upper bound
        return path.stat().st_size
    except (ModelHostError, OSError):
        return 0  # the load itself reports what is wrong with the file


def refuse_pickle_components(folder: Path) -> None:
    """A diffusers folder whose component holds only pickle weights would be unpickled
    by from_pretrained: refused like a pickle single file. Components that also have
    .safetensors weights are fine (diffusers loads those)."""
    for component in sorted(p for p in folder.iterdir() if p.is_dir()):
        files = sorted(p for p in component.iterdir() if p.is_file())
        pickles = [p for p in files if p.suffix.lower() in PICKLE_SUFFIXES]
        if pickles and not any(p.suffix.lower() == ".safetensors" for p in files):
            raise InvalidModelError(
                f"{pickles[0]}: pickle weights can run arbitrary code and are refused; "
                "convert the folder to .safetensors or start the model host with --allow-pickle"
            )
