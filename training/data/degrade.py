"""Turn a sharp photo crop into a realistic blurred one: blur in linear light, noise, 8-bit, JPEG.

A camera integrates light, not sRGB values, so the kernel is applied in linear light (gamma 2.2);
highlights then bloom as they do in real shake. Exposure is jittered on the sharp target too, so the
pair stays consistent. Noise is Poisson-Gaussian (signal-dependent shot noise + read noise). The
optional steps of realism.py (saturated highlights, non-uniform blur, a camera tone curve) change
the radiance, the blur and the encoding, for both images of the pair alike.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from scipy.signal import fftconvolve

from service.deconvolution import to_linear, to_srgb
from training.data import realism
from training.data.realism import Steps


def convolve_valid(linear: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Per-channel 'valid' convolution: the output is smaller by kernel size - 1 (no border guessing)."""
    return np.stack([fftconvolve(linear[..., c], kernel, mode="valid") for c in range(linear.shape[-1])], -1)


def blur_linear(sharp_srgb: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """'valid' convolution in linear light: output is smaller by kernel size - 1 (no border guessing)."""
    return to_srgb(convolve_valid(to_linear(sharp_srgb), kernel)).astype(np.float32)


def blur_nonuniform(linear: np.ndarray, kernel: np.ndarray, second: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Blend of the blurs by two same-size kernels: `weight` (of the output's size) 0 is `kernel`, 1 `second`."""
    return (1 - weight) * convolve_valid(linear, kernel) + weight * convolve_valid(linear, second)


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


def centre_of(region: np.ndarray, kernel: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The part of `region` that its 'valid' blur by `kernel` (of `shape`) shows: the sharp target."""
    m = (kernel.shape[0] - 1) // 2
    return region[m:m + shape[0], m:m + shape[1]]


def realistic_blur(linear: np.ndarray, kernel: np.ndarray, steps: Steps) -> tuple[np.ndarray, np.ndarray]:
    """(blurred, sharp) encoded, from radiance in [0, 1]: saturation and the blur in linear light, then
    a clip to [0, 1] (what the sensor records) and the encoding, the same for both images."""
    rng = steps.rng
    if "saturation" in steps.names:
        linear = realism.saturate(linear, rng.uniform(1.5, 4.0), rng.uniform(0.5, 0.85))
    if "nonuniform" in steps.names:
        second = realism.tilted_kernel(kernel, *realism.random_tilt(rng))
        size = linear.shape[0] - kernel.shape[0] + 1, linear.shape[1] - kernel.shape[1] + 1
        blurred = blur_nonuniform(linear, kernel, second, realism.ramp(size, rng.uniform(0, 2 * np.pi)))
    else:
        blurred = convolve_valid(linear, kernel)
    sharp = centre_of(linear, kernel, blurred.shape)
    if "tone_curve" in steps.names:
        tone = realism.random_tone(rng)
        return realism.tone_curve(blurred, *tone), realism.tone_curve(sharp, *tone)
    return to_srgb(blurred).astype(np.float32), to_srgb(sharp)


def degrade(region: np.ndarray, kernel: np.ndarray, rng: np.random.Generator,
            max_noise: float = 0.02, jpeg_prob: float = 0.25, exposure: tuple[float, float] = (0.75, 1.25),
            steps: Steps | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Blur `region` (sRGB float, larger than the output by kernel size - 1) and return (blurred, sharp).
    `steps`: the realism steps that fire for this sample (none: the plain synthesis, bit for bit)."""
    gain = rng.uniform(*exposure)
    if steps is None or not steps.names - {"offcentre"}:  # an off-centre kernel needs no other path
        region = to_srgb(to_linear(region) * gain)
        blurred = blur_linear(region, kernel)
        sharp = centre_of(region, kernel, blurred.shape)
    else:
        blurred, sharp = realistic_blur(np.clip(to_linear(region) * gain, 0, 1), kernel, steps)
    level = rng.uniform(0, max_noise)
    shot_share = rng.random()
    blurred = add_noise(blurred, rng, shot=shot_share * level**2 * 4, read=(1 - shot_share) * level)
    quality = int(rng.integers(55, 96)) if rng.random() < jpeg_prob else None
    return quantise(blurred, rng, quality), sharp.astype(np.float32)
