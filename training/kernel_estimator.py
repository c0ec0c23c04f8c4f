"""Learned-guide kernel estimation: a network draws the edges, a closed form turns them into the kernel.

Why this design (issue 15): a network that regresses the kernel from pooled features learns its size but
not its shape or direction, because pooling throws away where things are and an L1 on the kernel rewards
the average kernel. Here the network only predicts a sharp *guide* image x̂ of the blurred input b; the
kernel is then the least-squares solution of k ∗ ∇x̂ ≈ ∇b, closed-form in the Fourier domain (Cho & Lee
2009's kernel step, as in Schuler et al. 2016's learned pipeline). The kernel's phase and position come
from the data, not from a dense layer, and the loss on it trains the guide end to end.

Two solvers, each the TF twin of a numpy one on the service side, so the exported guide network plus
that function is the estimator that is served and benchmarked:
- "fourier" (`least_squares_kernel_tf` ↔ `least_squares_kernel`): the closed form over the whole image,
  cropped; the session-6 runs (negative: it stays noisy even with the true sharp photo as guide);
- "support" (`support_kernel_tf` ↔ `support_kernel`): the least squares on the kernel's support under
  k ≥ 0, by the same projected FISTA steps, unrolled. This is what the service fits against its guide
  today, so a guide trained through it is trained for the estimate the corrector and the hint read.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from service.deconvolution import GAMMA
from service.fft import fast_length
from service.kernel_estimation import (
    EDGE_FRACTION,
    KERNEL_FLOOR,
    LUMINANCE,
    RIDGE,
    SUPPORT_ITERATIONS,
    SUPPORT_RIDGE,
    taper_window,
)
from training import losses
from training.kernel_corrector import wiener_loss


def _linear_luminance(rgb: tf.Tensor) -> tf.Tensor:
    lin = tf.pow(tf.clip_by_value(tf.cast(rgb, tf.float32), 1e-6, 1.0), GAMMA)
    return tf.tensordot(lin, tf.constant(LUMINANCE, tf.float32), axes=[[3], [0]])


def _gradients(gray: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Forward differences, zero on the last column/row (the same as the numpy side)."""
    gx = tf.pad(gray[:, :, 1:] - gray[:, :, :-1], [[0, 0], [0, 0], [0, 1]])
    gy = tf.pad(gray[:, 1:, :] - gray[:, :-1, :], [[0, 0], [0, 1], [0, 0]])
    return gx, gy


