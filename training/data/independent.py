"""The independent validation protocol (issue 15): kernels and photos that training never sees.

Protocol 1 (`protocol.py`) draws its kernels from the same generator the model trains on, so it
flatters the model. This one changes everything a blind method could overfit to:
- trajectory physics: a damped second-order random walk (random acceleration, not Boracchi & Foi's
  normalised velocity), physiological tremor (a sum of sinusoids plus drift), accelerating arcs,
  start-stop straight lines, and smooth walks blurred by optics (like PSFs measured from real shake);
- uneven speed: every sample is weighted by its dwell time, so slow parts of the path are bright;
- uncentred kernels: the centroid sits up to 5 px off the canvas centre, shifting the image as a real
  camera does (the aligned score searches ±6 px);
- photos: `data/photos/independent/`, files from packages no training folder draws from.

Never train or tune on it: nothing under `training/` except evaluation imports this module.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from training.data.kernels import splat
from training.data.protocol import blurred_pair, seed_for

FAMILIES = ("walk", "tremor", "arc", "smooth", "line")
CROP = 512
MAX_CROPS_PER_PHOTO = 4
MAX_CENTROID_OFFSET = 5.0


def _splat(points: np.ndarray, weights: np.ndarray, extent: float, rng: np.random.Generator) -> np.ndarray:
    """Scale a path to `extent` px, splat it bilinearly and put its centroid off-centre at random."""
    points = points - points.mean(0)
    span = max(np.ptp(points[:, 0]), np.ptp(points[:, 1]), 1e-9)
    points = points * (extent - 1) / span
    offset_len = rng.uniform(0, min(MAX_CENTROID_OFFSET, extent / 4))
    angle = rng.uniform(0, 2 * np.pi)
    size = int(np.ceil(extent + 2 * offset_len)) // 2 * 2 + 3
    centroid = np.average(points, axis=0, weights=weights)
    return splat(points - centroid + (size - 1) / 2 + offset_len * np.array([np.cos(angle), np.sin(angle)]),
                 weights, size)


def _dwell(rng: np.random.Generator, n: int) -> np.ndarray:
    """Uneven speed: dwell time per sample from a smooth random log-speed profile."""
    knots = rng.normal(0, rng.uniform(0.3, 1.0), size=6)
    log_speed = np.interp(np.linspace(0, 5, n), np.arange(6), knots)
    return np.exp(-log_speed)


def walk_path(rng: np.random.Generator, n: int = 400) -> np.ndarray:
    """Damped second-order random walk: random acceleration, velocity friction."""
    friction = rng.uniform(0.02, 0.15)
    v = rng.normal(size=2) * rng.uniform(0, 2)
    pos, out = np.zeros(2), []
    for _ in range(n):
        v = (1 - friction) * v + rng.normal(size=2) * 0.3
        pos = pos + v
        out.append(pos.copy())
    return np.array(out)


def tremor_path(rng: np.random.Generator, n: int = 400) -> np.ndarray:
    """Hand tremor: two or three sinusoids per axis over the exposure, plus a linear drift."""
    t = np.linspace(0, 1, n)
    path = np.zeros((n, 2))
    for axis in range(2):
        for _ in range(rng.integers(2, 4)):
            path[:, axis] += rng.uniform(0.2, 1) * np.sin(2 * np.pi * rng.uniform(0.3, 2.5) * t + rng.uniform(0, 6.3))
        path[:, axis] += rng.normal(0, 0.5) * t
    return path


def arc_path(rng: np.random.Generator, n: int = 400) -> np.ndarray:
    """Rotation about a point outside the frame: an arc whose angular speed ramps up or down."""
    span = rng.uniform(0.3, 2.5)
    t = np.linspace(0, 1, n) ** rng.uniform(0.5, 2.0)
    theta = rng.uniform(0, 2 * np.pi) + span * t
    return np.stack([np.cos(theta), np.sin(theta)], 1)


def line_path(rng: np.random.Generator, n: int = 400) -> np.ndarray:
    """Start-stop straight motion: the position eases in and out (not constant speed)."""
    angle = rng.uniform(0, np.pi)
    t = np.linspace(0, 1, n)
    s = 0.5 - 0.5 * np.cos(np.pi * t ** rng.uniform(0.6, 1.6))
    return np.stack([np.cos(angle) * s, np.sin(angle) * s], 1)


def _gaussian_smooth(kernel: np.ndarray, sigma: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter
    smooth = gaussian_filter(kernel, sigma, mode="constant")
    return smooth / smooth.sum()


def independent_kernel(rng: np.random.Generator, family: str) -> np.ndarray:
    """One kernel of `family`; extents 9–45 px (smooth PSFs 9–31, lines 9–41)."""
    if family == "line":
        path, extent = line_path(rng), rng.uniform(9, 41)
    elif family == "arc":
        path, extent = arc_path(rng), rng.uniform(9, 45)
    elif family == "tremor":
        path, extent = tremor_path(rng), rng.uniform(9, 45)
    else:
        path, extent = walk_path(rng), rng.uniform(9, 45 if family == "walk" else 31)
    kernel = _splat(path, _dwell(rng, len(path)), extent, rng)
    if family == "smooth":
        kernel = _gaussian_smooth(kernel, rng.uniform(0.8, 2.0))
    return kernel.astype(np.float32)


def photo_crops(photo: np.ndarray) -> list[tuple[int, int]]:
    """Top-left corners of up to MAX_CROPS_PER_PHOTO evenly spread CROP² windows with some texture."""
    h, w = photo.shape[:2]
    if min(h, w) <= CROP:
        return [(0, 0)]
    ys = np.linspace(0, h - CROP, max(1, min(2, h // CROP))).astype(int)
    xs = np.linspace(0, w - CROP, max(1, min(3, w // CROP))).astype(int)
    corners = [(y, x) for y in ys for x in xs]
    def texture(y: int, x: int) -> float:
        return float(np.std(np.diff(photo[y:y + CROP, x:x + CROP].mean(-1), axis=1)))
    textured = [c for c in corners if texture(*c) > 0.01]
    chosen = textured or corners
    step = max(1, len(chosen) // MAX_CROPS_PER_PHOTO)
    return chosen[::step][:MAX_CROPS_PER_PHOTO]


def independent_cases(photos: list[tuple[str, np.ndarray]], seed: int = 7
                      ) -> Iterator[tuple[str, np.ndarray, np.ndarray, str, np.ndarray]]:
    """(case name, blurred, sharp reference, family, true kernel) per photo crop; families round-robin."""
    index = 0
    for name, photo in photos:
        for y, x in photo_crops(photo):
            case = f"{Path(name).stem}@{y},{x}"
            rng = np.random.default_rng(seed_for(case, seed))
            family = FAMILIES[index % len(FAMILIES)]
            index += 1
            kernel = independent_kernel(rng, family)
            yield (case, *blurred_pair(photo[y:y + CROP, x:x + CROP], kernel, rng), family, kernel)
