"""Training samples for the kernel-aware refiner: (blurred ⊕ the service's hint, sharp).

The hint is made by the very chain the service runs (service/kernel_aware.py), with the kernels the
blind estimator really produces from a frozen guide model, so the refiner learns from the estimator's
actual errors (issue 15, item 4) and has to learn to distrust a wrong deconvolution.

That lesson can go too far: a refiner that seldom saw a right hint learns to distrust every hint, and
throws away a good deconvolution (docs/kernel-aware.md, session 15). `true_share` of the samples
therefore get the hint made with the TRUE kernel, so a right deconvolution is something it has seen and
can learn to recognise (the same Wiener filter; only the kernel differs).

Off the training generator the estimate is often plausible and wrong, and a refiner that has only seen
nearly right hints follows it and makes the photo worse than no hint would (session 19's probe).
`wrong_share` of the samples therefore get the hint made with the true kernel turned by 30–330°: the
right size and texture, the wrong direction, which it has to learn to notice and fall back from.
`wrong_scaled` of those get the true kernel scaled ×0.3–0.7 or ×1.3–1.8 instead: the right direction and
the wrong length, the blind estimator's usual error on long blur (too short), and its mirror (too long).

The line hint (LINE_HINT_NAME) is the cepstrum's streak, right on long straight blur and wrong on the
rest, as the service makes it. Right ones are rare in training crops, so a refiner learns to use it
slowly; `line_true_share` of the samples (an independent draw) get the line hint made with the true
kernel instead, the same lesson `true_share` teaches the first hint. When the first hint is wrong and the
line hint right, only the line hint can win: `line_true_when_wrong`, when above 0, is the line hint's
true share among the wrong-first samples, so that lesson comes more often than the independent draws'
product.

The service estimates the streak on a 480² region of the whole photo, where the cepstrum finds a long
streak far more often than on a 256² crop (69 % against 41 %, docs/kernel-aware.md, session 21). With
`crop`, the sampler's samples are larger (the context): the streak is estimated on the whole of one, as
the service estimates it on a photo, and the training crop, cut at a position drawn from (seed, index),
gets the hints. The guided hint stays estimated on the crop: its guide and estimate on the context
would triple the cost of a sample.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np
from scipy.ndimage import rotate

from service.engine import Engine
from service.kernel_aware import (
    HINT_CANVAS,
    HINT_NAME,
    LINE_HINT_NAME,
    KernelOf,
    estimate_kernel,
    estimation_region,
    hinted_input,
)
from service.kernel_estimation import centre_on_centroid
from service.line_kernel import line_kernel
from training.data.kernels import splat

Sampler = Callable[[int], tuple[np.ndarray, np.ndarray]]


class KernelSampler(Protocol):
    """A sampler that can also tell the kernel that blurred a sample (SyntheticPairs)."""

    def __call__(self, index: int) -> tuple[np.ndarray, np.ndarray]: ...

    def with_kernel(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...


class HintedPairs:
    """Index → (H×W×(3 + hint channels) blurred and hints, H×W×3 sharp), float32 in [0, 1]; deterministic
    like its sampler."""

    def __init__(self, sampler: Sampler | KernelSampler, guide: Engine, kernel_of: KernelOf = estimate_kernel,
                 true_share: float = 0.0, seed: int = 0, wrong_share: float = 0.0, wrong_scaled: float = 0.0,
                 hint: str = HINT_NAME, line_true_share: float = 0.0, line_true_when_wrong: float = 0.0,
                 crop: int = 0) -> None:
        if true_share + wrong_share + line_true_share > 0 and not hasattr(sampler, "with_kernel"):
            raise ValueError("a share of true- or wrong-kernel hints needs synthetic samples (their kernels are known)")
        self.sampler, self.guide, self.kernel_of = sampler, guide, kernel_of
        self.true_share, self.wrong_share, self.wrong_scaled, self.seed = true_share, wrong_share, wrong_scaled, seed
        self.hint = hint  # which hints the input carries (service/kernel_aware.py)
        lined = hint == LINE_HINT_NAME
        self.line_true_share = line_true_share if lined else 0.0  # the line hint's own share
        self.line_true_when_wrong = (line_true_when_wrong or line_true_share) if lined else 0.0
        self.crop = crop  # cut from each sample once its streak is estimated (0: keep the whole sample)

    def __call__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        index = int(index)
        draw = np.random.default_rng([self.seed, index, 2]).random()
        first_known = draw < self.true_share + self.wrong_share
        first_wrong = first_known and draw >= self.true_share
        line_share = self.line_true_when_wrong if first_wrong else self.line_true_share
        line_true = np.random.default_rng([self.seed, index, 5]).random() < line_share
        if first_known or line_true:
            blurred, sharp, kernel = self.sampler.with_kernel(index)
            true_kernel = centre_on_centroid(kernel.astype(np.float64))
        else:
            blurred, sharp = self.sampler(index)
        line = true_kernel if line_true else self._streak(blurred)
        blurred, sharp = self._cut(blurred, sharp, index)
        if first_known:
            hint_kernel = true_kernel if draw < self.true_share else self._wrong(true_kernel, index)
            guide_of, kernel_of = (lambda window: blurred[window]), (lambda _region, _guide: hint_kernel)
        else:
            guide_of, kernel_of = (lambda window: self.guide.deblur(blurred[window]).image), self.kernel_of
        return hinted_input(blurred, guide_of, kernel_of, self.hint, lambda _region: line), sharp

    def _streak(self, blurred: np.ndarray) -> np.ndarray | None:
        """The cepstral streak of the whole sample's estimation region (the line hint's kernel)."""
        return line_kernel(blurred[estimation_region(blurred)]) if self.hint == LINE_HINT_NAME else None

    def _cut(self, blurred: np.ndarray, sharp: np.ndarray, index: int) -> tuple[np.ndarray, np.ndarray]:
        height, width = sharp.shape[:2]
        if not self.crop or (height, width) == (self.crop, self.crop):
            return blurred, sharp
        rng = np.random.default_rng([self.seed, index, 6])
        y, x = rng.integers(0, height - self.crop + 1), rng.integers(0, width - self.crop + 1)
        window = slice(y, y + self.crop), slice(x, x + self.crop)
        return np.ascontiguousarray(blurred[window]), np.ascontiguousarray(sharp[window])

    def _wrong(self, kernel: np.ndarray, index: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, index, 3])
        angle = rng.uniform(30, 330)
        if np.random.default_rng([self.seed, index, 4]).random() < self.wrong_scaled:
            return scaled(kernel, rng.uniform(0.3, 0.7) if rng.random() < 0.5 else rng.uniform(1.3, 1.8))
        return turned(kernel, angle)


def turned(kernel: np.ndarray, degrees: float) -> np.ndarray:
    """A centred `kernel` rotated about its canvas centre (bilinear, same canvas), centred and summing to 1."""
    return centre_on_centroid(rotate(kernel, degrees, reshape=False, order=1, mode="constant"))


def scaled(kernel: np.ndarray, factor: float, size: int = HINT_CANVAS, subpixels: int = 4) -> np.ndarray:
    """`kernel` stretched by `factor` about its centroid onto a `size` canvas (what falls off is dropped).

    Each pixel is spread over subpixels² points before the stretch, so a thin streak stays unbroken
    when it grows (×1.8 spaces the points 0.45 px apart) and keeps its mass when it shrinks."""
    rows, cols = np.nonzero(kernel)
    offsets = (np.arange(subpixels) + 0.5) / subpixels - 0.5
    dy, dx = (o.ravel() for o in np.meshgrid(offsets, offsets, indexing="ij"))
    weights = kernel[rows, cols]
    centre = np.array([(weights * cols).sum(), (weights * rows).sum()]) / weights.sum()
    points = np.stack([(cols[:, None] + dx).ravel(), (rows[:, None] + dy).ravel()], 1)
    points = (points - centre) * factor + (size - 1) / 2
    inside = np.all((points >= 0) & (points <= size - 1), 1)
    return centre_on_centroid(splat(points[inside], np.repeat(weights, subpixels ** 2)[inside], size))
