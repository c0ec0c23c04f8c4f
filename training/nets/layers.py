"""Small Keras 3 layers shared by the generators, written with `keras.ops` so they run on TF and JAX."""

from __future__ import annotations

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable("deblur")
class PadToMultiple(layers.Layer):
    """Reflect-pad H and W up to a multiple, so the network accepts any size (NAFNet's check_image_size)."""

    def __init__(self, multiple: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.multiple = multiple

    def call(self, x):
        h, w = ops.shape(x)[1], ops.shape(x)[2]
        ph = (self.multiple - h % self.multiple) % self.multiple
        pw = (self.multiple - w % self.multiple) % self.multiple
        return ops.pad(x, [[0, 0], [0, ph], [0, pw], [0, 0]], mode="reflect")

    def get_config(self) -> dict:
        return {**super().get_config(), "multiple": self.multiple}


@keras.saving.register_keras_serializable("deblur")
class CropLike(layers.Layer):
    """Crop the first input back to the spatial size of the second (undoes PadToMultiple)."""

    def call(self, x, like):
        return x[:, : ops.shape(like)[1], : ops.shape(like)[2], :]


@keras.saving.register_keras_serializable("deblur")
class ChannelSlice(layers.Layer):
    """Channels [start, stop) of an NHWC tensor: splits a stacked input (photo, hint) inside the graph."""

    def __init__(self, start: int, stop: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.start, self.stop = start, stop

    def call(self, x):
        return x[..., self.start:self.stop]

    def get_config(self) -> dict:
        return {**super().get_config(), "start": self.start, "stop": self.stop}


class _BlockShuffle(layers.Layer):
    """Shared config of the pixel (un)shuffle layers: the block size b."""

    def __init__(self, block: int = 2, **kwargs) -> None:
        super().__init__(**kwargs)
        self.block = block

    def get_config(self) -> dict:
        return {**super().get_config(), "block": self.block}


@keras.saving.register_keras_serializable("deblur")
class SpaceToDepth(_BlockShuffle):
    """Pixel-unshuffle: (H, W, C) → (H/b, W/b, C·b²), so the costly layers run at lower resolution."""

    def call(self, x):
        b = self.block
        n, h, w, c = ops.shape(x)[0], ops.shape(x)[1], ops.shape(x)[2], x.shape[-1]
        x = ops.reshape(x, (n, h // b, b, w // b, b, c))
        x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
        return ops.reshape(x, (n, h // b, w // b, b * b * c))


@keras.saving.register_keras_serializable("deblur")
class DepthToSpace(_BlockShuffle):
    """Pixel-shuffle: the inverse of SpaceToDepth (sub-pixel upsampling without checkerboard)."""

    def call(self, x):
        b = self.block
        n, h, w, c = ops.shape(x)[0], ops.shape(x)[1], ops.shape(x)[2], x.shape[-1]
        x = ops.reshape(x, (n, h, w, b, b, c // (b * b)))
        x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
        return ops.reshape(x, (n, h * b, w * b, c // (b * b)))


@keras.saving.register_keras_serializable("deblur")
class SimpleGate(layers.Layer):
    """NAFNet's gate: split channels in two halves and multiply (a nonlinearity without activations)."""

    def call(self, x):
        a, b = ops.split(x, 2, axis=-1)
        return a * b


@keras.saving.register_keras_serializable("deblur")
class LayerScale(layers.Layer):
    """Per-channel residual scale initialised to zero: every block starts as the identity."""

    def build(self, input_shape) -> None:
        self.scale = self.add_weight(shape=(input_shape[-1],), initializer="zeros", name="scale")

    def call(self, x):
        return x * self.scale
