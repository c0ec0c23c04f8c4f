"""The fixed validation protocol (issue #4): one reproducible blur per held-out photo.

Each photo is blurred once, with a seed derived from its file name, by a kernel drawn from
camera-shake trajectories (extent 5–31 px), straight streaks (7–31 px) or blob-like shake / defocus
PSFs (up to ~41 px), in linear light, then 1 % Gaussian noise and 8-bit rounding. The sharp
reference is cropped to the 'valid' region, so no border is guessed on either side.
"""

from __future__ import annotations

import hashlib

import numpy as np

from training.data.degrade import add_noise, blur_linear, quantise
from training.data.kernels import blob_kernel, defocus_kernel, line_kernel, shake_kernel

NOISE = 0.01


def protocol_kernel(rng: np.random.Generator) -> tuple[str, np.ndarray]:
    family = ("shake", "streak", "blob", "defocus")[rng.choice(4, p=[0.4, 0.3, 0.2, 0.1])]
    if family == "shake":
        return family, shake_kernel(rng, rng.uniform(5, 31))
    if family == "streak":
        return family, line_kernel(rng, rng.uniform(7, 31))
    if family == "blob":
        return family, blob_kernel(rng, rng.uniform(9, 41))
    return family, defocus_kernel(rng, rng.uniform(5, 15))


def seed_for(name: str, seed: int) -> list[int]:
    return [seed, int.from_bytes(hashlib.sha1(name.encode()).digest()[:4], "big")]


def protocol_pair(sharp: np.ndarray, name: str, seed: int = 2024) -> tuple[np.ndarray, np.ndarray, str, np.ndarray]:
    """(blurred, sharp reference, kernel family, kernel) for one photo (float32 RGB in [0, 1])."""
    rng = np.random.default_rng(seed_for(name, seed))
    family, kernel = protocol_kernel(rng)
    return (*blurred_pair(sharp, kernel, rng), family, kernel)


def blurred_pair(sharp: np.ndarray, kernel: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(blurred, sharp reference): `kernel` in linear light, the 'valid' region only (no border is guessed
    on either side), then the protocol's noise and 8-bit rounding. Every validation protocol degrades so."""
    blurred = blur_linear(sharp, kernel)
    m = (kernel.shape[0] - 1) // 2
    reference = sharp[m:m + blurred.shape[0], m:m + blurred.shape[1]]
    return quantise(add_noise(blurred, rng, shot=0.0, read=NOISE)), quantise(reference)
