"""A guide-free estimate of straight motion blur from the photo's cepstrum (the kernel-aware chain's second hint).

Why: the guided estimate (service/kernel_aware.py) fits a kernel between the photo and a plain model's
output, so it only sees as much blur as that model undoes, and long streaks defeat it (docs/kernel-aware.md,
sessions 12 and 20). A uniform streak of length L multiplies the photo's spectrum by a sinc whose zeros
repeat every 1/L along the streak; in the log spectrum they are a periodic ripple, and in its inverse
transform (the cepstrum) a negative peak at lag L in the streak's direction (Rom 1977; the classical
linear-motion estimate). The deepest such peak on an annulus of lags gives the angle and the length.

It is right on about two thirds of long training-generator streaks and wrong on most other blur, with no
reliable confidence (session 21's probe), so the refiner sees its deconvolution as a second hint beside
the guided one and learns when to use it; this module only makes the candidate.
"""

from __future__ import annotations

import numpy as np

from .kernel_estimation import luminance_linear, splat

LINE_CANVAS = 61  # the candidate's square support (px): streaks up to 59 px, longer than the training blur
MIN_LAG = 8.0  # shorter lags are the photo's own spectral envelope, not a streak's zeros
LAG_STEP = 0.5  # px between the lags searched
ANGLE_STEP = 0.5  # degrees between the directions searched
FLOOR = 1e-3  # the log spectrum's floor, relative to the mean power: noise must not make zeros of its own


def cepstrum(gray: np.ndarray) -> np.ndarray:
    """The real cepstrum of a Hann-tapered grey image, lag 0 at the centre (the taper keeps the photo's
    border from putting a cross of false zeros into the spectrum)."""
    taper = np.outer(np.hanning(gray.shape[0]), np.hanning(gray.shape[1]))
    power = np.abs(np.fft.rfft2((gray - gray.mean()) * taper)) ** 2
    log_power = np.log(power + FLOOR * power.mean())
    return np.fft.fftshift(np.fft.irfft2(log_power - log_power.mean(), s=gray.shape))


def _bilinear(image: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    r0, c0 = np.floor(rows).astype(int), np.floor(cols).astype(int)
    fr, fc = rows - r0, cols - c0
    return ((1 - fr) * (1 - fc) * image[r0, c0] + (1 - fr) * fc * image[r0, c0 + 1]
            + fr * (1 - fc) * image[r0 + 1, c0] + fr * fc * image[r0 + 1, c0 + 1])


def line_psf(degrees: float, length: float, canvas: int = LINE_CANVAS) -> np.ndarray:
    """A uniform streak of `length` px at `degrees` (counter-clockwise from the x axis, y up) through the
    centre of a canvas² grid, drawn by bilinear splats four per pixel; unit sum."""
    t = np.linspace(-0.5, 0.5, max(int(4 * length), 8)) * (length - 1)
    theta = np.deg2rad(degrees)
    points = (canvas - 1) / 2 + np.stack([np.cos(theta) * t, -np.sin(theta) * t], 1)
    return splat(points, np.ones(len(t)), canvas)


def line_fit(region: np.ndarray) -> tuple[float, float] | None:
    """(degrees, length px) of the straight blur the region's cepstrum points to, or None when the region
    is too small to hold a lag of MIN_LAG."""
    gray = luminance_linear(region)
    reach = min(LINE_CANVAS - 3, min(gray.shape) / 2 - 2)  # a lag of L - 1 draws L px; the cepstrum wraps at half
    if reach < MIN_LAG:
        return None
    spectrum = cepstrum(gray)
    centre_row, centre_col = gray.shape[0] // 2, gray.shape[1] // 2
    theta = np.deg2rad(np.arange(0.0, 180.0, ANGLE_STEP))[:, None]
    lags = np.arange(MIN_LAG, reach + LAG_STEP / 2, LAG_STEP)[None, :]
    polar = _bilinear(spectrum, centre_row - lags * np.sin(theta), centre_col + lags * np.cos(theta))
    polar -= np.median(polar, axis=0, keepdims=True)  # each lag's level across directions: the envelope
    angle, lag = np.unravel_index(int(np.argmin(polar)), polar.shape)
    return float(np.rad2deg(theta[angle, 0])), float(lags[0, lag]) + 1.0


def line_kernel(region: np.ndarray) -> np.ndarray:
    """The cepstral streak estimate as a LINE_CANVAS² PSF; a delta (no deconvolution) on a region too small."""
    fit = line_fit(region)
    if fit is None:
        delta = np.zeros((LINE_CANVAS, LINE_CANVAS))
        delta[LINE_CANVAS // 2, LINE_CANVAS // 2] = 1.0
        return delta
    return line_psf(*fit)
