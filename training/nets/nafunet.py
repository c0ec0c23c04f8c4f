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
from typing import NamedTuple

import keras
from keras import layers

from service.contract import CHANNELS, INPUT_NAME, OUTPUT_NAME
from training.nets.layers import (
    ChannelSlice,
    CropLike,
    DepthToSpace,
    LayerScale,
    PadToMultiple,
    SimpleGate,
    SpaceToDepth,
)


class Names:
    """The layer names of the net. `nafunet_onnx` reads the weights back by them, so they are spelt only here;
    the per-level ones are templates: `Names.DOWN.format(level)`, a block `Names.BLOCK.format(stage, index)`."""

    PAD, UNSHUFFLE, STEM, HEAD, SHUFFLE_OUT, RESIDUAL = "pad", "unshuffle", "stem", "head", "shuffle_out", "residual"
    ENCODER, DECODER, MID, BLOCK = "enc{}", "dec{}", "mid", "{}_{}"  # the stages (mid has no level) and their blocks
    DOWN, UP, SHUFFLE, SKIP = "down{}", "up{}", "shuffle{}", "skip{}"
    RGB, HINT, HINT_UNSHUFFLE, HINT_STEM, HINT_ADD = "rgb", "hint", "hint_unshuffle", "hint_stem", "hint_add"  # hinted

    @staticmethod
    def hint_group(index: int) -> tuple[str, str, str, str]:
        """(slice, unshuffle, stem, add) of hint group `index`: the first keeps a one-hint net's names, so its
        weights load into a net with more hints; later ones are `hint2`, `hint2_stem` …"""
        names = (Names.HINT, Names.HINT_UNSHUFFLE, Names.HINT_STEM, Names.HINT_ADD)
        return names if index == 0 else tuple(n.replace("hint", f"hint{index + 1}", 1) for n in names)


class BlockNames(NamedTuple):
    """The layer names inside one NAF block, `PREFIX_norm1` …"""

    norm1: str
    expand: str
    dw: str
    gate1: str
    project: str
    res1: str
    beta: str
    norm2: str
    ffn1: str
    gate2: str
    ffn2: str
    res2: str
    gamma: str

    @classmethod
    def of(cls, prefix: str) -> BlockNames:
        return cls(*(f"{prefix}_{part}" for part in cls._fields))


def naf_block(x, channels: int, name: str, kernel: int = 3):
    """NAFNet block without the global attention (tile-safe)."""
    n = BlockNames.of(name)
    y = layers.LayerNormalization(epsilon=1e-6, name=n.norm1)(x)
    y = layers.Conv2D(2 * channels, 1, name=n.expand)(y)
    y = layers.DepthwiseConv2D(kernel, padding="same", name=n.dw)(y)
    y = SimpleGate(name=n.gate1)(y)
    y = layers.Conv2D(channels, 1, name=n.project)(y)
    x = layers.Add(name=n.res1)([x, LayerScale(name=n.beta)(y)])
    y = layers.LayerNormalization(epsilon=1e-6, name=n.norm2)(x)
    y = layers.Conv2D(2 * channels, 1, name=n.ffn1)(y)
    y = SimpleGate(name=n.gate2)(y)
    y = layers.Conv2D(channels, 1, name=n.ffn2)(y)
    return layers.Add(name=n.res2)([x, LayerScale(name=n.gamma)(y)])


def stage_blocks(model: keras.Model, stage: str) -> list[str]:
    """The block prefixes of one stage in order (enc0_0, enc0_1, …), read from the model's layers."""
    names = {layer.name for layer in model.layers}
    found: list[str] = []
    while BlockNames.of(prefix := Names.BLOCK.format(stage, len(found))).norm1 in names:
        found.append(prefix)
    return found


def levels(model: keras.Model) -> int:
    """How many encoder levels (each halves the resolution) the model has."""
    names, level = {layer.name for layer in model.layers}, 0
    while Names.DOWN.format(level) in names:
        level += 1
    return level


def is_nafunet(model: keras.Model) -> bool:
    names = {layer.name for layer in model.layers}
    return {Names.UNSHUFFLE, Names.STEM, Names.HEAD, Names.SHUFFLE_OUT} <= names


