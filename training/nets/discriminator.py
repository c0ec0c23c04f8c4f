"""PatchGAN discriminators: one scale (pix2pix/DeblurGAN) or two (DeblurGAN-v2's multi-scale idea).

A PatchGAN scores overlapping ~70 px patches, not the whole image: it judges local texture and
sharpness, which is what blur destroys, and it works at any crop size. Instance normalisation
(not batch norm) keeps the WGAN-GP gradient penalty per-sample as the penalty assumes.
"""

from __future__ import annotations

import keras
from keras import layers


def _patchgan(x, width: int, prefix: str):
    h = layers.LeakyReLU(0.2)(layers.Conv2D(width, 4, strides=2, padding="same", name=f"{prefix}c0")(x))
    for i, (mult, stride) in enumerate(((2, 2), (4, 2), (8, 1)), start=1):
        h = layers.Conv2D(width * mult, 4, strides=stride, padding="same", name=f"{prefix}c{i}")(h)
        h = layers.LeakyReLU(0.2)(layers.GroupNormalization(groups=-1, name=f"{prefix}n{i}")(h))
    return layers.Conv2D(1, 4, padding="same", name=f"{prefix}logits")(h)


def build_discriminator(kind: str = "patchgan", width: int = 32) -> keras.Model:
    """`patchgan`: one map of patch logits; `multiscale`: full and ½-resolution maps, concatenated flat."""
    inputs = keras.Input((None, None, 3), name="image")
    if kind == "patchgan":
        return keras.Model(inputs, layers.Flatten()(_patchgan(inputs, width, "d_")), name="patchgan")
    if kind == "multiscale":
        full = layers.Flatten()(_patchgan(inputs, width, "d1_"))
        half = layers.AveragePooling2D(2)(inputs)
        return keras.Model(inputs, layers.Concatenate()([full, layers.Flatten()(_patchgan(half, width, "d2_"))]),
                           name="multiscale_patchgan")
    raise ValueError(f"unknown discriminator {kind!r}: use patchgan or multiscale")
