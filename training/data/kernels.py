"""Random blur kernels: camera shake, straight motion, defocus, blob-like shake and random-curve PSFs.

Breadth of blur matters more than fidelity to any one generator (the shipped model is judged on
kernels from generators we never see), so every family draws its size, shape and smoothness at
random. Every kernel is centred on its centroid (so the blurred photo stays aligned with the sharp
one), non-negative, sums to one, and fits an odd square canvas.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

from service.kernel_estimation import splat  # one home: the service draws its line hint's streak with it

FAMILIES = ("shake", "line", "defocus", "blob", "gaussian", "curve")
MOTION_CAP = 35.0  # shake/streak/curve extent cap (px) of the validation samples and of every run before max_motion
# how often each family is drawn (Config.kernel_weights). "curve" came last and is off by default, so the
# own protocol and every earlier run draw the same kernels; a shorter tuple leaves the later families off.
DEFAULT_KERNEL_WEIGHTS = (0.4, 0.25, 0.1, 0.15, 0.1, 0.0)


def check_kernel_weights(weights: tuple[float, ...]) -> None:
    """ValueError unless `weights` are up to one non-negative weight per family with a positive sum."""
    if len(weights) > len(FAMILIES) or min(weights, default=-1) < 0 or sum(weights) <= 0:
        raise ValueError(f"kernel weights are up to {len(FAMILIES)} non-negative numbers ({' '.join(FAMILIES)}) "
                         f"with a positive sum, got {' '.join(f'{w:g}' for w in weights) or 'none'}")


def _rasterise(points: np.ndarray, weights: np.ndarray, size: int) -> np.ndarray:
    """Splat sub-pixel (x, y) points bilinearly onto a size×size canvas centred on their centroid."""
    return splat(points - np.average(points, axis=0, weights=weights) + (size - 1) / 2, weights, size)


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


def curve_kernel(rng: np.random.Generator, extent: float) -> np.ndarray:
    """Domain-randomised motion: a random smooth path (a short Fourier series with random harmonics,
    amplitudes and phases) traced at a random, uneven speed, sometimes slightly thick. It stands for no
    one physical model: it widens the shapes and speed profiles a learned estimator sees beyond what the
    shake and streak models produce (one harmonic gives straight strokes and arcs, more give bends, hooks
    and loops)."""
    harmonics = int(rng.integers(1, 5))
    order = np.arange(1, harmonics + 1)[:, None]
    t = np.linspace(0, 1, max(64, int(extent * 24)))[None, :]
    amplitude = rng.normal(size=(2, harmonics, 1)) / order ** rng.uniform(1.0, 2.5)
    path = (amplitude * np.cos(np.pi * order * t + rng.uniform(0, 2 * np.pi, (2, harmonics, 1)))).sum(1).T
    span = max(np.ptp(path[:, 0]), np.ptp(path[:, 1]), 1e-9)
    dwell = np.exp((rng.uniform(0, 1.5) * rng.normal(size=(3, 1))
                    * np.cos(np.pi * np.arange(1, 4)[:, None] * t + rng.uniform(0, 2 * np.pi, (3, 1)))).sum(0))
    thickness = rng.uniform(0.3, 1.0) if rng.random() < 0.3 else 0.0  # px, a Gaussian's σ
    points = path * (extent - 1) / span
    centred = points - np.average(points, axis=0, weights=dwell)
    # an uneven dwell pulls the centroid off the middle: shrink the path to keep it (and its blur) on the canvas
    reach = (canvas_size(extent) - 1) / 2 - 1 - np.ceil(2 * thickness)
    kernel = _rasterise(centred * min(1.0, reach / max(float(np.abs(centred).max()), 1e-9)), dwell,
                        canvas_size(extent))
    if thickness:
        kernel = gaussian_filter(kernel, thickness, mode="constant")
    return kernel / kernel.sum()


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
    shake trajectories, straight streaks and random curves (0 = the historical min(35, max_extent)),
    `max_extent` or less for the rest."""
    motion = max_motion or min(MOTION_CAP, max_extent)
    check_kernel_weights(weights)
    weights = np.pad(np.asarray(weights, np.float64), (0, len(FAMILIES) - len(weights)))
    family = FAMILIES[rng.choice(len(FAMILIES), p=weights / np.sum(weights))]
    if family == "shake":
        kernel = shake_kernel(rng, rng.uniform(3, motion))
    elif family == "line":
        kernel = line_kernel(rng, rng.uniform(3, motion))
    elif family == "defocus":
        kernel = defocus_kernel(rng, rng.uniform(2, min(21.0, max_extent)))
    elif family == "curve":
        kernel = curve_kernel(rng, rng.uniform(3, motion))
    elif family == "blob":
        kernel = blob_kernel(rng, rng.uniform(5, max_extent))
    else:
        kernel = gaussian_kernel(rng, rng.uniform(3, min(25.0, max_extent)))
    return family, kernel.astype(np.float32)
