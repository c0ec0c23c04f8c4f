"""The kernel corrector network: kernel-space maps in, a corrected blur kernel out (service/kernel_correction.py
builds the maps and explains why they carry the kernel).

Every layer works on the (2·canvas − 1)² lag grid: dilated residual blocks give it a receptive field
wider than the canvas, so a pixel of the output kernel sees the whole autocorrelation. The head adds the
log of the service's estimate to its logits, with a zero-initialised last convolution, so an untrained
corrector returns the estimate it was given: training starts from the estimator that is served today and
learns only what to change. A softmax over the canvas keeps the output a PSF. The loss is the benchmark's
kernel metric, the L1 between kernels (0 perfect, 2 disjoint), or `wiener_loss`: what the service's
deconvolution loses with the estimate, plus that L1.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np
import onnx
import tensorflow as tf
import tf2onnx
from keras import layers, ops

from service.kernel_correction import LOG_SCALE, MAP_CHANNELS

DILATIONS = (1, 2, 4, 8)  # one round of residual blocks; `rounds` repeats it
INPUT_NAME, OUTPUT_NAME = "maps", "kernel"


def gelu(x: keras.KerasTensor) -> keras.KerasTensor:
    """GELU's tanh form: the exact one exports as Erfc, which ONNX Runtime has no kernel for."""
    return keras.activations.gelu(x, approximate=True)


def residual_block(x: keras.KerasTensor, width: int, dilation: int, name: str) -> keras.KerasTensor:
    y = layers.Conv2D(width, 3, padding="same", dilation_rate=dilation, activation=gelu, name=f"{name}_conv1")(x)
    y = layers.Conv2D(width, 3, padding="same", name=f"{name}_conv2")(y)
    return layers.Add(name=f"{name}_add")([x, y])


def build_corrector(canvas: int, width: int = 16, rounds: int = 2, channels: int = MAP_CHANNELS,
                    estimate_gain: float = 1.0) -> keras.Model:
    """[N, 2·canvas − 1, 2·canvas − 1, channels] maps → [N, canvas, canvas] kernel (unit sum); channel 0 is
    the log of the estimate it corrects (service/kernel_correction.py: correction_maps).

    The logits start as `estimate_gain` × that log (a trainable 1×1 convolution): at 1 an untrained net
    returns the estimate. Outside its support the log is about −11.5, so at 1 moving mass to where the
    estimate has none takes corrections of that size; a smaller gain makes the estimate a softer prior."""
    grid = 2 * canvas - 1
    maps = keras.Input((grid, grid, channels), name=INPUT_NAME)
    log_estimate = layers.Lambda(lambda m: (m[..., :1] - 1) * LOG_SCALE, name="log_estimate")(maps)
    x = layers.Conv2D(width, 3, padding="same", name="intro")(maps)
    for r in range(rounds):
        for dilation in DILATIONS:
            x = residual_block(x, width, dilation, f"round{r}_dilation{dilation}")
    correction = layers.Conv2D(1, 3, padding="same", kernel_initializer="zeros", name="correction")(x)
    estimate_gain = layers.Conv2D(1, 1, kernel_initializer=keras.initializers.Constant(estimate_gain),
                                  name="estimate_gain")(log_estimate)
    logits = layers.Add(name="logits")([correction, estimate_gain])
    start = (grid - canvas) // 2
    logits = layers.Cropping2D(((start, grid - canvas - start),) * 2, name="canvas")(logits)
    flat = layers.Reshape((canvas * canvas,), name="flatten")(logits)
    kernel = layers.Reshape((canvas, canvas), name=OUTPUT_NAME)(layers.Softmax(name="softmax")(flat))
    return keras.Model(maps, kernel, name="kernel_corrector")


def kernel_l1(true: tf.Tensor, predicted: tf.Tensor) -> tf.Tensor:
    return ops.sum(ops.abs(true - predicted), axis=(1, 2))


def _centred_spectrum(kernel: tf.Tensor, dft: tf.Tensor) -> tf.Tensor:
    """The kernel's transfer function with its centroid moved to the origin (a phase ramp): where the
    estimate sits on the canvas is not an error, because the service re-centres it and a shift of the
    whole picture costs nothing at the aligned score."""
    size = kernel.shape[1]
    positions = tf.range(size, dtype=tf.float32)
    row_centroid = tf.reduce_sum(kernel * positions[None, :, None], axis=(1, 2))
    column_centroid = tf.reduce_sum(kernel * positions[None, None, :], axis=(1, 2))
    spectrum = tf.matmul(tf.matmul(dft, tf.cast(kernel, tf.complex64)), dft, transpose_b=True)
    frequencies = tf.constant(np.fft.fftfreq(dft.shape[0]), tf.float32)
    angle = 2 * np.pi * (frequencies[None, :, None] * row_centroid[:, None, None]
                         + frequencies[None, None, :] * column_centroid[:, None, None])
    return spectrum * tf.exp(tf.complex(tf.zeros_like(angle), angle))


