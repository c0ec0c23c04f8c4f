"""Turn a sharp photo crop into a realistic blurred one: blur in linear light, noise, 8-bit, JPEG.

A camera integrates light, not sRGB values, so the kernel is applied in linear light (gamma 2.2);
highlights then bloom as they do in real shake. Exposure is jittered on the sharp target too, so the
pair stays consistent. Noise is Poisson-Gaussian (signal-dependent shot noise + read noise).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from scipy.signal import fftconvolve

from service.deconvolution import to_linear, to_srgb


def blur_linear(sharp_srgb: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """'valid' convolution in linear light: output is smaller by kernel size - 1 (no border guessing)."""
    lin = to_linear(sharp_srgb)
    out = np.stack([fftconvolve(lin[..., c], kernel, mode="valid") for c in range(lin.shape[-1])], -1)
    return to_srgb(out).astype(np.float32)


def add_noise(img: np.ndarray, rng: np.random.Generator, shot: float, read: float) -> np.ndarray:
    sigma = np.sqrt(shot * np.clip(img, 0, 1) + read**2)
    return img + sigma * rng.standard_normal(img.shape).astype(np.float32)


def quantise(img: np.ndarray, rng: np.random.Generator | None = None, jpeg_quality: int | None = None) -> np.ndarray:
    """8-bit rounding, optionally through a JPEG round trip (what phones hand us)."""
    u8 = np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)
    if jpeg_quality is not None:
        buf = io.BytesIO()
        Image.fromarray(u8).save(buf, format="JPEG", quality=int(jpeg_quality))
        u8 = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    return u8.astype(np.float32) / 255


def degrade(region: np.ndarray, kernel: np.ndarray, rng: np.random.Generator,
            max_noise: float = 0.02, jpeg_prob: float = 0.25, exposure: tuple[float, float] = (0.75, 1.25)
            ) -> tuple[np.ndarray, np.ndarray]:
    """Blur `region` (sRGB float, larger than the output by kernel size - 1) and return (blurred, sharp)."""
    gain = rng.uniform(*exposure)
    region = to_srgb(to_linear(region) * gain)
    blurred = blur_linear(region, kernel)
    m = (kernel.shape[0] - 1) // 2
    sharp = region[m:m + blurred.shape[0], m:m + blurred.shape[1]]
    level = rng.uniform(0, max_noise)
    shot_share = rng.random()
    blurred = add_noise(blurred, rng, shot=shot_share * level**2 * 4, read=(1 - shot_share) * level)
    quality = int(rng.integers(55, 96)) if rng.random() < jpeg_prob else None
    return quantise(blurred, rng, quality), sharp.astype(np.float32)
