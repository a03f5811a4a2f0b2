"""Super-resolution models (ESRGAN family and whatever else spandrel recognises)."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from spandrel import ImageModelDescriptor, ModelLoader, UnsupportedModelError

from modelhost.engine.checkpoint import PICKLE_SUFFIXES
from modelhost.engine.pipelines import BUILD_LOCK
from modelhost.errors import InvalidModelError, ModelFileNotFoundError


@dataclass
class Upscaler:
    path: str
    model: ImageModelDescriptor  # type: ignore[type-arg]
    bytes: int

    @property
    def scale(self) -> int:
        return int(self.model.scale)

    def to(self, device: torch.device) -> None:
        self.model.to(device)

    @property
    def module(self) -> torch.nn.Module:
        """The network holding the weights (the descriptor reads its device from them)."""
        return self.model.model


def load_upscaler(
    path: Path, device: torch.device, dtype: torch.dtype, allow_pickle: bool
) -> Upscaler:
    if not path.is_file():
        raise ModelFileNotFoundError(str(path))
    if path.suffix.lower() in PICKLE_SUFFIXES and not allow_pickle:
        raise InvalidModelError(
            f"{path}: pickle files can run arbitrary code and are refused; "
            "convert it to .safetensors or start the model host with --allow-pickle"
        )
    try:
        with BUILD_LOCK:  # modules made while a pipeline is built elsewhere would be meta
            descriptor = ModelLoader(device="cpu").load_from_file(path)
    except (UnsupportedModelError, ValueError, KeyError, RuntimeError, OSError) as e:
        reason = (str(e).strip() or type(e).__name__).splitlines()[0]
        raise InvalidModelError(f"cannot load upscaler {path}: {reason}") from e
    if not isinstance(descriptor, ImageModelDescriptor) or descriptor.scale < 2:
        raise InvalidModelError(f"{path}: not a super-resolution model")
    # Half precision only where the architecture is known to survive it; ESRGANs do.
    if dtype == torch.float16 and descriptor.supports_half:
        descriptor.half()
    elif dtype == torch.bfloat16 and descriptor.supports_bfloat16:
        descriptor.bfloat16()
    descriptor.eval()
    descriptor.to(device)
    size = sum(
        t.numel() * t.element_size()
        for t in [*descriptor.model.parameters(), *descriptor.model.buffers()]
    )
    return Upscaler(path=str(path), model=descriptor, bytes=size)


def upscale(upscaler: Upscaler, image: Image.Image, scale: int) -> Image.Image:
    """The image at `scale` times its size (0: the model's own scale)."""
    model = upscaler.model
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    tensor = torch.from_numpy(pixels).permute(2, 0, 1).unsqueeze(0)
    tensor = tensor.to(device=model.device, dtype=model.dtype)
    with torch.inference_mode():
        output = model(tensor)
    array = output.squeeze(0).permute(1, 2, 0).float().clamp(0, 1).cpu().numpy()
    result = Image.fromarray((array * 255.0).round().astype(np.uint8))
    target = scale or upscaler.scale
    size = (image.width * target, image.height * target)
    if result.size != size:
        result = result.resize(size, Image.Resampling.LANCZOS)
    return result
