"""Blind blur-kernel estimation in numpy: the stage before deconvolution in the kernel-aware chain.

`least_squares_kernel` is the kernel update of Cho & Lee (2009) with the edge predictor swapped for a
network's output: given a sharp guide x̂ and the blurred image b (both in linear light), the kernel that
best maps the guide's gradients onto b's has a closed form in the Fourier domain,

    K = Σ_d conj(F(∂_d x̂)) F(∂_d b) / (Σ_d |F(∂_d x̂)|² + β·mean),

cropped to size×size around the origin. `clean_kernel` then makes it a PSF. The guide network is trained
through the same closed form (training/kernel_estimator.py), so the two must stay the same maths.

That Fourier form ignores the kernel's support: it solves for a full-image kernel and crops it, so
sensor noise at the frequencies the blur removed lands inside the crop. Handed the TRUE sharp photo as
guide it still scored a kernel L1 of 0.59 and −0.84 dB on the own protocol. `support_kernel` solves the
same least squares restricted to the size×size support, non-negative (Levin 2011, Cho & Lee's actual
kernel step): with the true sharp guide L1 0.12 and +1.85 dB; with the shipped model as guide L1 0.54
and +1.05 dB, 0 of 12 crops worse (docs/kernel-aware.md has the table and its command).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .deconvolution import to_linear
from .fft import fast_length, parallel

LUMINANCE = (0.2126, 0.7152, 0.0722)
RIDGE = 1e-2  # Tikhonov weight, relative to the mean power of the guide's selected gradients
EDGE_FRACTION = 0.1  # share of the guide's gradients (the strongest) the kernel is fitted on
SUPPORT_RIDGE = 1.0  # support_kernel's Tikhonov weight, relative to the mean diagonal of its normal matrix
SUPPORT_ITERATIONS = 30  # projected (FISTA) steps toward the non-negative solution
KERNEL_FLOOR = 0.05  # clean_kernel cuts values below this share of the peak: the fit's diffuse noise floor


def luminance_linear(rgb: np.ndarray, dtype: type = np.float64) -> np.ndarray:
    """Linear-light luminance; float64 for the kernel fits, float32 where only speed matters (the line hint,
    the estimation region's choice)."""
    return to_linear(rgb).astype(dtype) @ np.asarray(LUMINANCE, dtype)


def forward_gradients(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Forward differences, zero on the last column/row (the training side's TF code does the same)."""
    gx = np.zeros_like(gray)
    gy = np.zeros_like(gray)
    gx[:, :-1] = gray[:, 1:] - gray[:, :-1]
    gy[:-1, :] = gray[1:, :] - gray[:-1, :]
    return gx, gy


def taper_window(shape: tuple[int, int], width: int) -> np.ndarray:
    """A window that fades to zero over `width` px at every edge (keeps the FFT's wrap-around quiet)."""
    def ramp(n: int) -> np.ndarray:
        r = np.ones(n)
        w = min(width, n // 2)
        r[:w] = 0.5 - 0.5 * np.cos(np.pi * (np.arange(w) + 0.5) / w)
        r[n - w:] = r[:w][::-1]
        return r
    return (ramp(shape[0])[:, None] * ramp(shape[1])[None, :]).astype(np.float32)


def centre_on_centroid(kernel: np.ndarray, size: int | None = None) -> np.ndarray:
    """Shift a kernel by whole pixels so its centroid is the canvas centre (the comparison frame)."""
    size = size or kernel.shape[0]
    k = np.clip(kernel, 0, None) / max(float(np.clip(kernel, 0, None).sum()), 1e-12)
    yy, xx = np.mgrid[:k.shape[0], :k.shape[1]]
    cy, cx = round(float((k * yy).sum())), round(float((k * xx).sum()))
    canvas = np.zeros((size + k.shape[0] * 2, size + k.shape[1] * 2))
    oy, ox = k.shape[0] + size // 2 - cy, k.shape[1] + size // 2 - cx
    canvas[oy:oy + k.shape[0], ox:ox + k.shape[1]] = k
    canvas = canvas[k.shape[0]:k.shape[0] + size, k.shape[1]:k.shape[1] + size]
    return canvas / max(canvas.sum(), 1e-12)


def edge_threshold(magnitude: np.ndarray, edge_fraction: float) -> float:
    """The k-th largest value, k = edge_fraction of the pixels (the TF side takes the same k-th value)."""
    k = max(1, int(magnitude.size * edge_fraction))
    return float(np.partition(magnitude.ravel(), magnitude.size - k)[magnitude.size - k])


def selected_gradients(gray: np.ndarray, edge_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """The guide's gradients, zero outside its strongest `edge_fraction` of magnitudes (1.0 keeps all)."""
    gradients = forward_gradients(gray)
    if edge_fraction >= 1:
        return gradients
    magnitude = np.hypot(*gradients)
    selected = magnitude >= edge_threshold(magnitude, edge_fraction)
    return gradients[0] * selected, gradients[1] * selected


def least_squares_kernel(blurred: np.ndarray, guide: np.ndarray, size: int, edge_fraction: float = EDGE_FRACTION,
                         ridge: float = RIDGE) -> np.ndarray:
    """Raw size×size kernel mapping `guide`'s strongest gradients onto `blurred`'s (both sRGB, same shape).

    Only the top `edge_fraction` of the guide's gradient magnitudes take part (Cho & Lee's selection: weak
    gradients are mostly noise and texture the guide got wrong); 1.0 uses every gradient."""
    b = luminance_linear(blurred)
    g = luminance_linear(guide)
    window = taper_window(b.shape, size)
    num = np.zeros((b.shape[0], b.shape[1] // 2 + 1), np.complex128)
    den = np.zeros(num.shape)
    guide_gradients = selected_gradients(g, edge_fraction)
    for gb, gg in zip(forward_gradients(b), guide_gradients, strict=True):
        fb = np.fft.rfft2(gb * window)
        fg = np.fft.rfft2(gg * window)
        num += np.conj(fg) * fb
        den += np.abs(fg) ** 2
    k = np.fft.irfft2(num / (den + ridge * den.mean()), s=b.shape)
    half = size // 2
    return np.roll(k, (half, half), axis=(0, 1))[:size, :size]


def clean_kernel(raw: np.ndarray, floor: float = KERNEL_FLOOR) -> np.ndarray:
    """A usable PSF from a raw estimate: non-negative, small values cut, unit sum, centroid centred."""
    k = np.clip(raw, 0, None)
    if k.max() <= 0:
        out = np.zeros_like(raw)
        out[raw.shape[0] // 2, raw.shape[1] // 2] = 1.0
        return out
    k[k < floor * k.max()] = 0
    return centre_on_centroid(k, raw.shape[0])


def support_normal_equations(blurred: np.ndarray, guide: np.ndarray, size: int,
                             edge_fraction: float = EDGE_FRACTION) -> tuple[np.ndarray, np.ndarray]:
    """(AᵀA, Aᵀb) of min_k Σ_d |k ∗ (mask·∂_d x̂) − ∂_d b|² over a size×size kernel, for sRGB images: the
    guide's strongest `edge_fraction` of gradients against the blurred photo's, in linear luminance."""
    return gradient_normal_equations(forward_gradients(luminance_linear(blurred)),
                                     selected_gradients(luminance_linear(guide), edge_fraction), size)


def gradient_normal_equations(blurred_gradients: tuple[np.ndarray, np.ndarray],
                              guide_gradients: tuple[np.ndarray, np.ndarray],
                              size: int) -> tuple[np.ndarray, np.ndarray]:
    """(AᵀA, Aᵀb) of min_k Σ_d |k ∗ ∂_d x̂ − ∂_d b|² over a size×size kernel, in compact form.

    AᵀA is block-Toeplitz: entry (o, o') is the guide gradients' autocorrelation at lag o' − o, so it is
    returned as that (2·size − 1)² autocorrelation (`toeplitz_apply` multiplies by it); Aᵀb, the guide's
    correlation with the blurred gradients, is size×size. Both sums over the two directions are taken in
    the Fourier domain: four forward transforms, two inverse."""
    if size % 2 == 0:
        raise ValueError(f"kernel size must be odd, got {size}")
    half = size // 2
    # zero padding of ≥ 2·half keeps every lag the normal matrix needs free of wrap-around
    shape = tuple(fast_length(max(n + 2 * half, 4 * half + 1)) for n in blurred_gradients[0].shape)
    fg_x, fg_y, fb_x, fb_y = parallel(lambda x: np.fft.rfft2(x, shape), [*guide_gradients, *blurred_gradients])
    auto, cross = parallel(lambda spectrum: np.fft.irfft2(spectrum, shape),
                           [np.abs(fg_x) ** 2 + np.abs(fg_y) ** 2, np.conj(fg_x) * fb_x + np.conj(fg_y) * fb_y])
    auto = np.roll(auto, (2 * half, 2 * half), axis=(0, 1))[:4 * half + 1, :4 * half + 1]
    cross = np.roll(cross, (half, half), axis=(0, 1))[:size, :size]
    return auto, cross


def toeplitz_apply(auto: np.ndarray, size: int) -> Callable[[np.ndarray], np.ndarray]:
    """k ↦ AᵀA·k for the autocorrelation `auto` of `support_normal_equations`, as one small FFT
    convolution: the size²×size² matrix (4 M entries at 45 px) is never built."""
    half, lags = size // 2, auto.shape[0]
    grid = (fast_length(size + lags - 1),) * 2
    spectrum = np.fft.rfft2(auto, grid)  # an autocorrelation is even, so correlating with it is convolving

    def apply(kernel: np.ndarray) -> np.ndarray:
        full = np.fft.irfft2(np.fft.rfft2(kernel, grid) * spectrum, grid)
        return full[2 * half:2 * half + size, 2 * half:2 * half + size]
    return apply


def _largest_eigenvalue(apply: Callable[[np.ndarray], np.ndarray], size: int, iterations: int = 12) -> float:
    v = np.full((size, size), 1 / size)
    for _ in range(iterations):
        w = apply(v)
        v = w / max(float(np.linalg.norm(w)), 1e-30)
    return float(np.sum(v * apply(v))) * 1.1  # power iteration approaches from below; FISTA's step must stay ≤ 1/L


def support_kernel(blurred: np.ndarray, guide: np.ndarray, size: int, edge_fraction: float = EDGE_FRACTION,
                   ridge: float = SUPPORT_RIDGE, iterations: int = SUPPORT_ITERATIONS) -> np.ndarray:
    """The non-negative size×size kernel mapping `guide`'s strongest gradients onto `blurred`'s (both sRGB)."""
    return solve_support(*support_normal_equations(blurred, guide, size, edge_fraction), ridge, iterations)


def solve_support(auto: np.ndarray, rhs: np.ndarray, ridge: float = SUPPORT_RIDGE,
                  iterations: int = SUPPORT_ITERATIONS) -> np.ndarray:
    """Ridge-regularised least squares on the support under k ≥ 0, from `support_normal_equations`, by
    projected FISTA steps from zero: the non-negativity is what keeps noise out, and a step is one product
    with the normal matrix, done as a small FFT convolution (an exact solve first would cost 20× the steps)."""
    size = rhs.shape[0]
    half = size // 2
    shift = ridge * max(float(auto[2 * half, 2 * half]), 1e-12)  # the diagonal is the lag-0 autocorrelation
    convolve = toeplitz_apply(auto, size)

    def normal(kernel: np.ndarray) -> np.ndarray:
        return convolve(kernel) + shift * kernel
    k = np.zeros_like(rhs)
    step = 1 / _largest_eigenvalue(normal, size)
    previous, momentum, t = k, k, 1.0
    for _ in range(iterations):
        k = np.clip(momentum - step * (normal(momentum) - rhs), 0, None)
        t_next = (1 + np.sqrt(1 + 4 * t * t)) / 2
        momentum = k + (t - 1) / t_next * (k - previous)
        previous, t = k, t_next
    return k


def splat(points: np.ndarray, weights: np.ndarray, size: int) -> np.ndarray:
    """Weighted sub-pixel (x, y) points, in canvas coordinates, splatted bilinearly; unit sum."""
    kernel = np.zeros((size + 1, size + 1), np.float64)
    x0 = np.floor(points[:, 0]).astype(int)
    y0 = np.floor(points[:, 1]).astype(int)
    fx, fy = points[:, 0] - x0, points[:, 1] - y0
    x0, y0 = np.clip(x0, 0, size - 1), np.clip(y0, 0, size - 1)
    for dx, dy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        np.add.at(kernel, (y0 + dy, x0 + dx), w * weights)
    kernel = kernel[:size, :size]
    return kernel / kernel.sum()
