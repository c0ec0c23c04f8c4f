"""Network factories: one name in the config picks the architecture."""

from __future__ import annotations

import keras

from service.kernel_aware import hint_groups
from training.config import CHOICES
from training.nets.discriminator import build_discriminator
from training.nets.nafunet import build_nafunet
from training.nets.resnet import build_resnet_generator

GENERATORS = CHOICES["generator"]


def build_generator(cfg) -> keras.Model:
    if cfg.hint and cfg.generator != "nafunet":
        raise ValueError(f"hint {cfg.hint!r} needs generator 'nafunet', not {cfg.generator!r}")
    if cfg.generator == "nafunet":
        return build_nafunet(cfg.width, cfg.enc_blocks, cfg.mid_blocks, cfg.dec_blocks, cfg.kernel_sizes,
                             hint_groups=hint_groups(cfg.hint))
    if cfg.generator == "resnet":
        return build_resnet_generator(width=cfg.width)
    raise ValueError(f"unknown generator {cfg.generator!r}: use one of {', '.join(GENERATORS)}")


def macs_per_megapixel(model: keras.Model, size: int = 256) -> float:
    """Multiply-accumulates per output megapixel, counted from the layers' shapes on a size² input."""
    macs = 0
    probe = keras.Model(model.inputs, [layer.output for layer in model.layers[1:]])
    outputs = probe(keras.ops.zeros((1, size, size, model.inputs[0].shape[-1])))
    shapes = [o.shape for o in (outputs if isinstance(outputs, (list, tuple)) else [outputs])]
    for layer, shape in zip(model.layers[1:], shapes, strict=True):
        out_px = shape[1] * shape[2] if len(shape) == 4 else 0
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            macs += out_px * shape[3] * layer.kernel_size[0] * layer.kernel_size[1]
        elif isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv2DTranspose)):
            k = layer.kernel.shape
            transposed = isinstance(layer, keras.layers.Conv2DTranspose)
            in_px = out_px // (layer.strides[0] * layer.strides[1]) if transposed else out_px
            macs += in_px * k[0] * k[1] * k[2] * k[3]
    return macs / (size * size) * 1e6


__all__ = ["GENERATORS", "build_discriminator", "build_generator", "macs_per_megapixel"]
