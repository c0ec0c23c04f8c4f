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

from collections.abc import Callable
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
COARSE_CHANNELS = 2  # a cross-scale corrector's extra maps: the log estimate and the cross-correlation at half size
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


def half_size(srgb: np.ndarray) -> np.ndarray:
    """The photo at half its size, by 2×2 averages (an odd last row or column is dropped)."""
    h, w = srgb.shape[0] // 2 * 2, srgb.shape[1] // 2 * 2
    return (srgb[0:h:2, 0:w:2] + srgb[1:h:2, 0:w:2] + srgb[0:h:2, 1:w:2] + srgb[1:h:2, 1:w:2]) / 4


def coarse_canvas(canvas: int) -> int:
    """The odd half-size support whose lags, doubled, stay on the canvas."""
    return canvas // 4 * 2 + 1


def _doubled(coarse: np.ndarray, canvas: int) -> np.ndarray:
    """A half-size lag map (odd side, lag 0 in the middle) on the full-size canvas, bilinearly: lag d there
    is lag 2d here."""
    side = coarse.shape[0]
    position = (np.arange(canvas) - canvas // 2) / 2 + side // 2
    weights = np.maximum(0, 1 - np.abs(position[:, None] - np.arange(side)[None, :]))
    return weights @ coarse @ weights.T


def _log_map(kernel: np.ndarray) -> np.ndarray:
    return np.log(_on_map_grid(kernel) + LOG_FLOOR) / LOG_SCALE + 1


def kernel_from_log_map(values: np.ndarray) -> np.ndarray:
    """`_log_map` undone (any leading axes): the kernel a log-estimate channel holds, clipped at 0."""
    return np.clip(np.exp((values - 1) * LOG_SCALE) - LOG_FLOOR, 0, None)


def _unit_peak(values: np.ndarray) -> np.ndarray:
    return values / max(float(np.abs(values).max()), 1e-12)


def correction_maps(blurred: np.ndarray, guide: np.ndarray, canvas: int,
                    coarse: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(the net's input, (2·canvas − 1)² × channels float32; the service's estimate, canvas², which the
    maps include) for a blurred region and its guide (sRGB, same shape).

    `coarse` (the region at `half_size` and the guide run on that) adds the COARSE_CHANNELS maps of a
    cross-scale corrector. At half size a long blur is half as long, short enough for the guide to undo,
    so the half-size cross-correlation can carry the phase of blur the full-size guide leaves in place."""
    auto, rhs = support_normal_equations(blurred, guide, canvas)
    estimate = clean_kernel(solve_support(auto, rhs))
    maps = [_log_map(estimate), _on_map_grid(_unit_peak(rhs)), _without_lag_zero(auto),
            _without_lag_zero(gradient_autocorrelation(luminance_linear(blurred), canvas))]
    if coarse is not None:
        coarse_auto, coarse_rhs = support_normal_equations(*coarse, coarse_canvas(canvas))
        coarse_estimate = _doubled(clean_kernel(solve_support(coarse_auto, coarse_rhs)), canvas)
        maps += [_log_map(coarse_estimate / coarse_estimate.sum()),
                 _on_map_grid(_unit_peak(_doubled(coarse_rhs, canvas)))]
    return np.stack(maps, -1).astype(np.float32), estimate


class MapMaker:
    """What a corrector of this canvas reads: `correction_maps`, with the half-size pass when it is
    cross-scale (`guide`, sRGB photo → the guide model's output on it, runs that pass)."""

    def __init__(self, canvas: int, cross_scale: bool = False,
                 guide: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
        if cross_scale and guide is None:
            raise ValueError("a cross-scale kernel corrector needs the guide model to run at half size")
        self.canvas, self.cross_scale, self.guide = canvas, cross_scale, guide
        self.channels = MAP_CHANNELS + (COARSE_CHANNELS if cross_scale else 0)

    def __call__(self, blurred: np.ndarray, guide: np.ndarray) -> np.ndarray:
        """The net's input for a blurred region and the guide's output on it."""
        coarse = None
        if self.cross_scale:
            half = half_size(blurred)
            coarse = (half, self.guide(half))
        return correction_maps(blurred, guide, self.canvas, coarse)[0]


class KernelCorrector:
    """A corrector network exported to ONNX: input `maps` [N, M, M, C], output `kernel` [N, K, K] with
    M = 2·K − 1 and C = MAP_CHANNELS, or MAP_CHANNELS + COARSE_CHANNELS for a cross-scale corrector, which
    needs `guide` (sRGB photo → the guide model's output on it) to run the guide at half size
    (training/kernel_corrector.py writes such files)."""

    def __init__(self, path: Path, threads: int = 1, guide: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own classes for a missing, truncated or invalid file
            raise ValueError(f"cannot load kernel corrector {path}: {first_line(exc)}") from None
        self.path = Path(path)
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        shape = inputs[0].shape if len(inputs) == 1 else None
        channels = (MAP_CHANNELS, MAP_CHANNELS + COARSE_CHANNELS)
        if (shape is None or len(shape) != 4 or not isinstance(shape[1], int) or shape[1] != shape[2]
                or shape[1] % 2 == 0 or shape[3] not in channels or len(outputs) != 1):
            raise ValueError(f"{path}: not a kernel corrector (one input [N, M, M, {' or '.join(map(str, channels))}]"
                             f" with odd M, one output expected; got inputs {[i.shape for i in inputs]})")
        try:
            self.maps = MapMaker((shape[1] + 1) // 2, shape[3] != MAP_CHANNELS, guide)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
        self.canvas = self.maps.canvas
        self.input_name = inputs[0].name

    def __call__(self, blurred: np.ndarray, guide: np.ndarray) -> np.ndarray:
        """The corrected canvas² kernel (a PSF: non-negative, unit sum, centroid centred)."""
        raw = self.session.run(None, {self.input_name: self.maps(blurred, guide)[None]})[0][0].astype(np.float64)
        return clean_kernel(raw, CORRECTED_FLOOR)
