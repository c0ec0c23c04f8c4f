"""Photo folders as training data: listing, the stable validation split by file name, and decoding.

One home for the split: training, `deblur-eval`, the receptive-field probe and the benchmarks all ask
`is_validation`, so a held-out photo stays held out everywhere, whatever else is added to the folder.
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

log = logging.getLogger(__name__)
ESTIMATION_HELD_OUT_EVERY = 7  # every seventh training-split photo validates the estimator's nets


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


def estimation_split(folders: Sequence[str | Path], val_fraction: float) -> tuple[list[Path], list[Path]]:
    """(training files, held-out files) of the kernel estimator's nets (the guide, the corrector): the
    training split with every `ESTIMATION_HELD_OUT_EVERY`-th photo held out for their own validation, so a
    guide and the corrector it feeds are fitted and judged on the same photos, and neither protocol's."""
    files = [p for p in list_images(folders) if not is_validation(p, val_fraction)]
    middle = ESTIMATION_HELD_OUT_EVERY // 2
    return ([p for i, p in enumerate(files) if i % ESTIMATION_HELD_OUT_EVERY != middle],
            [p for i, p in enumerate(files) if i % ESTIMATION_HELD_OUT_EVERY == middle])


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
