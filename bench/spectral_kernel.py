"""Bake-off estimator (ii): the kernel from the blurred photo's spectrum alone, then phase retrieval.

Goldstein & Fattal (2012), in its simplest 2-D form. A natural photo's gradients are close to white, so
the autocorrelation of the blurred photo's gradients is about the kernel's own autocorrelation k ⋆ k,
plus the noise's (known shape at lags 0 and ±1, scaled by a robust noise estimate). Gradients are first
divided by their local contrast (a Gaussian window of `CONTRAST_SIGMA` px), so one strong edge does not
dominate. The kernel's support is read from where that autocorrelation is significant, and the kernel
from its Fourier magnitude by Fienup's hybrid input-output with non-negativity and support, then error
reduction, keeping the best of a few random starts. k and its 180° rotation have the same spectrum: the
one whose blur of the guide's gradients fits the photo's better is kept.

Here for the benchmark only (`python -m bench.kernel_estimation --spectral`): it is not served.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter, label

from service.deconvolution import kernel_otf
from service.fft import fast_length
from service.kernel_estimation import centre_on_centroid, forward_gradients, luminance_linear

CONTRAST_SIGMA = 32.0  # px: local-contrast window of the gradient normalisation
SUPPORT_FRACTION = 0.05  # lags above this share of the autocorrelation's peak count as the kernel's reach
RESTARTS = 4
HIO_STEPS, ER_STEPS, HIO_BETA = 150, 50, 0.9


def noise_variance(gray: np.ndarray) -> float:
    """Per-pixel noise variance by Immerkær (1996): a mask that cancels locally planar and edge-like
    structure, so what it picks up from a blurred photo is mostly noise."""
    mask = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float64)
    response = sum(mask[i, j] * gray[i:gray.shape[0] - 2 + i, j:gray.shape[1] - 2 + j]
                   for i in range(3) for j in range(3))
    return float((np.sqrt(np.pi / 2) * np.mean(np.abs(response)) / 6) ** 2)


def kernel_autocorrelation(gray: np.ndarray, canvas: int) -> np.ndarray:
    """Estimate of k ⋆ k at lags within ±(canvas − 1), from the contrast-normalised gradients of `gray`."""
    gx, gy = forward_gradients(gray)
    contrast = np.sqrt(gaussian_filter(gx ** 2 + gy ** 2, CONTRAST_SIGMA)) + 1e-4
    reach = canvas - 1
    shape = tuple(fast_length(n + 2 * reach) for n in gray.shape)
    power = sum(np.abs(np.fft.rfft2(g / contrast, shape)) ** 2 for g in (gx, gy))
    auto = np.roll(np.fft.irfft2(power, shape), (reach, reach), (0, 1))[:2 * reach + 1, :2 * reach + 1]
    # forward differences of white noise: 4σ² at lag 0 and −σ² at the four nearest lags (summed over x, y)
    noise = noise_variance(gray) * float(np.sum(contrast ** -2.0))
    auto[reach, reach] -= 4 * noise
    for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):
        auto[reach + dy, reach + dx] += noise
    # most lags lie outside the kernel's reach: their typical value is the photo's own long-range correlation
    return np.clip(auto - np.median(auto), 0, None)


def support_extent(auto: np.ndarray) -> tuple[int, int]:
    """The kernel's (rows, columns) extent: the significant autocorrelation connected to lag 0 reaches
    ±(extent − 1) (a patch of correlation elsewhere is the photo's, not the blur's)."""
    centre = auto.shape[0] // 2
    regions, _ = label(auto > SUPPORT_FRACTION * auto.max())
    ys, xs = np.nonzero(regions == regions[centre, centre])
    return int(np.abs(ys - centre).max()) + 1, int(np.abs(xs - centre).max()) + 1


def phase_retrieval(auto: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A non-negative kernel whose autocorrelation is `auto`, on the canvas `auto` was made for."""
    canvas = (auto.shape[0] + 1) // 2
    n = fast_length(2 * auto.shape[0])
    grid = np.zeros((n, n))
    grid[:auto.shape[0], :auto.shape[1]] = auto
    magnitude = np.sqrt(np.clip(np.fft.fft2(np.roll(grid, (-(canvas - 1),) * 2, (0, 1))).real, 0, None))
    rows, cols = support_extent(auto)
    support = np.zeros((n, n), bool)
    support[:rows, :cols] = True
    best, best_error = None, np.inf
    for _ in range(RESTARTS):
        k = rng.random((n, n)) * support
        for step in range(HIO_STEPS + ER_STEPS):
            spectrum = np.fft.fft2(k)
            projected = np.fft.ifft2(magnitude * np.exp(1j * np.angle(spectrum))).real
            keep = support & (projected >= 0)
            k = np.where(keep, projected, k - HIO_BETA * projected if step < HIO_STEPS else 0.0)
        error = float(np.linalg.norm(np.abs(np.fft.fft2(k)) - magnitude))
        if error < best_error:
            best, best_error = k, error
    kernel = best[:rows, :cols]
    return centre_on_centroid(kernel / max(float(kernel.sum()), 1e-12), canvas)


def guide_misfit(kernel: np.ndarray, b: np.ndarray, g: np.ndarray) -> float:
    """Σ_d |k ∗ ∂_d g − ∂_d b|² away from the borders, for the blurred photo's and the guide's luminance
    in linear light (`luminance_linear`)."""
    shape = tuple(fast_length(n + kernel.shape[0]) for n in b.shape)
    otf = kernel_otf(kernel, shape)
    m = kernel.shape[0]
    misfit = 0.0
    for db, dg in zip(forward_gradients(b), forward_gradients(g), strict=True):
        predicted = np.fft.irfft2(np.fft.rfft2(dg, shape) * otf, shape)[:b.shape[0], :b.shape[1]]
        misfit += float(np.sum((predicted - db)[m:-m, m:-m] ** 2))
    return misfit


def spectral_kernel(blurred: np.ndarray, guide: np.ndarray, canvas: int, seed: int = 0) -> np.ndarray:
    """The spectral estimate (canvas², unit sum, centroid centred), its 180° ambiguity settled by `guide`."""
    b, g = luminance_linear(blurred), luminance_linear(guide)
    kernel = phase_retrieval(kernel_autocorrelation(b, canvas), np.random.default_rng(seed))
    rotated = centre_on_centroid(kernel[::-1, ::-1], canvas)
    return kernel if guide_misfit(kernel, b, g) <= guide_misfit(rotated, b, g) else rotated
