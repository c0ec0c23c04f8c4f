"""The compact default generator: a NAFNet-style U-Net behind a pixel-unshuffle stem.

Why this shape (CPU is the budget): the 2× pixel-unshuffle makes every layer run at ≤ ¼ of the
pixels; doubling channels while halving resolution keeps each level's cost equal, so most depth
sits at 1/16 scale. Depthwise kernels can be larger per level (`kernel_sizes`, LaKDNet-style large
kernels): a 7×7 depthwise conv at ⅛ scale sees ±24 px for a few hundred MACs per pixel, and blur up
to ~41 px needs that reach (a 3×3-only net measured an effective receptive field of about ±24 px).
Blocks are NAFNet's (LayerNorm, 1×1 expand, depthwise k×k, SimpleGate, gated FFN) minus the
global channel attention: a global pool would make tiled and whole-image outputs differ. The output
is a residual added to the input, so an untrained network is the identity, not noise.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

from training.nets.layers import (
    ChannelSlice,
    CropLike,
    DepthToSpace,
    LayerScale,
    PadToMultiple,
    SimpleGate,
    SpaceToDepth,
)


def naf_block(x, channels: int, name: str, kernel: int = 3):
    """NAFNet block without the global attention (tile-safe)."""
    y = layers.LayerNormalization(epsilon=1e-6, name=f"{name}_norm1")(x)
    y = layers.Conv2D(2 * channels, 1, name=f"{name}_expand")(y)
    y = layers.DepthwiseConv2D(kernel, padding="same", name=f"{name}_dw")(y)
    y = SimpleGate(name=f"{name}_gate1")(y)
    y = layers.Conv2D(channels, 1, name=f"{name}_project")(y)
    x = layers.Add(name=f"{name}_res1")([x, LayerScale(name=f"{name}_beta")(y)])
    y = layers.LayerNormalization(epsilon=1e-6, name=f"{name}_norm2")(x)
    y = layers.Conv2D(2 * channels, 1, name=f"{name}_ffn1")(y)
    y = SimpleGate(name=f"{name}_gate2")(y)
    y = layers.Conv2D(channels, 1, name=f"{name}_ffn2")(y)
    return layers.Add(name=f"{name}_res2")([x, LayerScale(name=f"{name}_gamma")(y)])


def build_nafunet(width: int = 24, enc_blocks: Sequence[int] = (1, 1, 2), mid_blocks: int = 4,
                  dec_blocks: Sequence[int] = (1, 1, 1), kernel_sizes: Sequence[int] | None = None,
                  hint_channels: int = 0, name: str = "nafunet") -> keras.Model:
    """NHWC RGB [0, 1] in → same size out; any H, W (pads itself to `size_multiple`).

    `kernel_sizes` gives the depthwise kernel of each level, encoder/decoder levels then the middle
    (default 3 everywhere). `hint_channels` > 0 appends that many input channels (the kernel-aware
    chain's deconvolution, service/kernel_aware.py) with their own zero-initialised stem added to the
    RGB stem: every other layer keeps its name and shape, so a plain net's weights load unchanged
    (`transfer_weights`) and the hinted net starts as exactly that net."""
    kernel_sizes = tuple(kernel_sizes or (3,) * (len(enc_blocks) + 1))
    if len(kernel_sizes) != len(enc_blocks) + 1 or any(k < 1 or k % 2 == 0 for k in kernel_sizes):
        raise ValueError(f"kernel_sizes must be {len(enc_blocks) + 1} odd sizes (one per level and the middle), "
                         f"got {kernel_sizes}")
    multiple = 2 * 2 ** len(enc_blocks)
    inputs = keras.Input((None, None, 3 + hint_channels), name="blurry")
    # The image path (pad, residual add, crop) stays float32 under a mixed-precision policy: the
    # output is input + correction, and bfloat16 would round the input itself to ~1/256.
    padded = PadToMultiple(multiple, name="pad", dtype="float32")(inputs)
    x = ChannelSlice(0, 3, name="rgb", dtype="float32")(padded) if hint_channels else padded
    h = layers.Conv2D(width, 3, padding="same", name="stem")(SpaceToDepth(2, name="unshuffle")(x))
    if hint_channels:
        hint = SpaceToDepth(2, name="hint_unshuffle")(ChannelSlice(3, 3 + hint_channels, name="hint")(padded))
        h = layers.Add(name="hint_add")([h, layers.Conv2D(width, 3, padding="same", kernel_initializer="zeros",
                                                          name="hint_stem")(hint)])
    skips, channels = [], width
    for level, n in enumerate(enc_blocks):
        for i in range(n):
            h = naf_block(h, channels, f"enc{level}_{i}", kernel_sizes[level])
        skips.append(h)
        h = layers.Conv2D(2 * channels, 2, strides=2, name=f"down{level}")(h)
        channels *= 2
    for i in range(mid_blocks):
        h = naf_block(h, channels, f"mid_{i}", kernel_sizes[-1])
    for level, n in reversed(list(enumerate(dec_blocks))):
        h = layers.Conv2D(2 * channels, 1, use_bias=False, name=f"up{level}")(h)
        channels //= 2
        h = layers.Add(name=f"skip{level}")([DepthToSpace(2, name=f"shuffle{level}")(h), skips[level]])
        for i in range(n):
            h = naf_block(h, channels, f"dec{level}_{i}", kernel_sizes[level])
    h = layers.Conv2D(12, 3, padding="same", kernel_initializer="zeros", name="head")(h)
    h = DepthToSpace(2, name="shuffle_out", dtype="float32")(h)
    x = layers.Add(name="residual", dtype="float32")([x, h])
    outputs = CropLike(name="sharp", dtype="float32")(x, inputs)
    model = keras.Model(inputs, outputs, name=name)
    model.size_multiple = multiple
    return model


def transfer_weights(source: keras.Model, target: keras.Model) -> list[str]:
    """Copy every layer's weights from `source` into the same-named layer of `target` (a plain net into
    its hinted twin); returns the names of `target`'s layers that kept their own (initial) weights."""
    by_name = {layer.name: layer for layer in target.layers}
    for layer in source.layers:
        if layer.weights:
            if layer.name not in by_name:
                raise ValueError(f"{target.name} has no layer {layer.name!r} to take {source.name}'s weights")
            by_name[layer.name].set_weights(layer.get_weights())
    copied = {layer.name for layer in source.layers}
    return [layer.name for layer in target.layers if layer.weights and layer.name not in copied]
