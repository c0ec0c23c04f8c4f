"""Image-quality scores shared by both validation protocols and the kernel-estimation benchmark.

`aligned_psnr` is the blind-deblurring convention (Levin et al. 2009, Köhler et al. 2012): a blind method
cannot know where an off-centre kernel puts the image, so the restored image is compared at the best
integer shift within ±6 px, on the image less an 8 px border (the same pixels at every shift).
SSIM here is scikit-image's (7×7 uniform window, its default): what `deblur-eval` and the model card
report. The training log's `val_ssim` is tf.image's (11×11 Gaussian window, training/monitor.py); the two
disagree on the same images, so each function's name says which one it is.
"""

from __future__ import annotations

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

MAX_SHIFT = 6
BORDER = 8


def psnr(image: np.ndarray, reference: np.ndarray) -> float:
    return float(peak_signal_noise_ratio(reference, np.clip(image, 0, 1), data_range=1.0))


def ssim_skimage7(image: np.ndarray, reference: np.ndarray) -> float:
    """scikit-image's SSIM, 7×7 uniform window: `deblur-eval`'s ssim_in/ssim_out and the model card's SSIM."""
    return float(structural_similarity(np.clip(image, 0, 1), reference, channel_axis=-1, data_range=1.0))


def aligned_psnr(image: np.ndarray, reference: np.ndarray, max_shift: int = MAX_SHIFT, border: int = BORDER
                 ) -> tuple[float, tuple[int, int]]:
    """(best PSNR, (dy, dx)) over integer shifts of `image` against `reference` less `border` px."""
    margin = max(border, max_shift)
    h, w = reference.shape[:2]
    if h <= 2 * margin or w <= 2 * margin:
        raise ValueError(f"image {w}x{h} is too small for a ±{max_shift} px search with a {border} px border")
    ref = reference[margin:h - margin, margin:w - margin]
    image = np.clip(image, 0, 1)
    best, best_shift = -np.inf, (0, 0)
    for dy in range(-max_shift, max_shift + 1):
        for dx in range(-max_shift, max_shift + 1):
            crop = image[margin + dy:h - margin + dy, margin + dx:w - margin + dx]
            mse = float(np.mean((crop - ref) ** 2))
            score = 10 * np.log10(1.0 / max(mse, 1e-12))
            if score > best:
                best, best_shift = score, (dy, dx)
    return float(best), best_shift


def restoration_scores(restored: np.ndarray, blurred: np.ndarray, sharp: np.ndarray, aligned: bool = False
                       ) -> dict[str, float]:
    """Plain PSNR/SSIM of input and output against `sharp`, their gain, and optionally the aligned PSNRs."""
    row = {"psnr_in": psnr(blurred, sharp), "psnr_out": psnr(restored, sharp),
           "ssim_in": ssim_skimage7(blurred, sharp), "ssim_out": ssim_skimage7(restored, sharp)}
    row["gain_db"] = row["psnr_out"] - row["psnr_in"]
    if aligned:
        row["aligned_psnr_in"] = aligned_psnr(blurred, sharp)[0]
        row["aligned_psnr_out"] = aligned_psnr(restored, sharp)[0]
        row["aligned_gain_db"] = row["aligned_psnr_out"] - row["aligned_psnr_in"]
    return row
