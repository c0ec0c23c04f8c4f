"""The kernel-aware chain's hint: guide → blind kernel → Wiener deconvolution, in numpy.

A refinement network sees this deconvolution beside the blurred photo (docs/kernel-aware.md). One home
for the chain's settings, because the training data (training/data/hinted.py) must make exactly the
hint the service makes: a refiner trained on one deconvolution and served another is untested.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .deconvolution import to_srgb, wiener, wiener_linear
from .kernel_estimation import clean_kernel, forward_gradients, luminance_linear, support_kernel
from .line_kernel import line_kernel

HINT_NAME = "wiener"  # metadata `hint` of a model trained on this hint; changing the settings below renames it
CORRECTED_HINT_NAME = "wiener-corrected"  # the same hint, its kernel corrected by a net (service/kernel_correction.py)
# the corrected hint, then the luminance of a deconvolution with the photo's cepstral streak (service/line_kernel.py)
LINE_HINT_NAME = "wiener-corrected+line"
HINT_NAMES = (HINT_NAME, CORRECTED_HINT_NAME, LINE_HINT_NAME)
CORRECTED_HINTS = (CORRECTED_HINT_NAME, LINE_HINT_NAME)  # the hints whose kernel a corrector net makes
HINT_CHANNELS = 3  # the deconvolution, sRGB, stacked after the photo's 3 channels
LINE_HINT_CHANNELS = 1  # the streak deconvolution's luminance (sRGB): a third of a colour one's cost
HINT_CANVAS = 45  # the estimate's square support (px): holds the training generator's 41 px blur
HINT_WEIGHT = 0.03  # Wiener gradient-prior weight (bench.deconvolution's choice)
HINT_BOUNDARY_ITERATIONS = 2  # fewer than the filter's default 8: the refiner cleans edges, 720p must be fast
# The kernel is estimated on one square of the photo, the most textured: the guide then runs on 2×2 of
# the default 256 px tiles instead of the whole photo (a tenth of a 720p frame's). Training crops are
# smaller than this, so a refiner only ever learned from estimates made on less.
HINT_REGION = 480
REGION_STRIDE = 16  # px between the windows compared

Window = tuple[slice, slice]
GuideOf = Callable[[Window], np.ndarray]  # a window of the photo → the guide's output for that window
KernelOf = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (the estimation region, the guide on it) → kernel


def hint_groups(hint: str) -> tuple[int, ...]:
    """The channel groups a model with this hint reads after the photo's 3, in order (each has its own stem)."""
    if not hint:
        return ()
    return (HINT_CHANNELS, LINE_HINT_CHANNELS) if hint == LINE_HINT_NAME else (HINT_CHANNELS,)


def estimation_shape(height: int, width: int) -> tuple[int, int]:
    """The size of the region the kernel is estimated on, for a photo of this size."""
    return min(height, HINT_REGION), min(width, HINT_REGION)


def estimation_region(blurred: np.ndarray) -> Window:
    """The window of `estimation_shape` with the most gradient energy (the whole photo if it is smaller):
    edges are what the estimate is fitted on, and a flat sky or wall carries none."""
    height, width = blurred.shape[:2]
    rows, cols = estimation_shape(height, width)
    if (rows, cols) == (height, width):
        return slice(None), slice(None)
    energy = np.hypot(*forward_gradients(luminance_linear(blurred, np.float32)))
    integral = np.pad(energy.astype(np.float64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))  # sums of ~1e6 pixels
    ys = np.unique(np.r_[np.arange(0, height - rows + 1, REGION_STRIDE), height - rows])[:, None]
    xs = np.unique(np.r_[np.arange(0, width - cols + 1, REGION_STRIDE), width - cols])[None, :]
    sums = integral[ys + rows, xs + cols] - integral[ys, xs + cols] - integral[ys + rows, xs] + integral[ys, xs]
    i, j = np.unravel_index(int(np.argmax(sums)), sums.shape)
    y, x = int(ys[i, 0]), int(xs[0, j])
    return slice(y, y + rows), slice(x, x + cols)


def estimate_kernel(region: np.ndarray, guide: np.ndarray) -> np.ndarray:
    """The hint's blind estimate: `support_kernel` against the guide, cleaned into a PSF."""
    return clean_kernel(support_kernel(region, guide, HINT_CANVAS))


def wiener_hint(blurred: np.ndarray, guide_of: GuideOf, kernel_of: KernelOf = estimate_kernel,
                window: Window | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(Wiener deconvolution of the whole of `blurred`, the kernel estimated on its estimation region
    against `guide_of(region)`); sRGB in and out. `kernel_of` swaps the estimator (benchmarks do)."""
    window = window or estimation_region(blurred)
    kernel = kernel_of(blurred[window], guide_of(window))
    return wiener(blurred, kernel, HINT_WEIGHT, HINT_BOUNDARY_ITERATIONS), kernel


def line_hint(blurred: np.ndarray, window: Window | None = None,
              kernel_of: Callable[[np.ndarray], np.ndarray] = line_kernel) -> tuple[np.ndarray, np.ndarray]:
    """(H×W×1 sRGB luminance of the whole photo deconvolved with the cepstral streak of its estimation
    region, that streak): the second hint of LINE_HINT_NAME, made without a guide. `kernel_of` swaps the
    estimator (training hands some samples their true kernel)."""
    kernel = kernel_of(blurred[window or estimation_region(blurred)])
    return to_srgb(wiener_linear(luminance_linear(blurred, np.float32)[..., None], kernel, HINT_WEIGHT,
                                 HINT_BOUNDARY_ITERATIONS)), kernel


def hinted_input(blurred: np.ndarray, guide_of: GuideOf, kernel_of: KernelOf = estimate_kernel,
                 hint: str = HINT_NAME, line_kernel_of: Callable[[np.ndarray], np.ndarray] = line_kernel
                 ) -> np.ndarray:
    """H×W×(3 + the hint's groups) float32: the photo, then its hints clipped to [0, 1] (what a kernel-aware
    model reads). Only `hint`'s channel groups matter here: the kernels come from `kernel_of` (guided)
    and `line_kernel_of` (the line hint's)."""
    window = estimation_region(blurred)
    hints = [wiener_hint(blurred, guide_of, kernel_of, window)[0]]
    if hint == LINE_HINT_NAME:
        hints.append(line_hint(blurred, window, line_kernel_of)[0])
    return np.concatenate([blurred, *(np.clip(h, 0.0, 1.0) for h in hints)], -1).astype(np.float32)
