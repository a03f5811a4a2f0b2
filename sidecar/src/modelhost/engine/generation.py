"""Generation on a resident key: its pipeline claimed (back from the RAM tier, its
adapters active, never evicted meanwhile) and run, one image or, through
engine.batch, several calls under one claim. Runs on the device thread, under the
host's device lock."""

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from PIL import Image

from modelhost.engine.pipelines import Pipeline, activate_adapters, encode_png, generate_image
from modelhost.engine.residency import Residency
from modelhost.engine.schedulers import check_scheduler_name
from modelhost.engine.types import GeneratedImage, GenerateParams, Progress
from modelhost.engine.upscaler import Upscaler, upscale
from modelhost.errors import (
    GenerationCancelledError,
    InvalidRequestError,
    NotLoadedError,
    OutOfMemoryError,
)


@dataclass(frozen=True)
class Claim:
    """A key's pipeline, held ready for generation (see ModelHost.claimed)."""

    pipe: Pipeline
    prediction_type: str
    upscaler: Upscaler | None  # None unless superres was asked
    superres_scale: int

    def finish(self, image: Image.Image) -> Image.Image:
        """The image as the caller gets it: upscaled when superres was asked."""
        if self.upscaler is None:
            return image
        return upscale(self.upscaler, image, self.superres_scale)


@contextlib.contextmanager
def claim(residency: Residency, key: str, superres: bool) -> Iterator[Claim]:
    """The key's pipeline, ready to run until the block ends; the caller holds the
    device lock."""
    entry = residency.keys.get(key)
    if entry is None:
        raise NotLoadedError(key)
    if superres and not entry.upscaler_file:
        raise InvalidRequestError(
            f"superres was asked but the load of '{key}' named no superres_model"
        )
    base = entry.base
    if base.parked:
        residency.unpark(base)
    residency.touch(entry)
    base.busy += 1
    try:
        if base.adapters and base.active != entry.adapters:
            activate_adapters(base.pipe, entry.adapters)
            base.active = entry.adapters
        shared = base.upscalers[entry.upscaler_file] if superres else None
        yield Claim(
            pipe=base.pipe,
            prediction_type=entry.spec.prediction_type,
            upscaler=shared.upscaler if shared else None,
            superres_scale=entry.spec.superres_scale,
        )
    finally:
        base.busy -= 1


def check_params(params: GenerateParams) -> None:
    if params.steps < 1:
        raise InvalidRequestError("steps must be at least 1")
    check_scheduler_name(params.scheduler)


def generate(
    residency: Residency,
    params: GenerateParams,
    on_progress: Callable[[Progress], None],
    cancel: threading.Event,
) -> GeneratedImage:
    """One image; the caller has checked the params and holds the device lock."""
    with claim(residency, params.key, params.superres) as claimed:
        started = time.perf_counter()
        out_of_memory = False
        try:
            image = generate_image(
                claimed.pipe,
                params,
                lambda step: on_progress(
                    Progress(step, params.steps, time.perf_counter() - started)
                ),
                cancel,
                claimed.prediction_type,
            )
            if image is not None and params.superres and claimed.upscaler is not None:
                image = upscale(claimed.upscaler, image, claimed.superres_scale)
        except torch.OutOfMemoryError:
            # Handled outside the except block: its traceback pins the activations.
            out_of_memory = True
        if out_of_memory:
            residency.device.release_cached_memory()
            raise OutOfMemoryError(
                f"out of memory generating {params.width}x{params.height} on '{params.key}'"
            )
    if image is None:
        raise GenerationCancelledError()
    return GeneratedImage(
        png=encode_png(image),
        seed=params.seed,
        width=image.width,
        height=image.height,
        superres_applied=params.superres,
    )
