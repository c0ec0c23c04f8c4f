"""Bake-off estimator (i): classical coarse-to-fine MAP estimation with an L0 gradient prior.

Pan, Hu, Su & Yang (2014) / Xu, Zheng & Jia (2013), training-free. A blur that is 45 px at full size is
5 px on a photo shrunk ninefold, where any estimate is nearly right; each finer level starts from the
coarser kernel, upsampled. At every level it alternates two steps a few times:

- **latent image**: argmin_x |k ∗ x − b|² + λ·#{∇x ≠ 0}, by half-quadratic splitting (Xu 2011's L0
  smoothing with the blur in the data term). The L0 prior keeps only the strong, step-like edges, which
  are what a kernel can be read from (Cho & Lee's edge prediction without a shock filter);
- **kernel**: the non-negative kernel on the level's support that maps the latent's gradients onto the
  photo's (the service's `solve_support`), small values and islands cut, then normalised.

λ shrinks by 1/1.1 per iteration, so finer edges join as the kernel improves. Unlike the service's
estimate it needs no guide network, so it does not inherit a guide's blindness to blur it never learned.
Here for the benchmark (`python -m bench.kernel_estimation --map`); its settings were chosen on photos
of the training split only (`--tune-map`).
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy.ndimage import label

from service.deconvolution import gradient_power, kernel_otf
from service.fft import fast_length
from service.kernel_estimation import (
    LUMINANCE,
    clean_kernel,
    forward_gradients,
    gradient_normal_equations,
    selected_gradients,
    solve_support,
)

MAP_CANVAS = 61  # px: the benchmark's support for it, as large as corrector2's (blur past 45 px needs room)
LEVEL_RATIO = 2 ** -0.5  # kernel (and photo) size ratio between pyramid levels
COARSEST_KERNEL = 5  # px: the kernel's size at the coarsest level
ITERATIONS = 5  # latent/kernel alternations per level
L0_WEIGHT = 1e-3  # λ at the start of every level, for sRGB intensities in [0, 1]
L0_WEIGHT_FLOOR = 1e-4
L0_WEIGHT_DECAY = 1.1
SPLIT_GROWTH = 2.0  # the splitting weight's growth per inner step (κ)
SPLIT_MAX = 1e5
KERNEL_RIDGE = 0.05  # relative to the normal matrix's diagonal: the latent's edges are sharp, unlike a guide's
KERNEL_FLOOR = 0.05  # share of the peak below which a kernel value is noise
COMPONENT_MASS = 0.1  # share of the kernel's mass below which a connected piece is noise
EDGE_FRACTION = 0.05  # the latent's strongest gradients the kernel is fitted on
KERNEL_ITERATIONS = 100


def resize(gray: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear (area-aware when shrinking) resampling of a float image to `shape` (rows, columns)."""
    image = Image.fromarray(gray.astype(np.float32), mode="F")
    return np.asarray(image.resize((shape[1], shape[0]), Image.Resampling.BILINEAR), dtype=np.float64)


def level_sizes(canvas: int) -> list[int]:
    """Odd kernel sizes from the coarsest level to `canvas`, each about LEVEL_RATIO of the next."""
    sizes = [canvas]
    while sizes[-1] > COARSEST_KERNEL:
        smaller = int(np.ceil(sizes[-1] * LEVEL_RATIO)) | 1
        sizes.append(max(COARSEST_KERNEL, smaller if smaller < sizes[-1] else sizes[-1] - 2))
    return sizes[::-1]