def wiener_excess_db(true: tf.Tensor, predicted: tf.Tensor, grid: int = 128, weight: float = 0.03) -> tf.Tensor:
    """How much worse, in dB, the service's Wiener deconvolution restores a photo when it is handed the
    estimate instead of the true kernel: per sample, 0 for a right kernel (up to position).

    Why not only the kernel L1: an L1 on the kernel rewards the average of the plausible kernels, and a
    blurred, centred average deconvolves badly; it is also blind to which errors matter (a missing faint
    tail costs a lot of L1 and little picture, a wrong phase the other way round). This is the expected
    error of x̂ = G·(K·x + n), G = K̂*/(|K̂|² + w|D|²), for a photo whose gradients are white (power 1/|D|²)
    and noise of power w, the statistics under which the service's weight w is the optimal one:
    E(ω) = |G·K − 1|²/|D|² + w|G|², summed over an FFT grid of `grid`² frequencies."""
    size = true.shape[1]
    frequencies = np.fft.fftfreq(grid)
    dft = np.exp(-2j * np.pi * frequencies[:, None] * np.arange(size)[None, :]).astype(np.complex64)
    dft = tf.constant(dft)
    gradient = (2 - 2 * np.cos(2 * np.pi * frequencies))[:, None] + (2 - 2 * np.cos(2 * np.pi * frequencies))[None]
    image_power = tf.constant(1 / np.maximum(gradient, 1e-2), tf.float32)
    prior = tf.constant(weight * gradient, tf.float32)

    def error(estimate: tf.Tensor, truth: tf.Tensor) -> tf.Tensor:
        gain = tf.math.conj(estimate) / tf.cast(tf.square(tf.abs(estimate)) + prior, tf.complex64)
        residual = tf.square(tf.abs(gain * truth - 1)) * image_power + weight * tf.square(tf.abs(gain))
        return tf.reduce_sum(residual, axis=(1, 2))

    truth = _centred_spectrum(tf.cast(true, tf.float32), dft)
    estimate = _centred_spectrum(tf.cast(predicted, tf.float32), dft)
    return 10 * (tf.math.log(error(estimate, truth)) - tf.math.log(error(truth, truth))) / np.log(10.0)


def wiener_loss(l1_weight: float = 1.0) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
    """`wiener_excess_db` (what the picture loses) plus `l1_weight` × the kernel L1 (which keeps the kernel
    compact: frequencies the prior damps anyway say little about pixels far from the path)."""
    def loss(true: tf.Tensor, predicted: tf.Tensor) -> tf.Tensor:
        return wiener_excess_db(true, predicted) + l1_weight * kernel_l1(true, predicted)
    return loss


def corrector_loss(name: str, l1_weight: float = 1.0) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
    """`deblur-train-corrector --loss`: "l1" (the kernel L1) or "wiener" (`wiener_loss`)."""
    return kernel_l1 if name == "l1" else wiener_loss(l1_weight)


LOSS_NAMES = ("l1", "wiener")


def to_onnx(corrector: keras.Model, opset: int = 17) -> onnx.ModelProto:
    _, grid, _, channels = corrector.inputs[0].shape

    @tf.function(input_signature=[tf.TensorSpec([None, grid, grid, channels], tf.float32, name=INPUT_NAME)])
    def serve(maps):
        return {OUTPUT_NAME: corrector(maps, training=False)}

    model, _ = tf2onnx.convert.from_function(serve, input_signature=serve.input_signature, opset=opset)
    return model


def dihedral(maps: np.ndarray, kernels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One random rotation/flip of a batch, applied alike to maps and kernels: every map is a sum over both
    gradient directions, so the eight symmetries of the square map a valid sample onto another."""
    turns, flip = int(rng.integers(4)), bool(rng.integers(2))
    maps, kernels = np.rot90(maps, turns, axes=(1, 2)), np.rot90(kernels, turns, axes=(1, 2))
    if flip:
        maps, kernels = maps[:, :, ::-1], kernels[:, :, ::-1]
    return np.ascontiguousarray(maps), np.ascontiguousarray(kernels)
