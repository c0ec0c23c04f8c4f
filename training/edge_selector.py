"""A learned edge selection for the support kernel fit: the guide stays as it is, a small net chooses its edges.

Why (issue 15, docs/kernel-aware.md "Session 26" and "Session 27"): a guide trained through the fit learns
fine texture that fits one photo's kernel and harms every other photo's; it is free to paint. Here the guide
(0.5.0, frozen) cannot change. The net only weighs the guide's gradients, pixel by pixel, on top of the fixed
top-10 % choice (Cho & Lee 2009's selection; Xu & Jia 2010 weigh edges by how isolated they are, which is one
thing a learned weight can find): it can trust an edge more or less than the others, never add one.

The weight is the fixed selection times exp(`REWEIGHT_RANGE`·tanh(c)), c from a zero-initialised last
convolution, relative to its mean on the image's edges: an untrained selector reproduces today's estimate,
and training learns only how much to trust each selected edge against the others, within a bounded factor.
Two earlier forms drifted into saturation within 100 steps, where the gradient died (docs/kernel-aware.md
"Session 27"): sigmoid(±6 on the fixed selection + c) took every gradient, and exp(2·tanh c) without
the mean moved every weight alike, along the one scale the fit ignores.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import tensorflow as tf
from keras import layers, ops

from training.kernel_corrector import gelu, residual_block
from training.kernel_estimator import KernelEstimatorTrainer, strongest_edges, support_kernel_tf

REWEIGHT_RANGE = 2.0  # tanh bounds each edge's log-weight to ±2 before the image's mean is taken out
CONTEXT_DILATIONS = (1, 2, 4, 8, 16)  # a receptive field of ~65 px: more than the largest kernel's reach


def build_edge_selector(width: int = 16) -> keras.Model:
    """(blurred, guide, fixed edges) [N, H, W, 3 | 3 | 1] → [N, H, W, 1] weights on the guide's gradients,
    zero off the fixed edges, for any H and W (fully convolutional, no resampling)."""
    blurred = keras.Input((None, None, 3), name="blurred")
    guide = keras.Input((None, None, 3), name="guide")
    edges = keras.Input((None, None, 1), name="edges")
    x = layers.Conv2D(width, 3, padding="same", activation=gelu, name="intro")(
        layers.Concatenate(name="features")([blurred, guide, edges]))
    for dilation in CONTEXT_DILATIONS:
        x = residual_block(x, width, dilation, f"context_dilation{dilation}")
    correction = layers.Conv2D(1, 3, padding="same", kernel_initializer="zeros", activation="tanh",
                               name="correction")(x)
    weight = layers.Lambda(lambda pair: relative_trust(*pair), name="weight")([edges, correction])
    return keras.Model([blurred, guide, edges], weight, name="edge_selector")


def relative_trust(edges: keras.KerasTensor, correction: keras.KerasTensor) -> keras.KerasTensor:
    """edges · exp(`REWEIGHT_RANGE`·c − its mean over the edges of each image): the weights' geometric mean on
    the fixed edges is 1. The fit does not change when every weight is scaled alike, so without this the net
    is free to drift along that scale, and Adam's normalised steps drift it until tanh saturates (supselect5
    put every weight at e^−2 within 100 steps, and the gradient died there)."""
    log_trust = REWEIGHT_RANGE * correction
    mean = ops.sum(edges * log_trust, axis=(1, 2, 3), keepdims=True) / ops.maximum(
        ops.sum(edges, axis=(1, 2, 3), keepdims=True), 1.0)
    return edges * ops.exp(log_trust - mean)


class EdgeSelectorTrainer(KernelEstimatorTrainer):
    """Trains the selector through the support fit against a frozen guide; there is no content term, because
    there is no picture to keep honest."""

    def __init__(self, selector: keras.Model, guide: keras.Model, size: int,
                 loss: Callable[[tf.Tensor, tf.Tensor], tf.Tensor], **kwargs) -> None:
        super().__init__(guide, size, content_weight=0.0, solve=support_kernel_tf, loss=loss, **kwargs)
        guide.trainable = False
        self.selector = selector

    @property
    def trained(self) -> keras.Model:
        return self.selector

    def selection(self, blurred: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """(the frozen guide, the selector's [N, H, W] weights on its gradients)."""
        guide = tf.stop_gradient(tf.cast(self.guide(blurred, training=False), tf.float32))
        weight = self.selector([blurred, guide, strongest_edges(guide)[..., None]])  # no layer acts apart in training
        return guide, weight[..., 0]

    def call(self, blurred, training: bool = False):
        guide, weight = self.selection(blurred)
        return support_kernel_tf(blurred, guide, self.size, selection=weight)

    def objective(self, blurred: tf.Tensor, sharp: tf.Tensor, kernel: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return self.kernel_loss(self(blurred, training=True), kernel), tf.zeros(())