def _image_gradients(rgb: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Forward differences of every channel of [N, H, W, C] images."""
    return rgb[:, :, 1:] - rgb[:, :, :-1], rgb[:, 1:] - rgb[:, :-1]


def _strongest(gx: tf.Tensor, gy: tf.Tensor, edge_fraction: float) -> tf.Tensor:
    """1 where the gradient magnitude is among the top `edge_fraction` of its image, else 0 (no gradient
    through the choice itself; the selected gradients carry it)."""
    magnitude = tf.sqrt(tf.square(gx) + tf.square(gy))
    flat = tf.reshape(magnitude, [tf.shape(magnitude)[0], -1])
    k = max(1, int(flat.shape[1] * edge_fraction))
    threshold = tf.stop_gradient(tf.math.top_k(flat, k=k).values[:, -1])
    return tf.cast(magnitude >= threshold[:, None, None], tf.float32)


def least_squares_kernel_tf(blurred: tf.Tensor, guide: tf.Tensor, size: int, edge_fraction: float = EDGE_FRACTION,
                            ridge: float = RIDGE) -> tf.Tensor:
    """[N, size, size] raw kernels (not clipped or normalised, so the loss sees every error)."""
    b = _linear_luminance(blurred)
    g = _linear_luminance(guide)
    height, width = b.shape[1], b.shape[2]
    guide_gradients = _gradients(g)
    selected = _strongest(*guide_gradients, edge_fraction) if edge_fraction < 1 else 1.0
    window = tf.constant(taper_window((height, width), size), tf.float32)
    num = tf.zeros((tf.shape(b)[0], height, width // 2 + 1), tf.complex64)
    den = tf.zeros((tf.shape(b)[0], height, width // 2 + 1), tf.float32)
    for gb, gg in zip(_gradients(b), guide_gradients, strict=True):
        fb = tf.signal.rfft2d(gb * window)
        fg = tf.signal.rfft2d(gg * selected * window)
        num += tf.math.conj(fg) * fb
        den += tf.square(tf.abs(fg))
    floor = ridge * tf.reduce_mean(den, axis=[1, 2], keepdims=True)
    k = tf.signal.irfft2d(num / tf.cast(den + floor, tf.complex64), fft_length=[height, width])
    half = size // 2
    k = tf.roll(k, shift=[half, half], axis=[1, 2])
    return k[:, :size, :size]


def strongest_edges(guide: tf.Tensor, edge_fraction: float = EDGE_FRACTION) -> tf.Tensor:
    """[N, H, W] 1 on the guide's strongest `edge_fraction` of gradients (in linear luminance), else 0: the
    fixed selection the support fit uses unless it is handed a learned one."""
    return _strongest(*_gradients(_linear_luminance(guide)), edge_fraction)


def _normal_equations(blurred: tf.Tensor, guide: tf.Tensor, size: int, edge_fraction: float,
                      selection: tf.Tensor | None = None) -> tuple[tf.Tensor, tf.Tensor]:
    """TF twin of `service.kernel_estimation.support_normal_equations`: ([N, 4·half+1, 4·half+1] autocorrelation
    of the guide's selected gradients, [N, size, size] their correlation with the blurred gradients). A
    [N, H, W] `selection` weighs the guide's gradients in place of the top-`edge_fraction` choice."""
    half = size // 2
    guide_x, guide_y = _gradients(_linear_luminance(guide))
    if selection is None:
        selection = _strongest(guide_x, guide_y, edge_fraction) if edge_fraction < 1 else 1.0
    shape = [fast_length(max(n + 2 * half, 4 * half + 1)) for n in blurred.shape[1:3]]
    blurred_x, blurred_y = _gradients(_linear_luminance(blurred))
    fg_x, fg_y, fb_x, fb_y = (tf.signal.rfft2d(x, fft_length=shape)
                              for x in (guide_x * selection, guide_y * selection, blurred_x, blurred_y))
    auto = tf.signal.irfft2d(fg_x * tf.math.conj(fg_x) + fg_y * tf.math.conj(fg_y), shape)  # |F|², smooth at 0
    cross = tf.signal.irfft2d(tf.math.conj(fg_x) * fb_x + tf.math.conj(fg_y) * fb_y, shape)
    auto = tf.roll(auto, [2 * half, 2 * half], axis=[1, 2])[:, :4 * half + 1, :4 * half + 1]
    return auto, tf.roll(cross, [half, half], axis=[1, 2])[:, :size, :size]


def support_kernel_tf(blurred: tf.Tensor, guide: tf.Tensor, size: int, edge_fraction: float = EDGE_FRACTION,
                      ridge: float = SUPPORT_RIDGE, iterations: int = SUPPORT_ITERATIONS,
                      selection: tf.Tensor | None = None) -> tf.Tensor:
    """[N, size, size] non-negative kernels, `service.kernel_estimation.support_kernel`'s maths (the same
    ridge, step and FISTA iterations), differentiable in the guide (and in `selection`, when one is given)
    through every unrolled step."""
    auto, rhs = _normal_equations(blurred, guide, size, edge_fraction, selection)
    half, lags = size // 2, auto.shape[1]
    grid = [fast_length(size + lags - 1)] * 2
    spectrum = tf.signal.rfft2d(auto, fft_length=grid)
    shift = ridge * tf.maximum(auto[:, 2 * half, 2 * half], 1e-12)[:, None, None]

    def normal(kernel: tf.Tensor) -> tf.Tensor:
        full = tf.signal.irfft2d(tf.signal.rfft2d(kernel, fft_length=grid) * spectrum, fft_length=grid)
        return full[:, 2 * half:2 * half + size, 2 * half:2 * half + size] + shift * kernel

    v = tf.fill(tf.shape(rhs), 1.0 / size)  # power iteration for the step, as the numpy side (no gradient: a step size)
    for _ in range(12):
        w = normal(v)
        v = w / tf.maximum(tf.norm(w, axis=[1, 2], keepdims=True), 1e-30)
    step = tf.stop_gradient(1 / (tf.reduce_sum(v * normal(v), axis=[1, 2], keepdims=True) * 1.1))
    kernel = previous = momentum = tf.zeros_like(rhs)
    t = 1.0
    for _ in range(iterations):
        kernel = tf.nn.relu(momentum - step * (normal(momentum) - rhs))
        t_next = (1 + np.sqrt(1 + 4 * t * t)) / 2
        momentum = kernel + (t - 1) / t_next * (kernel - previous)
        previous, t = kernel, t_next
    return kernel


def kernel_loss(estimate: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
    """L1 to the true kernel plus |Σk − 1|, per kernel, averaged over the batch.

    The sum term is what keeps the guide honest: with L1 alone the guide learned to decorrelate itself
    from the input, which drives the closed-form kernel to zero (L1 = 1, better than a noisy early
    estimate) and stays there (a logged negative result: models/training-log-estimator0-collapsed.csv)."""
    l1 = tf.reduce_sum(tf.abs(estimate - kernel), axis=[1, 2])
    mass = tf.abs(tf.reduce_sum(estimate, axis=[1, 2]) - 1.0)
    return tf.reduce_mean(l1 + mass)


def floored(raw: tf.Tensor, floor: float = KERNEL_FLOOR) -> tf.Tensor:
    """`clean_kernel`'s cut, differentiable in the values it keeps: entries under `floor` × the peak become 0.
    (Its re-centring is left out: the Wiener excess ignores where the kernel sits.)"""
    peak = tf.reduce_max(raw, axis=[1, 2], keepdims=True)
    return raw * tf.stop_gradient(tf.cast(raw >= floor * peak, raw.dtype))


def wiener_kernel_loss(estimate: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
    """The corrector's `wiener_loss` (what the service's deconvolution loses, plus the kernel L1) on the
    estimate as the service uses it: floored as `clean_kernel` does and scaled to unit sum.

    The floor matters: the raw fit carries a diffuse floor the service cuts, and on 0.5.0's estimates it is
    most of the loss (2.96 dB of Wiener excess raw, 1.88 floored, on 32 held-out samples: session 27), so a
    net trained on the raw fit learns to thin a floor that is never served."""
    estimate = floored(estimate)
    unit = estimate / tf.maximum(tf.reduce_sum(estimate, axis=[1, 2], keepdims=True), 1e-3)
    return tf.reduce_mean(wiener_loss()(kernel, unit))


def estimator_parts(solve: str, loss: str) -> tuple[Callable[..., tf.Tensor], Callable[..., tf.Tensor]]:
    """(the kernel solver, the loss on its output) that `Config.estimator_solve` / `estimator_loss` name."""
    return ({"fourier": least_squares_kernel_tf, "support": support_kernel_tf}[solve],
            {"l1": kernel_loss, "wiener": wiener_kernel_loss}[loss])


class KernelEstimatorTrainer(keras.Model):
    """Trains the guide so that the kernel solved against it matches the true one (the injected loss), while
    a content term keeps the guide a picture of the sharp image (without it the guide is free to become any
    pattern, and the one that zeroes the kernel is the easiest to find)."""

    def __init__(self, guide: keras.Model, size: int, content_weight: float = 10.0,
                 solve: Callable[..., tf.Tensor] = least_squares_kernel_tf,
                 loss: Callable[[tf.Tensor, tf.Tensor], tf.Tensor] = kernel_loss, gradient_weight: float = 0.0,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.guide, self.size, self.content_weight = guide, size, content_weight
        self.gradient_weight = gradient_weight
        self.solve, self.kernel_loss = solve, loss
        self.trackers = {name: keras.metrics.Mean(name=name) for name in ("loss", "kernel_loss", "content", "skipped")}

    @property
    def trained(self) -> keras.Model:
        """The network whose weights the steps change (and the checkpoint keeps)."""
        return self.guide

    def compile(self, optimizer: keras.optimizers.Optimizer, grad_clip: float = 1.0) -> None:
        super().compile(optimizer=optimizer)
        self.grad_clip = grad_clip

    @property
    def metrics(self) -> list:
        return list(self.trackers.values())

    def call(self, blurred, training: bool = False):
        return self.solve(blurred, self.guide(blurred, training=training), self.size)

    def objective(self, blurred: tf.Tensor, sharp: tf.Tensor, kernel: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """(the loss on the kernel, the content loss on the guide) of one training batch."""
        guide = self.guide(blurred, training=True)
        on_kernel = self.kernel_loss(self.solve(blurred, guide, self.size), kernel)
        guide = tf.cast(guide, tf.float32)
        content = self.content_weight * losses.charbonnier(sharp, guide)
        if self.gradient_weight:  # fine texture the fit can exploit shows in the gradients, not the pixels
            content += self.gradient_weight * sum(losses.charbonnier(*pair) for pair in zip(
                _image_gradients(sharp), _image_gradients(guide), strict=True))
        return on_kernel, content

    def train_step(self, data):
        blurred, sharp, kernel = data
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        with tf.GradientTape() as tape:
            on_kernel, content = self.objective(blurred, sharp, kernel)
            loss = on_kernel + content
            scaled = loss / replicas
        variables = self.trained.trainable_variables
        grads = tape.gradient(scaled, variables)
        # a degenerate fit (a guide with no edges left, say) must not poison the weights: its gradients become
        # zero (no step under plain SGD; Adam still moves on its momentum) and the step is counted as skipped
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads])
        grads = [tf.where(finite, g, tf.zeros_like(g)) for g in grads]
        if self.grad_clip:
            grads, _ = tf.clip_by_global_norm(grads, self.grad_clip)
        self.optimizer.apply_gradients(zip(grads, variables, strict=True))
        for name, value in (("loss", loss), ("kernel_loss", on_kernel), ("content", content)):
            self.trackers[name].update_state(tf.where(finite, value, 0.0), sample_weight=tf.cast(finite, tf.float32))
        self.trackers["skipped"].update_state(1.0 - tf.cast(finite, tf.float32))
        return {name: t.result() for name, t in self.trackers.items()}


def pad_kernel(kernel: np.ndarray, size: int) -> np.ndarray:
    """Centre a (smaller, odd) kernel on a size×size canvas: the training target's frame."""
    if kernel.shape[0] > size:
        raise ValueError(f"kernel of {kernel.shape[0]} px does not fit the {size} px estimation canvas")
    out = np.zeros((size, size), np.float32)
    o = (size - kernel.shape[0]) // 2
    out[o:o + kernel.shape[0], o:o + kernel.shape[1]] = kernel
    return out
