"""Samplers by short name, built per generation from the loaded model's own scheduler config.

The names follow the samplers users pick in AUTOMATIC1111 / ComfyUI; the mapping to diffusers
classes and init arguments is the one diffusers documents for A1111's k-diffusion samplers
(diffusers' "Schedulers" API overview page):

    euler                 Euler                EulerDiscreteScheduler
    euler_a               Euler a              EulerAncestralDiscreteScheduler
    dpmpp_2m              DPM++ 2M             DPMSolverMultistepScheduler
    dpmpp_2m_karras       DPM++ 2M Karras      DPMSolverMultistepScheduler, use_karras_sigmas
    dpmpp_2m_sde_karras   DPM++ 2M SDE Karras  DPMSolverMultistepScheduler, use_karras_sigmas,
                                               algorithm_type="sde-dpmsolver++"
    dpmpp_sde_karras      DPM++ SDE Karras     DPMSolverSDEScheduler, use_karras_sigmas
    ddim                  DDIM                 DDIMScheduler, clip_sample false
    pndm                  PLMS                 PNDMScheduler, skip_prk_steps
    lcm                   LCM                  LCMScheduler
    unipc                 UniPC                UniPCMultistepScheduler

Building from the model's config keeps what is a fact of the checkpoint (betas, number of
training steps, timestep spacing, prediction type) and changes only the sampling algorithm.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from diffusers import (
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    DPMSolverSDEScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    LCMScheduler,
    PNDMScheduler,
    UniPCMultistepScheduler,
)

from modelhost.errors import InvalidRequestError

PREDICTION_TYPES = ("epsilon", "v_prediction")


@dataclass(frozen=True)
class _Sampler:
    cls: Any
    overrides: Mapping[str, Any] = field(default_factory=dict)


_KARRAS = {"use_karras_sigmas": True}
# Named explicitly where the class has the option: the model's own config may turn it on.
_NO_KARRAS = {"use_karras_sigmas": False}

SAMPLERS: dict[str, _Sampler] = {
    "euler": _Sampler(EulerDiscreteScheduler, _NO_KARRAS),
    "euler_a": _Sampler(EulerAncestralDiscreteScheduler),
    "dpmpp_2m": _Sampler(
        DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++", **_NO_KARRAS}
    ),
    "dpmpp_2m_karras": _Sampler(
        DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++", **_KARRAS}
    ),
    "dpmpp_2m_sde_karras": _Sampler(
        DPMSolverMultistepScheduler, {"algorithm_type": "sde-dpmsolver++", **_KARRAS}
    ),
    "dpmpp_sde_karras": _Sampler(DPMSolverSDEScheduler, _KARRAS),
    # Latents are not images in [-1, 1]: clipping them, DDIM's default, ruins the result
    # (Stable Diffusion's own configs say clip_sample false).
    "ddim": _Sampler(DDIMScheduler, {"clip_sample": False}),
    # PLMS as Stable Diffusion ships it: without the Runge-Kutta warm-up steps, which also
    # cannot fit in a handful of steps.
    "pndm": _Sampler(PNDMScheduler, {"skip_prk_steps": True}),
    "lcm": _Sampler(LCMScheduler),
    "unipc": _Sampler(UniPCMultistepScheduler),
}

SCHEDULER_NAMES = tuple(SAMPLERS)


def check_scheduler_name(name: str) -> None:
    """Raises InvalidRequestError naming the allowed list; "" (the model's own) is allowed."""
    if name and name not in SAMPLERS:
        raise InvalidRequestError(
            f"scheduler must be one of {', '.join(SCHEDULER_NAMES)} (or empty for the "
            f"model's own), got '{name}'"
        )


def check_prediction_type(value: str) -> None:
    if value and value not in PREDICTION_TYPES:
        raise InvalidRequestError(
            f"prediction_type must be one of {', '.join(PREDICTION_TYPES)} (or empty), "
            f"got '{value}'"
        )


def build_scheduler(base: Any, name: str, prediction_type: str, seed: int) -> Any:
    """A fresh scheduler for one generation: the named sampler ("" = the class of `base`, the
    model's own) from `base`'s config, with the prediction type overridden when one is given.

    Fresh every time because schedulers keep per-run state (timesteps, step index, a noise
    sampler) and `base` must stay as loaded for the next generation.
    """
    check_scheduler_name(name)
    check_prediction_type(prediction_type)
    sampler = SAMPLERS[name] if name else _Sampler(type(base))
    overrides: dict[str, Any] = dict(sampler.overrides)
    if prediction_type:
        overrides["prediction_type"] = prediction_type
    if sampler.cls is DPMSolverSDEScheduler:
        # Its Brownian-tree noise is seeded from torch's global generator unless given a
        # seed, which would make the same request give a different image each time.
        overrides["noise_sampler_seed"] = seed
    return sampler.cls.from_config(base.config, **overrides)


def noise_per_call(base: Any, name: str) -> bool:
    """Whether the sampler draws its noise from one seed per pipeline call rather than from
    the per-image generators: such members cannot share a call and keep their own images."""
    sampler = SAMPLERS[name] if name else _Sampler(type(base))
    return sampler.cls is DPMSolverSDEScheduler


def check_steps(scheduler: Any, steps: int) -> None:
    """LCM samples a fixed subset of the schedule it was distilled on: diffusers refuses more
    steps than that schedule has (a ValueError deep in the call), so say so up front."""
    limit = getattr(scheduler.config, "original_inference_steps", None)
    if isinstance(scheduler, LCMScheduler) and isinstance(limit, int) and steps > limit:
        raise InvalidRequestError(
            f"steps: the lcm sampler takes at most {limit} steps (its original_inference_steps), "
            f"got {steps}"
        )
