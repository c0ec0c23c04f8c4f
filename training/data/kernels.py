"""Random blur kernels: camera shake, straight motion, defocus and blob-like shake PSFs.

Breadth of blur matters more than fidelity to any one generator (the shipped model is judged on
kernels from generators we never see), so every family draws its size, shape and smoothness at
random. Every kernel is centred on its centroid (so the blurred photo stays aligned with the sharp
one), non-negative, sums to one, and fits an odd square canvas.
"""

from __future__ import annotations

import numpy as np

FAMILIES = ("shake", "line", "defocus", "blob", "gaussian")
MOTION_CAP = 35.0  # shake/streak extent cap (px) of the validation samples and of every run before max_motion
DEFAULT_KERNEL_WEIGHTS = (0.4, 0.25, 0.1, 0.15, 0.1)  # how often each family is drawn (Config.kernel_weights)


def _rasterise(points: np.ndarray, weights: np.ndarray, size: int) -> np.ndarray:
    """Splat sub-pixel (x, y) points bilinearly onto a size×size canvas centred on their centroid."""
    return splat(points - np.average(points, axis=0, weights=weights) + (size - 1) / 2, weights, size)


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


def canvas_size(extent: float) -> int:
    """The odd square canvas a kernel of `extent` px is drawn on (one pixel of margin each side)."""
    return int(np.ceil(extent)) // 2 * 2 + 3


def shake_trajectory(rng: np.random.Generator, extent: float, steps: int = 512) -> np.ndarray:
    """Boracchi & Foi (2012) random camera trajectory, scaled so its bounding box spans `extent` px."""
    centripetal = 0.7 * rng.random()
    big_shake = 0.2 * rng.random()
    gaussian_shake = 10 * rng.random()
    anxiety = rng.uniform(0.001, 0.008)
    step = 1.0 / (steps - 1)
    v = np.exp(1j * rng.uniform(0, 2 * np.pi)) * step
    x = np.zeros(steps, np.complex128)
    for t in range(steps - 1):
        jump = 2 * v * np.exp(1j * (np.pi + rng.random() - 0.5)) if rng.random() < big_shake * anxiety else 0
        dv = jump + anxiety * (gaussian_shake * complex(rng.normal(), rng.normal()) - centripetal * x[t]) * step
        v = v + dv
        v = v / abs(v) * step
        x[t + 1] = x[t] + v
    exposure = rng.uniform(0.5, 1.0)  # the shutter sees only part of the shake
    start = rng.integers(0, int(steps * (1 - exposure)) + 1)
    x = x[start:start + int(steps * exposure)]
    pts = np.stack([x.real, x.imag], 1)
    span = max(np.ptp(pts[:, 0]), np.ptp(pts[:, 1]), 1e-9)
    return pts * (extent - 1) / span


def shake_kernel(rng: np.random.Generator, extent: float) -> np.ndarray:
    pts = shake_trajectory(rng, extent)
    speed = rng.uniform(0.3, 1.0, size=1) + rng.uniform(0, 0.7) * np.sin(np.linspace(0, rng.uniform(1, 6), len(pts)))
    return _rasterise(pts, np.clip(speed, 0.05, None), canvas_size(extent))


def line_kernel(rng: np.random.Generator, length: float) -> np.ndarray:
    """Straight motion; the speed may ramp (acceleration) so the streak is not always uniform."""
    angle = rng.uniform(0, np.pi)
    t = np.linspace(-0.5, 0.5, max(int(length * 4), 8))
    pts = np.stack([np.cos(angle) * t, np.sin(angle) * t], 1) * (length - 1)
    ramp = 1 + rng.uniform(-0.8, 0.8) * t * 2 if rng.random() < 0.4 else np.ones_like(t)
    return _rasterise(pts, ramp, canvas_size(length))


def defocus_kernel(rng: np.random.Generator, diameter: float) -> np.ndarray:
    """Anti-aliased disc (out-of-focus aperture), optionally with a brighter rim."""
    size = canvas_size(diameter)
    r = diameter / 2
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    dist = np.hypot(xx, yy)
    disc = np.clip(r + 0.5 - dist, 0, 1)
    if rng.random() < 0.3:
        disc *= 1 + 0.5 * (dist / max(r, 1e-6)) ** 2
    return disc / disc.sum()


def blob_kernel(rng: np.random.Generator, extent: float) -> np.ndarray:
    """Blob-like shake: a handful of Gaussian spots along a short random walk, thick and irregular."""
    n = rng.integers(3, 9)
    pts = np.cumsum(rng.normal(size=(n, 2)), 0)
    span = max(np.ptp(pts[:, 0]), np.ptp(pts[:, 1]), 1e-9)
    sigma = extent * rng.uniform(0.08, 0.2)
    pts = pts * (extent - 4 * sigma) / span if extent > 4 * sigma else pts * 0
    size = canvas_size(extent)
    pts = pts - pts.mean(0) + (size - 1) / 2
    yy, xx = np.mgrid[:size, :size]
    kernel = sum(w * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
                 for (x, y), w in zip(pts, rng.uniform(0.3, 1.0, n), strict=True))
    return _recentre(kernel)


def gaussian_kernel(rng: np.random.Generator, extent: float) -> np.ndarray:
    """Anisotropic Gaussian: mild defocus or slight shake."""
    size = canvas_size(extent)
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    a = rng.uniform(0, np.pi)
    s1 = extent / 6
    s2 = s1 * rng.uniform(0.3, 1.0)
    u = np.cos(a) * xx + np.sin(a) * yy
    v = -np.sin(a) * xx + np.cos(a) * yy
    return _recentre(np.exp(-(u**2 / (2 * s1**2) + v**2 / (2 * s2**2))))


def _recentre(kernel: np.ndarray) -> np.ndarray:
    """Shift a dense kernel (integer part of its centroid offset) to the canvas centre."""
    kernel = kernel / kernel.sum()
    yy, xx = np.mgrid[: kernel.shape[0], : kernel.shape[1]]
    c = (kernel.shape[0] - 1) / 2
    dy, dx = round(float((kernel * yy).sum() - c)), round(float((kernel * xx).sum() - c))
    return np.roll(kernel, (-dy, -dx), axis=(0, 1))


def random_kernel(rng: np.random.Generator, max_extent: float = 41.0,
                  weights: tuple[float, ...] = DEFAULT_KERNEL_WEIGHTS,
                  max_motion: float = 0.0) -> tuple[str, np.ndarray]:
    """One kernel from a random family, its extent uniform up to the family's cap: `max_motion` for
    shake trajectories and straight streaks (0 = the historical min(35, max_extent)), `max_extent` or
    less for the rest."""
    motion = max_motion or min(MOTION_CAP, max_extent)
    family = FAMILIES[rng.choice(len(FAMILIES), p=np.asarray(weights) / np.sum(weights))]
    if family == "shake":
        kernel = shake_kernel(rng, rng.uniform(3, motion))
    elif family == "line":
        kernel = line_kernel(rng, rng.uniform(3, motion))
    elif family == "defocus":
        kernel = defocus_kernel(rng, rng.uniform(2, min(21.0, max_extent)))
    elif family == "blob":
        kernel = blob_kernel(rng, rng.uniform(5, max_extent))
    else:
        kernel = gaussian_kernel(rng, rng.uniform(3, min(25.0, max_extent)))
    return family, kernel.astype(np.float32)
