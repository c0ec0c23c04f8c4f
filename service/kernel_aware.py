"""The kernel-aware chain's hint: guide → blind kernel → Wiener deconvolution, in numpy.

A refinement network sees this deconvolution beside the blurred photo (docs/kernel-aware.md). One home
for the chain's settings, because the training data (training/data/hinted.py) must make exactly the
hint the service makes: a refiner trained on one deconvolution and served another is untested.
"""

from __future__ import annotations

import numpy as np

from .deconvolution import wiener
from .kernel_estimation import clean_kernel, support_kernel

HINT_NAME = "wiener"  # metadata `hint` of a model trained on this hint; changing the settings below renames it
HINT_CHANNELS = 3  # the deconvolution, sRGB, stacked after the photo's 3 channels
HINT_CANVAS = 45  # the estimate's square support (px): holds the training generator's 41 px blur
HINT_WEIGHT = 0.03  # Wiener gradient-prior weight (bench.deconvolution's choice)
HINT_BOUNDARY_ITERATIONS = 2  # fewer than the filter's default 8: the refiner cleans edges, 720p must be fast


def wiener_hint(blurred: np.ndarray, guide: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(deconvolution of `blurred` with the kernel estimated against `guide`, that kernel); sRGB in and out."""
    kernel = clean_kernel(support_kernel(blurred, guide, HINT_CANVAS))
    return wiener(blurred, kernel, HINT_WEIGHT, HINT_BOUNDARY_ITERATIONS), kernel


def hinted_input(blurred: np.ndarray, guide: np.ndarray) -> np.ndarray:
    """H×W×6 float32: the photo, then its hint clipped to [0, 1] (what a kernel-aware model reads)."""
    hint, _ = wiener_hint(blurred, guide)
    return np.concatenate([blurred, np.clip(hint, 0.0, 1.0)], -1).astype(np.float32)
