"""The classical estimator of the bake-off (bench/map_kernel.py): its steps on cases where the answer is
known, and the whole coarse-to-fine loop on a blurred picture of hard edges."""

from __future__ import annotations

import numpy as np
from scipy.signal import fftconvolve

from bench.kernel_estimation import kernel_l1
from bench.map_kernel import initial_kernel, kernel_from_latent, l0_latent, level_sizes, map_kernel, prune
from training.data.kernels import splat

CANVAS = 21


def _streak(length: int, angle: float) -> np.ndarray:
    t = np.linspace(-(length - 1) / 2, (length - 1) / 2, length * 4)
    points = np.stack([CANVAS // 2 + t * np.cos(angle), CANVAS // 2 + t * np.sin(angle)], 1)
    return splat(points, np.ones_like(t), CANVAS)


def _blocks(size: int = 160) -> np.ndarray:
    """Random flat rectangles: the step edges an L0 prior is made for."""
    rng = np.random.default_rng(0)
    gray = np.full((size, size), 0.5)
    for _ in range(40):
        y, x = rng.integers(0, size - 20, 2)
        h, w = rng.integers(8, 40, 2)
        gray[y:y + h, x:x + w] = rng.uniform(0.1, 0.9)
    return gray


def _blur(gray: np.ndarray, kernel: np.ndarray, noise: float = 0.003) -> np.ndarray:
    blurred = fftconvolve(np.pad(gray, CANVAS, mode="reflect"), kernel, mode="same")[CANVAS:-CANVAS, CANVAS:-CANVAS]
    return blurred + noise * np.random.default_rng(1).standard_normal(gray.shape)


def test_levels_are_odd_and_grow_to_the_canvas() -> None:
    sizes = level_sizes(61)
    assert sizes[0] == 5 and sizes[-1] == 61 and all(s % 2 for s in sizes)
    assert all(a < b <= a * 1.6 for a, b in zip(sizes, sizes[1:], strict=False))
    assert level_sizes(5) == [5]


def test_the_l0_latent_with_the_true_kernel_is_sharper_than_the_photo() -> None:
    sharp = _blocks()
    kernel = _streak(9, 0.3)
    blurred = _blur(sharp, kernel)
    latent = l0_latent(blurred, kernel, 1e-3)
    inner = np.s_[12:-12, 12:-12]
    assert np.abs(latent - sharp)[inner].mean() < 0.5 * np.abs(blurred - sharp)[inner].mean()


def test_the_kernel_step_recovers_the_kernel_from_the_sharp_picture() -> None:
    sharp = _blocks()
    kernel = _streak(11, 1.0)
    estimate = kernel_from_latent(_blur(sharp, kernel), sharp, CANVAS)
    assert estimate.min() >= 0 and np.isclose(estimate.sum(), 1)
    assert kernel_l1(estimate, kernel) < 0.5


def test_pruning_cuts_small_islands_and_keeps_the_path() -> None:
    kernel = np.zeros((CANVAS, CANVAS))
    kernel[10, 4:15] = 1.0
    kernel[2, 2] = 0.5  # an island holding 4 % of the mass
    kernel[18, 18] = 0.01  # under the floor
    pruned = prune(kernel)
    assert pruned[2, 2] == 0 and pruned[18, 18] == 0
    assert np.isclose(pruned[10, 4:15].sum(), 1)


def test_coarse_to_fine_estimates_a_streak_blind() -> None:
    sharp = _blocks()
    kernel = _streak(13, 0.6)
    rgb = np.repeat(_blur(sharp, kernel)[..., None], 3, -1).clip(0, 1).astype(np.float32)
    estimate = map_kernel(rgb, CANVAS)
    assert estimate.shape == (CANVAS, CANVAS)
    assert kernel_l1(estimate, kernel) < 1.0
    assert kernel_l1(estimate, kernel) < kernel_l1(initial_kernel(CANVAS), kernel) - 0.8


def test_the_hybrid_takes_the_classical_estimate_only_for_long_blur() -> None:
    from bench.kernel_estimation import HYBRID_EXTENT, hybrid, kernel_extent
    long_streak = np.zeros((61, 61))
    long_streak[30, 5:5 + HYBRID_EXTENT] = 1.0
    short = _streak(7, 0.0)
    fallback = np.full((9, 9), 1 / 81)
    assert kernel_extent(long_streak) == HYBRID_EXTENT and kernel_extent(short) <= 8
    assert hybrid(lambda b, k: long_streak, lambda b, k: fallback)(None, None) is long_streak
    assert hybrid(lambda b, k: short, lambda b, k: fallback)(None, None) is fallback
