"""The kernel corrector network: kernel-space maps in, a corrected blur kernel out (service/kernel_correction.py
builds the maps and explains why they carry the kernel).

Every layer works on the (2·canvas − 1)² lag grid: dilated residual blocks give it a receptive field
wider than the canvas, so a pixel of the output kernel sees the whole autocorrelation. The head adds the
log of the service's estimate to its logits, with a zero-initialised last convolution, so an untrained
corrector returns the estimate it was given: training starts from the estimator that is served today and
learns only what to change. A softmax over the canvas keeps the output a PSF; the loss is the benchmark's
metric, the L1 between kernels (0 perfect, 2 disjoint).
"""

from __future__ import annotations

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


def build_corrector(canvas: int, width: int = 16, rounds: int = 2) -> keras.Model:
    """[N, 2·canvas − 1, 2·canvas − 1, MAP_CHANNELS] maps → [N, canvas, canvas] kernel (unit sum)."""
    grid = 2 * canvas - 1
    maps = keras.Input((grid, grid, MAP_CHANNELS), name=INPUT_NAME)
    log_estimate = layers.Lambda(lambda m: (m[..., :1] - 1) * LOG_SCALE, name="log_estimate")(maps)
    x = layers.Conv2D(width, 3, padding="same", name="intro")(maps)
    for r in range(rounds):
        for dilation in DILATIONS:
            x = residual_block(x, width, dilation, f"round{r}_dilation{dilation}")
    correction = layers.Conv2D(1, 3, padding="same", kernel_initializer="zeros", name="correction")(x)
    estimate_gain = layers.Conv2D(1, 1, kernel_initializer="ones", name="estimate_gain")(log_estimate)
    logits = layers.Add(name="logits")([correction, estimate_gain])
    start = (grid - canvas) // 2
    logits = layers.Cropping2D(((start, grid - canvas - start),) * 2, name="canvas")(logits)
    flat = layers.Reshape((canvas * canvas,), name="flatten")(logits)
    kernel = layers.Reshape((canvas, canvas), name=OUTPUT_NAME)(layers.Softmax(name="softmax")(flat))
    return keras.Model(maps, kernel, name="kernel_corrector")


def kernel_l1(true: tf.Tensor, predicted: tf.Tensor) -> tf.Tensor:
    return ops.sum(ops.abs(true - predicted), axis=(1, 2))


def to_onnx(corrector: keras.Model, opset: int = 17) -> onnx.ModelProto:
    grid = corrector.inputs[0].shape[1]

    @tf.function(input_signature=[tf.TensorSpec([None, grid, grid, MAP_CHANNELS], tf.float32, name=INPUT_NAME)])
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
