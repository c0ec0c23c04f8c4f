"""Content and adversarial losses (keras.ops, so they run on any Keras backend).

Content: Charbonnier (a smooth L1, robust and the deblurring default since DeblurGAN-v2/MPRNet),
plus an L1 on the 2-D spectrum (MIMO-UNet's FFT loss: blur removes high frequencies, and a pixel
loss alone under-weights them), an optional SSIM term, and an optional VGG perceptual term that is
only built when the user supplies a weights file (nothing is ever downloaded).
"""

from __future__ import annotations

from pathlib import Path

import keras
from keras import ops


def charbonnier(y_true, y_pred, eps: float = 1e-3):
    return ops.mean(ops.sqrt(ops.square(y_true - y_pred) + eps**2))


def fft_l1(y_true, y_pred):
    """Mean absolute difference of the real and imaginary 2-D spectra per channel."""
    def spectrum(x):
        x = ops.transpose(x, (0, 3, 1, 2))
        return ops.fft2((x, ops.zeros_like(x)))
    (tr, ti), (pr, pi) = spectrum(y_true), spectrum(y_pred)
    return ops.mean(ops.abs(tr - pr) + ops.abs(ti - pi)) / ops.cast(ops.shape(y_true)[1] * ops.shape(y_true)[2],
                                                                      "float32") ** 0.5


def ssim_loss(y_true, y_pred):
    """1 − tf.image's SSIM (11×11 Gaussian window), the same SSIM as the training log's val_ssim."""
    import tensorflow as tf  # SSIM has no keras.ops equivalent; training runs on TF

    return 1.0 - tf.reduce_mean(tf.image.ssim(y_true, y_pred, max_val=1.0))


class Perceptual:
    """L1 between VGG19 `block3_conv3` features; requires a local ImageNet VGG19 weights file."""

    def __init__(self, weights_path: str) -> None:
        if not Path(weights_path).is_file():
            raise FileNotFoundError(f"perceptual loss needs a VGG19 weights file; {weights_path} does not exist")
        vgg = keras.applications.VGG19(include_top=False, weights=weights_path, input_shape=(None, None, 3))
        self.features = keras.Model(vgg.input, vgg.get_layer("block3_conv3").output)
        self.features.trainable = False

    def __call__(self, y_true, y_pred):
        def prep(x):  # VGG's caffe preprocessing: BGR, mean-subtracted, 0..255
            x = x[..., ::-1] * 255.0
            return x - ops.convert_to_tensor([103.939, 116.779, 123.68])
        return ops.mean(ops.abs(self.features(prep(y_true)) - self.features(prep(y_pred)))) / 100.0


def ralsgan_d(real_logits, fake_logits):
    """Relativistic average LSGAN (DeblurGAN-v2), discriminator side."""
    return 0.5 * (ops.mean(ops.square(real_logits - ops.mean(fake_logits) - 1))
                  + ops.mean(ops.square(fake_logits - ops.mean(real_logits) + 1)))


def ralsgan_g(real_logits, fake_logits):
    return 0.5 * (ops.mean(ops.square(fake_logits - ops.mean(real_logits) - 1))
                  + ops.mean(ops.square(real_logits - ops.mean(fake_logits) + 1)))


def wgan_d(real_logits, fake_logits):
    return ops.mean(fake_logits) - ops.mean(real_logits)


def wgan_g(real_logits, fake_logits):
    return -ops.mean(fake_logits)
