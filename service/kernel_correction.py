"""A learned correction of the blind kernel estimate: issue 15's estimator (iv), a net that corrects a
classical estimate.

`support_kernel` fits the guide's strongest edges. Where the guide left blur in place, the fit comes out
short and in the wrong shape. The blurred photo's own gradient autocorrelation is the kernel's
autocorrelation smeared by the photo's, and a natural photo's gradients are nearly white (Goldstein &
Fattal 2012). So that map shows the blur's true extent and direction, but not its phase (k and its 180°
rotation look the same). The estimate and the guide/photo cross-correlation carry the phase. A small CNN
(training/kernel_corrector.py) reads all four maps in the kernel's own coordinates, a (2·canvas − 1)²
grid centred on lag 0, and outputs the kernel. Spatial layout and phase are kept, and nothing is pooled
away: this is what the issue asks of a learned estimator.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from .errors import first_line
from .fft import fast_length
from .kernel_estimation import (
    clean_kernel,
    forward_gradients,
    luminance_linear,
    solve_support,
    support_normal_equations,
)

MAP_CHANNELS = 4  # log estimate, guide/photo cross-correlation, guide autocorrelation, photo autocorrelation
LOG_FLOOR = 1e-5  # the estimate enters as log(k + floor): a floor this low leaves 2 % of the mass outside the support
LOG_SCALE = 12.0  # log(LOG_FLOOR) ≈ −11.5, so log(k + floor) / LOG_SCALE + 1 lies in about [0, 1]
CORRECTED_FLOOR = 0.02  # clean_kernel's cut on the net's output: a softmax is never exactly zero


def gradient_autocorrelation(gray: np.ndarray, canvas: int) -> np.ndarray:
    """Σ over x and y of the gradients' autocorrelation, at lags within ±(canvas − 1): (2·canvas − 1)²."""
    reach = canvas - 1
    shape = tuple(fast_length(n + 2 * reach) for n in gray.shape)
    power = sum(np.abs(np.fft.rfft2(d, shape)) ** 2 for d in forward_gradients(gray))
    auto = np.fft.irfft2(power, shape)
    return np.roll(auto, (reach, reach), axis=(0, 1))[:2 * reach + 1, :2 * reach + 1]


def _without_lag_zero(auto: np.ndarray) -> np.ndarray:
    """Lag 0 is dominated by noise power; what is left, scaled to a unit peak."""
    out = auto.copy()
    out[out.shape[0] // 2, out.shape[1] // 2] = 0
    return out / max(float(np.abs(out).max()), 1e-12)


def _on_map_grid(kernel: np.ndarray) -> np.ndarray:
    canvas = kernel.shape[0]
    out = np.zeros((2 * canvas - 1,) * 2)
    out[canvas // 2:canvas // 2 + canvas, canvas // 2:canvas // 2 + canvas] = kernel
    return out


def correction_maps(blurred: np.ndarray, guide: np.ndarray, canvas: int) -> tuple[np.ndarray, np.ndarray]:
    """(the net's input, (2·canvas − 1)² × MAP_CHANNELS float32; the service's estimate, canvas², which the
    maps include) for a blurred region and its guide (sRGB, same shape)."""
    auto, rhs = support_normal_equations(blurred, guide, canvas)
    estimate = clean_kernel(solve_support(auto, rhs))
    maps = np.stack([
        np.log(_on_map_grid(estimate) + LOG_FLOOR) / LOG_SCALE + 1,
        _on_map_grid(rhs / max(float(np.abs(rhs).max()), 1e-12)),
        _without_lag_zero(auto),
        _without_lag_zero(gradient_autocorrelation(luminance_linear(blurred), canvas)),
    ], -1)
    return maps.astype(np.float32), estimate


class KernelCorrector:
    """A corrector network exported to ONNX: input `maps` [N, M, M, 4], output `kernel` [N, C, C] with
    M = 2·C − 1 (training/kernel_corrector.py writes such files)."""

    def __init__(self, path: Path, threads: int = 1) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own classes for a missing, truncated or invalid file
            raise ValueError(f"cannot load kernel corrector {path}: {first_line(exc)}") from None
        self.path = Path(path)
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        shape = inputs[0].shape if len(inputs) == 1 else None
        if (shape is None or len(shape) != 4 or not isinstance(shape[1], int) or shape[1] != shape[2]
                or shape[1] % 2 == 0 or shape[3] != MAP_CHANNELS or len(outputs) != 1):
            raise ValueError(f"{path}: not a kernel corrector (one input [N, M, M, {MAP_CHANNELS}] with odd M, "
                             f"one output expected; got inputs {[i.shape for i in inputs]})")
        self.canvas = (shape[1] + 1) // 2
        self.input_name = inputs[0].name

    def __call__(self, blurred: np.ndarray, guide: np.ndarray) -> np.ndarray:
        """The corrected canvas² kernel (a PSF: non-negative, unit sum, centroid centred)."""
        maps, _ = correction_maps(blurred, guide, self.canvas)
        raw = self.session.run(None, {self.input_name: maps[None]})[0][0].astype(np.float64)
        return clean_kernel(raw, CORRECTED_FLOOR)