def build_nafunet(width: int = 24, enc_blocks: Sequence[int] = (1, 1, 2), mid_blocks: int = 4,
                  dec_blocks: Sequence[int] = (1, 1, 1), kernel_sizes: Sequence[int] | None = None,
                  hint_groups: Sequence[int] = (), name: str = "nafunet") -> keras.Model:
    """NHWC RGB [0, 1] in → same size out; any H, W (pads itself to `size_multiple`).

    `kernel_sizes` gives the depthwise kernel of each level, encoder/decoder levels then the middle
    (default 3 everywhere). Each of `hint_groups` appends that many input channels (the kernel-aware
    chain's deconvolutions, service/kernel_aware.py) with their own zero-initialised stem added to the
    RGB stem: every other layer keeps its name and shape, so a net with fewer hints loads unchanged
    (`transfer_weights`) and the hinted net starts as exactly that net."""
    kernel_sizes = tuple(kernel_sizes or (3,) * (len(enc_blocks) + 1))
    if len(kernel_sizes) != len(enc_blocks) + 1 or any(k < 1 or k % 2 == 0 for k in kernel_sizes):
        raise ValueError(f"kernel_sizes must be {len(enc_blocks) + 1} odd sizes (one per level and the middle), "
                         f"got {kernel_sizes}")
    multiple = 2 * 2 ** len(enc_blocks)
    inputs = keras.Input((None, None, CHANNELS + sum(hint_groups)), name=INPUT_NAME)
    # The image path (pad, residual add, crop) stays float32 under a mixed-precision policy: the
    # output is input + correction, and bfloat16 would round the input itself to ~1/256.
    padded = PadToMultiple(multiple, name=Names.PAD, dtype="float32")(inputs)
    x = ChannelSlice(0, CHANNELS, name=Names.RGB, dtype="float32")(padded) if hint_groups else padded
    h = layers.Conv2D(width, 3, padding="same", name=Names.STEM)(SpaceToDepth(2, name=Names.UNSHUFFLE)(x))
    start = CHANNELS
    for index, size in enumerate(hint_groups):
        hint_name, unshuffle_name, stem_name, add_name = Names.hint_group(index)
        hint = ChannelSlice(start, start + size, name=hint_name)(padded)
        hint_stem = layers.Conv2D(width, 3, padding="same", kernel_initializer="zeros", name=stem_name)
        h = layers.Add(name=add_name)([h, hint_stem(SpaceToDepth(2, name=unshuffle_name)(hint))])
        start += size
    skips, channels = [], width
    for level, n in enumerate(enc_blocks):
        for i in range(n):
            h = naf_block(h, channels, Names.BLOCK.format(Names.ENCODER.format(level), i), kernel_sizes[level])
        skips.append(h)
        h = layers.Conv2D(2 * channels, 2, strides=2, name=Names.DOWN.format(level))(h)
        channels *= 2
    for i in range(mid_blocks):
        h = naf_block(h, channels, Names.BLOCK.format(Names.MID, i), kernel_sizes[-1])
    for level, n in reversed(list(enumerate(dec_blocks))):
        h = layers.Conv2D(2 * channels, 1, use_bias=False, name=Names.UP.format(level))(h)
        channels //= 2
        up = DepthToSpace(2, name=Names.SHUFFLE.format(level))(h)
        h = layers.Add(name=Names.SKIP.format(level))([up, skips[level]])
        for i in range(n):
            h = naf_block(h, channels, Names.BLOCK.format(Names.DECODER.format(level), i), kernel_sizes[level])
    h = layers.Conv2D(4 * CHANNELS, 3, padding="same", kernel_initializer="zeros", name=Names.HEAD)(h)
    h = DepthToSpace(2, name=Names.SHUFFLE_OUT, dtype="float32")(h)
    x = layers.Add(name=Names.RESIDUAL, dtype="float32")([x, h])
    outputs = CropLike(name=OUTPUT_NAME, dtype="float32")(x, inputs)
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
