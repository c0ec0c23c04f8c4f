"""Learned-guide kernel estimation: a network draws the edges, a closed form turns them into the kernel.

Why this design (issue 15): a network that regresses the kernel from pooled features learns its size but
not its shape or direction, because pooling throws away where things are and an L1 on the kernel rewards
the average kernel. Here the network only predicts a sharp *guide* image x̂ of the blurred input b; the
kernel is then the least-squares solution of k ∗ ∇x̂ ≈ ∇b, closed-form in the Fourier domain (Cho & Lee
2009's kernel step, as in Schuler et al. 2016's learned pipeline). The kernel's phase and position come
from the data, not from a dense layer, and the loss on it trains the guide end to end.

The same closed form runs on the service side in numpy (`service.kernel_estimation.least_squares_kernel`),
so the exported guide network plus that function is the estimator that is served and benchmarked.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from service.deconvolution import GAMMA
from service.kernel_estimation import EDGE_FRACTION, LUMINANCE, RIDGE, taper_window
from training import losses


def _linear_luminance(rgb: tf.Tensor) -> tf.Tensor:
    lin = tf.pow(tf.clip_by_value(tf.cast(rgb, tf.float32), 1e-6, 1.0), GAMMA)
    return tf.tensordot(lin, tf.constant(LUMINANCE, tf.float32), axes=[[3], [0]])


def _gradients(gray: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Forward differences, zero on the last column/row (the same as the numpy side)."""
    gx = tf.pad(gray[:, :, 1:] - gray[:, :, :-1], [[0, 0], [0, 0], [0, 1]])
    gy = tf.pad(gray[:, 1:, :] - gray[:, :-1, :], [[0, 0], [0, 1], [0, 0]])
    return gx, gy


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


def kernel_loss(estimate: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
    """L1 to the true kernel plus |Σk − 1|, per kernel, averaged over the batch.

    The sum term is what keeps the guide honest: with L1 alone the guide learned to decorrelate itself
    from the input, which drives the closed-form kernel to zero (L1 = 1, better than a noisy early
    estimate) and stays there (a logged negative result: models/training-log-estimator0-collapsed.csv)."""
    l1 = tf.reduce_sum(tf.abs(estimate - kernel), axis=[1, 2])
    mass = tf.abs(tf.reduce_sum(estimate, axis=[1, 2]) - 1.0)
    return tf.reduce_mean(l1 + mass)


class KernelEstimatorTrainer(keras.Model):
    """Trains the guide so that the closed-form kernel matches the true one (see `kernel_loss`), while a
    content term keeps the guide a picture of the sharp image (without it the guide is free to become any
    pattern, and the one that zeroes the kernel is the easiest to find)."""

    def __init__(self, guide: keras.Model, size: int, content_weight: float = 10.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.guide, self.size, self.content_weight = guide, size, content_weight
        self.trackers = {name: keras.metrics.Mean(name=name) for name in ("loss", "kernel_loss", "content")}

    def compile(self, optimizer: keras.optimizers.Optimizer, grad_clip: float = 1.0) -> None:
        super().compile(optimizer=optimizer)
        self.grad_clip = grad_clip

    @property
    def metrics(self) -> list:
        return list(self.trackers.values())

    def call(self, blurred, training: bool = False):
        return least_squares_kernel_tf(blurred, self.guide(blurred, training=training), self.size)

    def train_step(self, data):
        blurred, sharp, kernel = data
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        with tf.GradientTape() as tape:
            guide = self.guide(blurred, training=True)
            on_kernel = kernel_loss(least_squares_kernel_tf(blurred, guide, self.size), kernel)
            content = losses.charbonnier(sharp, tf.cast(guide, tf.float32))
            loss = on_kernel + self.content_weight * content
            scaled = loss / replicas
        variables = self.guide.trainable_variables
        grads = tape.gradient(scaled, variables)
        if self.grad_clip:
            grads, _ = tf.clip_by_global_norm(grads, self.grad_clip)
        self.optimizer.apply_gradients(zip(grads, variables, strict=True))
        for name, value in (("loss", loss), ("kernel_loss", on_kernel), ("content", content)):
            self.trackers[name].update_state(value)
        return {name: t.result() for name, t in self.trackers.items()}


def pad_kernel(kernel: np.ndarray, size: int) -> np.ndarray:
    """Centre a (smaller, odd) kernel on a size×size canvas: the training target's frame."""
    if kernel.shape[0] > size:
        raise ValueError(f"kernel of {kernel.shape[0]} px does not fit the {size} px estimation canvas")
    out = np.zeros((size, size), np.float32)
    o = (size - kernel.shape[0]) // 2
    out[o:o + kernel.shape[0], o:o + kernel.shape[1]] = kernel
    return out
