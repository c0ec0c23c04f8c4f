"""DeblurGAN's ResNet generator (Kupyn et al. 2018), kept for fidelity with the paper.

Two stride-2 convolutions, nine residual blocks at ¼ resolution, two transposed convolutions, and
a tanh residual added to the input. Instance normalisation is the paper's choice; note it uses
per-image statistics, so tiled output differs slightly from whole-image output (the compact
default avoids this). About 11 M parameters: too slow for CPU training, fine on a GPU.
"""

from __future__ import annotations

import keras
from keras import layers

from training.nets.layers import CropLike, PadToMultiple


def _norm(name: str):
    return layers.GroupNormalization(groups=-1, epsilon=1e-5, name=name)  # groups=-1: instance norm


def build_resnet_generator(width: int = 64, blocks: int = 9, name: str = "deblurgan_resnet") -> keras.Model:
    inputs = keras.Input((None, None, 3), name="blurry")
    x = PadToMultiple(4, name="pad")(inputs)
    h = layers.Conv2D(width, 7, padding="same", name="stem")(x)
    h = layers.ReLU()(_norm("stem_norm")(h))
    for i, ch in enumerate((2 * width, 4 * width)):
        h = layers.Conv2D(ch, 3, strides=2, padding="same", name=f"down{i}")(h)
        h = layers.ReLU()(_norm(f"down{i}_norm")(h))
    for i in range(blocks):
        y = layers.Conv2D(4 * width, 3, padding="same", name=f"res{i}_a")(h)
        y = layers.ReLU()(_norm(f"res{i}_a_norm")(y))
        y = layers.Dropout(0.5, name=f"res{i}_drop")(y)
        y = _norm(f"res{i}_b_norm")(layers.Conv2D(4 * width, 3, padding="same", name=f"res{i}_b")(y))
        h = layers.Add(name=f"res{i}")([h, y])
    for i, ch in enumerate((2 * width, width)):
        h = layers.Conv2DTranspose(ch, 3, strides=2, padding="same", name=f"up{i}")(h)
        h = layers.ReLU()(_norm(f"up{i}_norm")(h))
    h = layers.Conv2D(3, 7, padding="same", activation="tanh", name="head")(h)
    x = layers.Add(name="residual")([x, h])
    model = keras.Model(inputs, CropLike(name="sharp")(x, inputs), name=name)
    model.size_multiple = 4
    return model
