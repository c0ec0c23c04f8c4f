"""Blind blur-kernel estimation in numpy: the stage before deconvolution in the kernel-aware chain.

`least_squares_kernel` is the kernel update of Cho & Lee (2009) with the edge predictor swapped for a
network's output: given a sharp guide x̂ and the blurred image b (both in linear light), the kernel that
best maps the guide's gradients onto b's has a closed form in the Fourier domain,

    K = Σ_d conj(F(∂_d x̂)) F(∂_d b) / (Σ_d |F(∂_d x̂)|² + β·mean),

cropped to size×size around the origin. `clean_kernel` then makes it a PSF. The guide network is trained
through the same closed form (training/kernel_estimator.py), so the two must stay the same maths.
"""

from __future__ import annotations

import numpy as np

from .deconvolution import to_linear

LUMINANCE = (0.2126, 0.7152, 0.0722)
RIDGE = 1e-2  # Tikhonov weight, relative to the mean power of the guide's selected gradients
EDGE_FRACTION = 0.1  # share of the guide's gradients (the strongest) the kernel is fitted on


def luminance_linear(rgb: np.ndarray) -> np.ndarray:
    return to_linear(rgb).astype(np.float64) @ np.array(LUMINANCE)


def _gradients(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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
    guide_gradients = _gradients(g)
    magnitude = np.hypot(*guide_gradients)
    selected = magnitude >= edge_threshold(magnitude, edge_fraction) if edge_fraction < 1 else np.ones(b.shape, bool)
    for gb, gg in zip(_gradients(b), guide_gradients, strict=True):
        gg = gg * selected
        fb = np.fft.rfft2(gb * window)
        fg = np.fft.rfft2(gg * window)
        num += np.conj(fg) * fb
        den += np.abs(fg) ** 2
    k = np.fft.irfft2(num / (den + ridge * den.mean()), s=b.shape)
    half = size // 2
    return np.roll(k, (half, half), axis=(0, 1))[:size, :size]


def clean_kernel(raw: np.ndarray, floor: float = 0.05) -> np.ndarray:
    """A usable PSF from a raw estimate: non-negative, small values cut, unit sum, centroid centred."""
    k = np.clip(raw, 0, None)
    if k.max() <= 0:
        out = np.zeros_like(raw)
        out[raw.shape[0] // 2, raw.shape[1] // 2] = 1.0
        return out
    k[k < floor * k.max()] = 0
    return centre_on_centroid(k, raw.shape[0])
