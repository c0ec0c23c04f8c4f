"""Real blurred/sharp pairs: the GoPro layout or a plain `blur/` + `sharp/` folder pair.

GoPro: `<root>/{train,test}/<scene>/{blur,sharp}/*.png`. Generic: `<root>/blur/X` pairs with
`<root>/sharp/X` by file name. Unmatched names are an error that lists a few of them, because a
silently halved dataset is worse than a stop. Pairs are decoded per sample (GoPro does not fit in
RAM), with the same random crop and flip applied to both images.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PIL import Image

from service.images import IMAGE_SUFFIXES
from training.data.folders import DataError

log = logging.getLogger(__name__)


def _images(folder: Path) -> dict[str, Path]:
    return {p.name: p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}


def _pair_folder(blur_dir: Path, sharp_dir: Path) -> list[tuple[Path, Path]]:
    blurs, sharps = _images(blur_dir), _images(sharp_dir)
    missing = sorted(set(blurs) ^ set(sharps))
    if missing:
        raise DataError(f"{len(missing)} file name(s) in {blur_dir} and {sharp_dir} have no partner, "
                        f"e.g. {', '.join(missing[:5])}")
    return [(blurs[name], sharps[name]) for name in sorted(blurs)]


def find_pairs(root: str | Path, split: str = "train") -> list[tuple[Path, Path]]:
    """All (blurred, sharp) file pairs under a GoPro root (for `split`) or a blur/+sharp/ folder."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"paired data folder {root} does not exist")
    if (root / "blur").is_dir() and (root / "sharp").is_dir():
        pairs = _pair_folder(root / "blur", root / "sharp")
    elif (root / split).is_dir():
        scenes = [s for s in sorted((root / split).iterdir()) if (s / "blur").is_dir()]
        if not scenes:
            raise DataError(f"{root / split} has no <scene>/blur + <scene>/sharp folders (GoPro layout)")
        pairs = [p for scene in scenes for p in _pair_folder(scene / "blur", scene / "sharp")]
    else:
        raise DataError(f"{root} is neither a GoPro root (with {split}/<scene>/blur, sharp) "
                        "nor a folder with blur/ and sharp/")
    if not pairs:
        raise DataError(f"no image pairs under {root}")
    return pairs


class PairedCrops:
    """Index → (blurred, sharp) float32 crops, deterministic per (seed, index); bad files are reported."""

    def __init__(self, pairs: list[tuple[Path, Path]], crop: int, seed: int, augment: bool = True) -> None:
        self.pairs, self.crop, self.seed, self.augment = pairs, crop, seed, augment
        self.skipped = 0

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        blur_path, sharp_path = self.pairs[index]
        with Image.open(blur_path) as b, Image.open(sharp_path) as s:
            blur, sharp = np.asarray(b.convert("RGB")), np.asarray(s.convert("RGB"))
        if blur.shape != sharp.shape:
            raise DataError(f"{blur_path} is {blur.shape[1]}x{blur.shape[0]} but {sharp_path} is "
                            f"{sharp.shape[1]}x{sharp.shape[0]}")
        if min(blur.shape[:2]) < self.crop:
            raise DataError(f"{blur_path} ({blur.shape[1]}x{blur.shape[0]}) is smaller than the {self.crop} px crop")
        return blur, sharp

    def __call__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([self.seed, int(index)])
        for _ in range(10):  # an unreadable pair is skipped (and counted) in favour of another
            try:
                blur, sharp = self.load(int(rng.integers(len(self.pairs))))
                break
            except (OSError, DataError) as exc:
                self.skipped += 1
                log.warning("skipping pair (%d skipped so far): %s", self.skipped, exc)
        else:
            raise DataError("10 unreadable pairs in a row: check the paired data folder")
        h, w = blur.shape[:2]
        y, x = rng.integers(0, h - self.crop + 1), rng.integers(0, w - self.crop + 1)
        blur, sharp = (a[y:y + self.crop, x:x + self.crop].astype(np.float32) / 255 for a in (blur, sharp))
        if self.augment and rng.random() < 0.5:
            blur, sharp = blur[:, ::-1], sharp[:, ::-1]
        return np.ascontiguousarray(blur), np.ascontiguousarray(sharp)
