"""Several generations as one pipeline call, each member keeping what it would get alone.

Members that agree on everything but prompt, negative prompt and seed share one call:
a batch of N images costs far less than N calls, since the model's weights are read once
per step for all of them. Each member keeps

- its image: its noise comes from its own generator and seed, so the image is the one it
  gets alone, up to the last bits of batched float arithmetic;
- its progress: every step is reported to each member still wanted;
- its cancel: a cancelled member's image is dropped while the others run on; only when
  every member of a call is cancelled does the call stop early;
- its failure: a shared call that fails (out of memory with N images, or any error) is
  retried one member at a time, so only a member that fails alone fails.

Members that cannot share a call (other settings, or a sampler whose noise comes from one
seed per call) run in calls of their own, in order.
"""

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from modelhost.engine.generation import Claim
from modelhost.engine.host import ModelHost
from modelhost.engine.pipelines import encode_png, generate_images
from modelhost.engine.schedulers import check_scheduler_name, noise_per_call
from modelhost.engine.types import GeneratedImage, GenerateParams, Progress
from modelhost.errors import GenerationCancelledError, InvalidRequestError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchMember:
    params: GenerateParams
    on_progress: Callable[[Progress], None]
    cancel: threading.Event


# A member's outcome: its image, or why it has none (GenerationCancelledError when cancelled).
Outcome = GeneratedImage | Exception


def group_key(params: GenerateParams) -> tuple[object, ...]:
    """What members must share to run as one call. Whether a negative prompt is given
    counts too: without one, SDXL conditions on zeros rather than on an empty prompt."""
    return (
        params.key,
        params.width,
        params.height,
        params.steps,
        params.guidance_scale,
        params.scheduler,
        params.superres,
        params.clip_skip,
        bool(params.negative_prompt),
    )


def generate_batch(host: ModelHost, members: Sequence[BatchMember]) -> list[Outcome]:
    """Every member's outcome, in the members' order. Never raises for a member's sake."""
    groups: dict[tuple[object, ...], list[int]] = {}
    for index, member in enumerate(members):
        groups.setdefault(group_key(member.params), []).append(index)
    outcomes: dict[int, Outcome] = {}
    for indices in groups.values():
        group = [members[i] for i in indices]
        outcomes.update(zip(indices, _run_group(host, group), strict=True))
    return [outcomes[i] for i in range(len(members))]


def _run_group(host: ModelHost, group: list[BatchMember]) -> list[Outcome]:
    if len(group) == 1:
        return [_alone(host, group[0])]
    try:
        return _shared(host, group)
    except Exception as error:
        # Only its text is kept: retried outside this block, since the exception's
        # traceback holds the failed call's activations.
        reason = f"{type(error).__name__}: {error}"
    host.device.release_cached_memory()
    log.warning(
        "a batch of %d on '%s' failed (%s): running its members one at a time",
        len(group),
        group[0].params.key,
        reason,
    )
    return [_alone(host, member) for member in group]


def _alone(host: ModelHost, member: BatchMember) -> Outcome:
    if member.cancel.is_set():
        return GenerationCancelledError()
    try:
        return host.generate(member.params, member.on_progress, member.cancel)
    except Exception as error:
        return error


def _shared(host: ModelHost, group: list[BatchMember]) -> list[Outcome]:
    """The group as one pipeline call (or, for a sampler with noise per call, one call
    per member under the same claim on the device)."""
    first = group[0].params
    if first.steps < 1:
        raise InvalidRequestError("steps must be at least 1")
    check_scheduler_name(first.scheduler)
    with host.claimed(first.key, first.superres) as claim:
        if noise_per_call(claim.pipe.scheduler, first.scheduler):
            return [_call(claim, [member])[0] for member in group]
        return _call(claim, group)


def _call(claim: Claim, group: list[BatchMember]) -> list[Outcome]:
    started = time.perf_counter()
    steps = group[0].params.steps

    def on_step(step: int) -> None:
        progress = Progress(step, steps, time.perf_counter() - started)
        for member in group:
            if not member.cancel.is_set():
                member.on_progress(progress)

    if all(member.cancel.is_set() for member in group):
        return [GenerationCancelledError() for _ in group]
    images = generate_images(
        claim.pipe,
        [member.params for member in group],
        on_step,
        lambda: all(member.cancel.is_set() for member in group),
        claim.prediction_type,
    )
    if images is None:
        return [GenerationCancelledError() for _ in group]
    outcomes: list[Outcome] = []
    for member, image in zip(group, images, strict=True):
        if member.cancel.is_set():
            outcomes.append(GenerationCancelledError())
            continue
        image = claim.finish(image)
        outcomes.append(
            GeneratedImage(
                png=encode_png(image),
                seed=member.params.seed,
                width=image.width,
                height=image.height,
                superres_applied=member.params.superres,
            )
        )
    return outcomes
