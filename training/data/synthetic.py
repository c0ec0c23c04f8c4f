"""Blurred/sharp pairs synthesised on the fly from a folder of sharp photos.

Sample `i` of a run is a pure function of (seed, i): the same crop, scale, flip, kernel, noise and
JPEG every time, so a resumed run sees exactly the samples it would have seen, and the validation
set is fixed. Photos are decoded once and kept in memory as uint8 (a few hundred photos ≈ 1–2 GB).
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from service.images import IMAGE_SUFFIXES
from training.data.degrade import degrade
from training.data.kernels import DEFAULT_KERNEL_WEIGHTS, random_kernel

log = logging.getLogger(__name__)


class DataError(ValueError):
    """A training data folder cannot be used; the message says why and where."""


def list_images(folders: Sequence[str | Path]) -> list[Path]:
    files: list[Path] = []
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            raise DataError(f"photo folder {folder} does not exist (run `make photos` or pass --set photos=DIR)")
        files += sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {', '.join(map(str, folders))}")
    return files


def is_validation(path: Path, fraction: float) -> bool:
    """Stable split by file name hash: a photo is in validation forever, whatever else is added."""
    digest = hashlib.sha1(path.name.encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < fraction


def load_photos(paths: Sequence[Path], min_side: int) -> tuple[list[np.ndarray], list[Path], int]:
    """Decode photos as RGB uint8; unreadable or too-small files are skipped and counted."""
    photos, kept, skipped = [], [], 0
    for path in paths:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(path) as im:
                    rgb = np.asarray(im.convert("RGB"))
        except (OSError, ValueError, Image.DecompressionBombWarning) as exc:
            log.warning("skipping unreadable image %s: %s", path, exc)
            skipped += 1
            continue
        if min(rgb.shape[:2]) < min_side:
            log.warning("skipping %s: %dx%d is smaller than the %d px crop", path, rgb.shape[1], rgb.shape[0], min_side)
            skipped += 1
            continue
        photos.append(rgb)
        kept.append(path)
    return photos, kept, skipped


class SyntheticPairs:
    """Index → (blurred, sharp) float32 crops in [0, 1], deterministic per (seed, index)."""

    def __init__(self, photos: list[np.ndarray], crop: int, seed: int, max_blur: float = 41.0,
                 scale_range: tuple[float, float] = (0.5, 1.0), kernel_weights: Sequence[float] | None = None,
                 max_noise: float = 0.02, jpeg_prob: float = 0.25, augment: bool = True) -> None:
        if not photos:
            raise DataError("no usable photos left after skipping unreadable/too-small files")
        self.photos, self.crop, self.seed = photos, crop, seed
        self.max_blur, self.scale_range, self.augment = max_blur, scale_range, augment
        self.kernel_weights = tuple(kernel_weights or DEFAULT_KERNEL_WEIGHTS)
        self.max_noise, self.jpeg_prob = max_noise, jpeg_prob

    def __call__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        blurred, sharp, _ = self.with_kernel(index)
        return blurred, sharp

    def with_kernel(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(blurred, sharp, the kernel that made it): what kernel estimators train on."""
        rng = np.random.default_rng([self.seed, int(index)])
        photo = self.photos[rng.integers(len(self.photos))]
        _, kernel = random_kernel(rng, self.max_blur, self.kernel_weights)
        region = self._region(photo, self.crop + kernel.shape[0] - 1, rng)
        return (*degrade(region, kernel, rng, self.max_noise, self.jpeg_prob), kernel)

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


def split_photos(folders: Sequence[str | Path], val_fraction: float, min_side: int
                 ) -> tuple[list[np.ndarray], list[np.ndarray], list[Path]]:
    """Load training and validation photos (split by file) and report what was skipped."""
    files = list_images(folders)
    val_files = [p for p in files if is_validation(p, val_fraction)]
    train_files = [p for p in files if not is_validation(p, val_fraction)]
    train, _, skipped_t = load_photos(train_files, min_side)
    val, val_kept, skipped_v = load_photos(val_files, min_side)
    if skipped_t + skipped_v:
        log.warning("skipped %d unreadable or too-small image(s)", skipped_t + skipped_v)
    if not train:
        raise DataError(f"no usable training photos in {', '.join(map(str, folders))}")
    return train, val, val_kept
