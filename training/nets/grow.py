"""Carry trained weights into a generator with larger depthwise kernels, without changing its output.

A k×k depthwise kernel zero-padded to K×K (K > k, centred) computes the same convolution, so a
trained 3×3 model becomes a 7×7 model that starts exactly where the 3×3 one stopped; training then
learns the outer taps. This keeps CPU-hours already spent when the architecture's reach grows.

Its command line is `python -m training.grow` (training/grow.py).
"""

from __future__ import annotations

import keras
import numpy as np


def pad_kernel(kernel: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Zero-pad a (kh, kw, ...) kernel to `size`, centred (both sizes odd)."""
    dy, dx = (size[0] - kernel.shape[0]) // 2, (size[1] - kernel.shape[1]) // 2
    if dy < 0 or dx < 0:
        raise ValueError(f"cannot shrink a {kernel.shape[:2]} kernel to {size}: that would change the output")
    return np.pad(kernel, [(dy, dy), (dx, dx)] + [(0, 0)] * (kernel.ndim - 2))


def grow_weights(source: keras.Model, target: keras.Model) -> None:
    """Copy every layer's weights by name; depthwise kernels are zero-padded to the target's size."""
    layers = {layer.name: layer for layer in source.layers}
    missing = [layer.name for layer in target.layers if layer.weights and layer.name not in layers]
    if missing:
        raise ValueError(f"the target has layers the source lacks: {', '.join(missing[:5])}")
    for layer in target.layers:
        if not layer.weights:
            continue
        weights = []
        for have, want in zip(layers[layer.name].get_weights(), layer.get_weights(), strict=True):
            if isinstance(layer, keras.layers.DepthwiseConv2D) and have.ndim == 4:
                have = pad_kernel(have, want.shape[:2])
            if have.shape != want.shape:
                raise ValueError(f"layer {layer.name}: source shape {have.shape} does not fit {want.shape}")
            weights.append(have)
        layer.set_weights(weights)
