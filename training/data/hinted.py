"""Training samples for the kernel-aware refiner: (blurred ⊕ the service's hint, sharp).

The hint is made by the very chain the service runs (service/kernel_aware.py), with the kernels the
blind estimator really produces from a frozen guide model, so the refiner learns from the estimator's
actual errors (issue 15, item 4) and has to learn to distrust a wrong deconvolution.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from service.engine import Engine
from service.kernel_aware import KernelOf, estimate_kernel, hinted_input

Sampler = Callable[[int], tuple[np.ndarray, np.ndarray]]


class HintedPairs:
    """Index → (H×W×6 blurred and hint, H×W×3 sharp), float32 in [0, 1]; deterministic like its sampler."""

    def __init__(self, sampler: Sampler, guide: Engine, kernel_of: KernelOf = estimate_kernel) -> None:
        self.sampler, self.guide, self.kernel_of = sampler, guide, kernel_of

    def __call__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        blurred, sharp = self.sampler(index)
        return hinted_input(blurred, lambda window: self.guide.deblur(blurred[window]).image, self.kernel_of), sharp
