"""The spectral estimator of the bake-off (bench/spectral_kernel.py): each of its steps on cases where the
answer is known."""

from __future__ import annotations

import numpy as np
from scipy.signal import fftconvolve

from bench.kernel_estimation import kernel_l1
from bench.spectral_kernel import kernel_autocorrelation, phase_retrieval, spectral_kernel
from service.deconvolution import to_linear, to_srgb
from service.kernel_estimation import luminance_linear
from training.data.kernels import splat

CANVAS = 21


def _streak(length: int, ramp: float = 0.0) -> np.ndarray:
    """A horizontal streak on a CANVAS² canvas, brighter toward its right end by `ramp`."""
    xs = np.linspace(-(length - 1) / 2, (length - 1) / 2, length * 4)
    points = np.stack([xs + CANVAS // 2, np.full_like(xs, CANVAS // 2)], 1)
    return splat(points, 1 + ramp * (xs - xs.min()) / np.ptp(xs), CANVAS)


def _blurred(sharp: np.ndarray, kernel: np.ndarray, noise: float = 0.002) -> np.ndarray:
    linear = np.stack([fftconvolve(to_linear(sharp)[..., c], kernel, mode="same") for c in range(3)], -1)
    noisy = linear + noise * np.random.default_rng(1).standard_normal(linear.shape)
    return to_srgb(noisy).astype(np.float32)


def _natural_photo(size: int = 192) -> np.ndarray:
    """Noise shaped to a 1/f amplitude spectrum, a natural photo's: its gradients are white."""
    rng = np.random.default_rng(0)
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(size), np.fft.fftfreq(size)))
    gray = np.fft.ifft2(np.fft.fft2(rng.standard_normal((size, size))) / np.maximum(f, 1 / size)).real
    gray = 0.1 + 0.8 * (gray - gray.min()) / np.ptp(gray)
    return gray[..., None].repeat(3, -1).astype(np.float32)


def test_phase_retrieval_recovers_a_symmetric_kernel_from_its_exact_autocorrelation() -> None:
    kernel = _streak(11)
    auto = fftconvolve(kernel, kernel[::-1, ::-1])
    estimate = phase_retrieval(auto, np.random.default_rng(0))
    assert estimate.shape == (CANVAS, CANVAS) and estimate.min() >= 0
    assert kernel_l1(estimate, kernel) < 0.3


def test_the_blurred_photos_autocorrelation_runs_along_the_blur() -> None:
    auto = kernel_autocorrelation(luminance_linear(_blurred(_natural_photo(), _streak(13))), CANVAS)
    centre = CANVAS - 1
    along, across = auto[centre, centre + 6], auto[centre + 6, centre]
    assert along > 5 * max(across, 1e-12)


def test_the_180_degree_ambiguity_is_settled_by_the_guide() -> None:
    sharp = _natural_photo()
    kernel = _streak(11, ramp=3.0)
    estimate = spectral_kernel(_blurred(sharp, kernel), sharp, CANVAS)
    assert kernel_l1(estimate, kernel) < min(0.5, kernel_l1(estimate, kernel[::-1, ::-1]))
