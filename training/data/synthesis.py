"""Blurred/sharp pairs synthesised on the fly from sharp photos (training/data/folders.py loads them).

Sample `i` of a run is a pure function of (seed, i): the same crop, scale, flip, kernel, noise and
JPEG every time, so a resumed run sees exactly the samples it would have seen, and the validation
set is fixed. The optional realism steps (realism.py) draw from a second stream of (seed, i), so
turning them on keeps a sample's photo, kernel, noise and JPEG (an off-centre kernel's larger canvas
changes its sample's crop and the draws after it). Photos are decoded once and kept in memory as
uint8 (a few hundred photos ≈ 1–2 GB).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from training.data.degrade import degrade
from training.data.folders import DataError
from training.data.kernels import DEFAULT_KERNEL_WEIGHTS, random_kernel
from training.data.realism import OFF, Realism, offcentre_kernel, random_shift


class SyntheticPairs:
    """Index → (blurred, sharp) float32 crops in [0, 1], deterministic per (seed, index)."""

    def __init__(self, photos: list[np.ndarray], crop: int, seed: int, max_blur: float = 41.0,
                 scale_range: tuple[float, float] = (0.5, 1.0), kernel_weights: Sequence[float] | None = None,
                 max_noise: float = 0.02, jpeg_prob: float = 0.25, augment: bool = True,
                 realism: Realism = OFF, max_motion: float = 0.0) -> None:
        if not photos:
            raise DataError("no usable photos left after skipping unreadable/too-small files")
        self.photos, self.crop, self.seed = photos, crop, seed
        self.max_blur, self.scale_range, self.augment = max_blur, scale_range, augment
        self.kernel_weights = tuple(kernel_weights or DEFAULT_KERNEL_WEIGHTS)
        self.max_noise, self.jpeg_prob, self.realism = max_noise, jpeg_prob, realism
        self.max_motion = max_motion

    def __call__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        blurred, sharp, _ = self.with_kernel(index)
        return blurred, sharp

    def with_kernel(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(blurred, sharp, the kernel that made it): what kernel estimators train on. An off-centre
        kernel comes back shifted on its padded canvas; a non-uniform blur returns its first kernel
        (exact where the blend's weight is 0)."""
        rng = np.random.default_rng([self.seed, int(index)])
        steps = self.realism.draw(np.random.default_rng([self.seed, int(index), 1]))
        photo = self.photos[rng.integers(len(self.photos))]
        _, kernel = random_kernel(rng, self.max_blur, self.kernel_weights, self.max_motion)
        if "offcentre" in steps.names:
            kernel = offcentre_kernel(kernel, *random_shift(steps.rng, self.realism.max_shift))
        region = self._region(photo, self.crop + kernel.shape[0] - 1, rng)
        return (*degrade(region, kernel, rng, self.max_noise, self.jpeg_prob, steps=steps), kernel)

    def _region(self, photo: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
        """A random crop of `size`² after a random downscale (Lanczos), flip and transpose."""
        h, w = photo.shape[:2]
        lo = max(self.scale_range[0], size / min(h, w))
        scale = rng.uniform(lo, max(lo, self.scale_range[1])) if self.augment else 1.0
        src = min(int(np.ceil(size / scale)), h, w)
        y, x = rng.integers(0, h - src + 1), rng.integers(0, w - src + 1)
        region = photo[y:y + src, x:x + src]
        if src != size:
            region = np.asarray(Image.fromarray(region).resize((size, size), Image.Resampling.LANCZOS))
        region = region.astype(np.float32) / 255
        if self.augment:
            if rng.random() < 0.5:
                region = region[:, ::-1]
            if rng.random() < 0.5:
                region = region.transpose(1, 0, 2)
        return np.ascontiguousarray(region)