def l0_latent(blurred: np.ndarray, kernel: np.ndarray, weight: float) -> np.ndarray:
    """argmin_x |k ∗ x − b|² + weight·#{∇x ≠ 0} by half-quadratic splitting, on a reflected border."""
    pad = kernel.shape[0]
    height, width = blurred.shape
    shape = (fast_length(height + 2 * pad), fast_length(width + 2 * pad))
    padded = np.pad(blurred, ((pad, shape[0] - height - pad), (pad, shape[1] - width - pad)), mode="reflect")
    otf = kernel_otf(kernel, shape)
    data = np.conj(otf) * np.fft.rfft2(padded)
    kernel_power, prior_power = np.abs(otf) ** 2, gradient_power(shape)
    latent = padded
    beta = 2 * weight
    while beta < SPLIT_MAX:
        gx = np.roll(latent, -1, 1) - latent
        gy = np.roll(latent, -1, 0) - latent
        small = gx * gx + gy * gy < weight / beta
        gx[small] = 0
        gy[small] = 0
        divergence = (np.roll(gx, 1, 1) - gx) + (np.roll(gy, 1, 0) - gy)  # Dᵀ of the forward differences
        latent = np.fft.irfft2((data + beta * np.fft.rfft2(divergence)) / (kernel_power + beta * prior_power), shape)
        beta *= SPLIT_GROWTH
    return latent[pad:pad + height, pad:pad + width]


def kernel_from_latent(blurred: np.ndarray, latent: np.ndarray, size: int,
                       edge_fraction: float = EDGE_FRACTION) -> np.ndarray:
    """The non-negative size×size kernel mapping the latent's strongest interior gradients onto the photo's."""
    band = size // 2 + 1  # the latent is least trustworthy where the reflected border reaches
    interior = np.zeros_like(latent)
    interior[band:-band, band:-band] = 1
    latent_gradients = tuple(g * interior for g in selected_gradients(latent, edge_fraction))
    kernel = solve_support(*gradient_normal_equations(forward_gradients(blurred), latent_gradients, size),
                           ridge=KERNEL_RIDGE, iterations=KERNEL_ITERATIONS)
    return prune(kernel)


def prune(kernel: np.ndarray) -> np.ndarray:
    """Values under KERNEL_FLOOR of the peak and 8-connected pieces under COMPONENT_MASS of the total cut,
    then unit sum: a motion PSF is one connected path, and noise scatters small islands over the canvas."""
    if kernel.max() <= 0:
        return delta(kernel.shape[0])
    k = np.where(kernel < KERNEL_FLOOR * kernel.max(), 0.0, kernel)
    pieces, count = label(k > 0, structure=np.ones((3, 3)))
    masses = np.bincount(pieces.ravel(), weights=k.ravel(), minlength=count + 1)
    masses[0] = 0
    k[masses[pieces] < min(COMPONENT_MASS * k.sum(), masses.max())] = 0  # the heaviest piece always stays
    return k / k.sum()


def delta(size: int) -> np.ndarray:
    k = np.zeros((size, size))
    k[size // 2, size // 2] = 1
    return k


def upsample_kernel(kernel: np.ndarray, size: int) -> np.ndarray:
    """The kernel resampled onto a size×size canvas, non-negative, unit sum."""
    k = np.clip(resize(kernel, (size, size)), 0, None)
    return k / k.sum() if k.sum() > 0 else delta(size)


def initial_kernel(size: int) -> np.ndarray:
    """Two centre pixels side by side (Pan 2014's start): a delta would make the first latent the photo."""
    k = np.zeros((size, size))
    k[size // 2, size // 2 - 1:size // 2 + 1] = 0.5
    return k


def map_kernel(blurred_srgb: np.ndarray, canvas: int, l0_weight: float = L0_WEIGHT,
               edge_fraction: float = EDGE_FRACTION) -> np.ndarray:
    """The blur kernel of an sRGB photo on a canvas×canvas support, centroid-centred, coarse to fine."""
    gray = blurred_srgb.astype(np.float64) @ np.array(LUMINANCE)  # sRGB, as the L0 weight was chosen
    sizes = level_sizes(canvas)
    kernel = initial_kernel(sizes[0])
    for size in sizes:
        scale = size / canvas
        level = resize(gray, (max(size, round(gray.shape[0] * scale)), max(size, round(gray.shape[1] * scale))))
        kernel = upsample_kernel(kernel, size) if kernel.shape[0] != size else kernel
        weight = l0_weight
        for _ in range(ITERATIONS):
            latent = l0_latent(level, kernel, weight)
            kernel = kernel_from_latent(level, latent, size, edge_fraction)
            weight = max(weight / L0_WEIGHT_DECAY, L0_WEIGHT_FLOOR)
    return clean_kernel(kernel, KERNEL_FLOOR)
