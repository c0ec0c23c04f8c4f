"""Optional synthesis steps that bring synthetic blur closer to real photos (issue 15, item 6).

Each fires per sample with its own probability (Config: saturation_prob, tone_curve_prob,
nonuniform_blur_prob, offcentre_prob; all 0 by default). Whether they fire, and their parameters,
come from a generator of their own (SyntheticPairs), so a sample's photo, kernel, noise and JPEG are
the same with the steps on or off (an off-centre kernel's larger canvas changes its sample's crop and
the draws after it), and a sample that no step fires for is exactly the plain synthesis of
degrade.py. The steps run in this order: off-centre kernel (synthesis.py, before the crop is drawn,
since it grows the kernel), then in degrade.py saturation, the (non-uniform) blur, tone curve.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.data.kernels import splat

STEPS = ("saturation", "tone_curve", "nonuniform", "offcentre")
LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)  # Rec. 709 luminance of linear RGB


@dataclass(frozen=True)
class Steps:
    """The steps that fire for one sample, and the generator their parameters are drawn from."""

    names: frozenset[str]
    rng: np.random.Generator


@dataclass(frozen=True)
class Realism:
    """How often each step fires (probabilities), and the largest off-centre shift per axis (px)."""

    saturation: float = 0.0
    tone_curve: float = 0.0
    nonuniform: float = 0.0
    offcentre: float = 0.0
    max_shift: int = 0

    def draw(self, rng: np.random.Generator) -> Steps:
        """A step whose probability is 0 draws nothing, so the default leaves `rng` untouched."""
        names = frozenset(n for n in STEPS if getattr(self, n) > 0 and rng.random() < getattr(self, n))
        return Steps(names, rng)


OFF = Realism()  # every step off: the plain synthesis


def offcentre_kernel(kernel: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Move the kernel's centroid (dy, dx) px off the canvas centre, padding the canvas so nothing is cut.

    A real PSF is not centred on the sharp frame: shake moves the whole image. With 'valid'
    convolution the sharp target is still cut at the (larger) canvas's centre, so the blurred image
    shows the content of sharp pixel (y, x) at (y + dy, x + dx)."""
    s = max(abs(dy), abs(dx))
    return np.pad(kernel, ((s + dy, s - dy), (s + dx, s - dx)))


def random_shift(rng: np.random.Generator, max_shift: int) -> tuple[int, int]:
    """Whole-pixel (dy, dx), each uniform in [-max_shift, max_shift]."""
    dy, dx = rng.integers(-max_shift, max_shift + 1, size=2)
    return int(dy), int(dx)


def saturate(linear: np.ndarray, gain: float, threshold: float) -> np.ndarray:
    """Scale bright radiance by up to `gain` (above 1): a light source that clipped in the sharp photo
    really was brighter, and its blur streak is as bright as it was, not as the clipped pixel.

    The factor ramps smoothly from 1 at luminance `threshold` to `gain` at 1, so the mapping stays
    monotonic and adds no edge; the caller clips to [0, 1] after the blur (and the sharp target too)."""
    ramp = np.clip((linear @ LUMA - threshold) / (1 - threshold), 0, 1)
    return linear * (1 + (gain - 1) * ramp * ramp * (3 - 2 * ramp))[..., None]


def tilted_kernel(kernel: np.ndarray, angle: float, scale: float) -> np.ndarray:
    """The kernel turned by `angle` degrees and scaled by `scale` about its centroid, on the same canvas.

    Camera roll or a change of depth makes the blur differ across the frame. The kernel's mass is
    moved (each pixel a point, splatted bilinearly), so its sum and centroid are kept: the blend does
    not move the image, an off-centre kernel's shift included. `scale` is capped where the turned
    mass would leave the canvas (tails under 1e-3 of the peak are clamped to it instead)."""
    size = kernel.shape[0]
    yy, xx = np.nonzero(kernel > 0)
    points, weights = np.stack([xx, yy], 1).astype(np.float64), kernel[yy, xx].astype(np.float64)
    centroid = np.average(points, axis=0, weights=weights)
    a = np.deg2rad(angle)
    turned = (points - centroid) @ np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
    bulk = turned[weights >= 1e-3 * weights.max()]
    with np.errstate(divide="ignore", invalid="ignore"):
        room = np.where(bulk > 0, (size - 1 - centroid) / bulk, -centroid / bulk)
    scale = min(scale, float(room[bulk != 0].min(initial=scale)))
    return splat(np.clip(centroid + scale * turned, 0, size - 1), weights, size).astype(kernel.dtype)


def random_tilt(rng: np.random.Generator, max_angle: float = 8.0) -> tuple[float, float]:
    """(angle, scale) for tilted_kernel: a mild turn (±8°) and a mild size change (0.9–1.1×)."""
    return rng.uniform(-max_angle, max_angle), rng.uniform(0.9, 1.1)


def ramp(shape: tuple[int, int], angle: float) -> np.ndarray:
    """H×W×1 weight rising linearly from 0 to 1 across the crop in direction `angle` (radians)."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    t = (xx - (shape[1] - 1) / 2) * np.cos(angle) + (yy - (shape[0] - 1) / 2) * np.sin(angle)
    return ((t - t.min()) / max(float(np.ptp(t)), 1e-9)).astype(np.float32)[..., None]


def tone_curve(linear: np.ndarray, gamma: float, contrast: float, pivot: float) -> np.ndarray:
    """A camera's S-shaped response instead of a plain gamma 2.2: y = x^(1/gamma), then a contrast
    sigmoid y^c / (y^c + q (1 - y)^c) that keeps 0, `pivot` and 1 fixed (c > 1: crushed shadows and a
    rolled-off shoulder, as JPEG engines render). Monotonic; c = 1 is the plain power law."""
    y = np.power(np.clip(linear, 0, 1), 1 / gamma)
    q = ((1 - pivot) / pivot) ** (1 - contrast)
    yc = y**contrast
    return (yc / (yc + q * (1 - y) ** contrast)).astype(np.float32)


def random_tone(rng: np.random.Generator) -> tuple[float, float, float]:
    """(gamma, contrast, pivot) for tone_curve, drawn once per sample and used for blurred and sharp."""
    return rng.uniform(1.8, 2.6), rng.uniform(1.05, 1.6), rng.uniform(0.4, 0.6)
