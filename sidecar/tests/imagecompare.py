"""Comparing images made by different code paths, host instances or processes.

The same computation run two ways (a single-file load vs the in-memory pipeline, a
peft-wrapped Linear vs a plain one, two processes) may differ in the last bits of its
floats on some CPUs (measured: 1.6e-6 on an AMD EPYC, 0 on an Intel Xeon), and a value
on a rounding boundary then lands one grey level off. So such images are compared as
decoded pixels with a tolerance, and "this must change the image" is a minimum share of
pixels that moved by more than that tolerance. Bytes are compared exactly only where
the contract is exactness: the same request twice, in one process, on one code path.
"""

import io

import numpy as np
from PIL import Image

# The most two decoded images of the same computation may differ by, per channel.
GREY_LEVELS = 1
# The share of pixels a change that must show (a LoRA, its strength, the guidance, the
# seed...) moves by more than GREY_LEVELS. Measured on the tiny demo models: 49 % (another
# prompt) to 99 %; a quarter keeps far from both that and rounding noise.
MUST_CHANGE = 0.25


def pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)


def assert_same_pixels(actual: bytes, expected: bytes, what: str = "image") -> None:
    a, b = pixels(actual), pixels(expected)
    assert a.shape == b.shape, f"{what}: {a.shape} != {b.shape}"
    worst = int(np.abs(a - b).max())
    assert worst <= GREY_LEVELS, f"{what}: pixels differ by up to {worst} of 255 grey levels"


def changed_share(a: bytes, b: bytes) -> float:
    """The share of pixels where some channel differs by more than the tolerance."""
    x, y = pixels(a), pixels(b)
    assert x.shape == y.shape, f"{x.shape} != {y.shape}"
    return float((np.abs(x - y) > GREY_LEVELS).any(axis=-1).mean())


def assert_changed(a: bytes, b: bytes, what: str = "image", at_least: float = MUST_CHANGE) -> None:
    share = changed_share(a, b)
    assert share >= at_least, (
        f"{what}: only {share:.1%} of the pixels changed, {at_least:.0%} needed"
    )
