"""The NAF U-Net written straight into an NCHW ONNX graph from its Keras weights (no tf2onnx).

Why: tf2onnx keeps Keras' NHWC for the LayerNorm/SimpleGate arithmetic, so every block pays
Transpose nodes and full-size elementwise ops that ONNX Runtime cannot fuse. Built directly, the
graph is NCHW from the first op to the last (only the 3-channel input and output are transposed,
to keep the NHWC contract), LayerNorm's affine is folded into the 1×1 conv after it, each
block's LayerScale into the 1×1 conv before it, and SimpleGate's two halves come from two convs
instead of a channel Split. `training.export` checks the result against
TensorFlow like any other export, so a mistake here cannot reach `models/`. The layer names it reads the
weights by are the net's own (`nafunet.Names`, `nafunet.BlockNames`).
"""

from __future__ import annotations

import keras
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from service.contract import CHANNELS, DYNAMIC_DIMS, INPUT_NAME, OPSET, OUTPUT_NAME
from training.nets.nafunet import BlockNames, Names, levels, stage_blocks


class _Graph:
    """Collects nodes and initializers; every helper returns the name of the tensor it made."""

    def __init__(self, generator: keras.Model) -> None:
        self.model, self.nodes, self.inits, self.count = generator, [], [], 0

    def name(self, hint: str) -> str:
        self.count += 1
        return f"{hint}_{self.count}"

    def const(self, value: np.ndarray, hint: str) -> str:
        name = self.name(hint)
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, op_type: str, inputs: list[str], hint: str, **attrs) -> str:
        out = self.name(hint)
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out

    def weights(self, layer: str) -> list[np.ndarray]:
        return self.model.get_layer(layer).get_weights()

    def conv(self, x: str, kernel: np.ndarray, bias: np.ndarray | None, hint: str, stride: int = 1,
             same: bool = True, depthwise: bool = False) -> str:
        """Keras (kh, kw, cin, cout|1) kernel → ONNX Conv (cout, cin/group, kh, kw)."""
        kh, kw = kernel.shape[:2]
        w = kernel.transpose(2, 3, 0, 1) if depthwise else kernel.transpose(3, 2, 0, 1)
        pads = [kh // 2, kw // 2, kh // 2, kw // 2] if same else [0, 0, 0, 0]
        inputs = [x, self.const(w.astype(np.float32), f"{hint}_w")]
        if bias is not None:
            inputs.append(self.const(bias.astype(np.float32), f"{hint}_b"))
        return self.op("Conv", inputs, hint, kernel_shape=[kh, kw], strides=[stride, stride], pads=pads,
                       group=kernel.shape[2] if depthwise else 1)

    def keras_conv(self, x: str, layer: str, **kw) -> str:
        weights = self.weights(layer)
        return self.conv(x, weights[0], weights[1] if len(weights) > 1 else None, layer, **kw)

    def normalise(self, x: str, eps: float, hint: str) -> str:
        """LayerNorm over channels without its affine (folded into the next conv)."""
        centred = self.op("Sub", [x, self.op("ReduceMean", [x], f"{hint}_mean", axes=[1])], f"{hint}_centred")
        var = self.op("ReduceMean", [self.op("Mul", [centred, centred], f"{hint}_sq")], f"{hint}_var", axes=[1])
        std = self.op("Sqrt", [self.op("Add", [var, self.const(np.float32(eps), f"{hint}_eps")], f"{hint}_v")],
                      f"{hint}_std")
        return self.op("Div", [centred, std], hint)

    def norm_then_conv(self, x: str, norm: str, conv: str) -> tuple[str, str]:
        """LayerNorm(γ, β) → 1×1 conv(W, b) == normalise → 1×1 conv(γ·W, b + β·W)."""
        gamma, beta = self.weights(norm)
        kernel, bias = self.weights(conv)
        folded = kernel * gamma[None, None, :, None]
        bias = bias + np.einsum("c,co->o", beta, kernel[0, 0])
        y = self.normalise(x, self.model.get_layer(norm).epsilon, norm)
        half = kernel.shape[-1] // 2  # SimpleGate's halves as two convs: no Split, no strided copies
        return (self.conv(y, folded[..., :half], bias[:half], f"{conv}_a"),
                self.conv(y, folded[..., half:], bias[half:], f"{conv}_b"))

    def conv_then_scale(self, x: str, conv: str, scale: str) -> str:
        """1×1 conv(W, b) → LayerScale(s) == 1×1 conv(W·s, b·s)."""
        kernel, bias = self.weights(conv)
        (s,) = self.weights(scale)
        return self.conv(x, kernel * s, bias * s, conv)

    def gated(self, halves: tuple[str, str], depthwise: str | None = None) -> str:
        """SimpleGate (a · b), after the block's depthwise conv split the same way if there is one."""
        a, b = halves
        if depthwise:
            kernel, bias = self.weights(depthwise)
            half = kernel.shape[2] // 2
            a = self.conv(a, kernel[:, :, :half], bias[:half], f"{depthwise}_a", depthwise=True)
            b = self.conv(b, kernel[:, :, half:], bias[half:], f"{depthwise}_b", depthwise=True)
        return self.op("Mul", [a, b], f"{depthwise or 'ffn'}_gate")

    def block(self, x: str, prefix: str) -> str:
        """One NAF block (see nets.nafunet.naf_block) with every affine folded into a conv."""
        n = BlockNames.of(prefix)
        y = self.gated(self.norm_then_conv(x, n.norm1, n.expand), n.dw)
        x = self.op("Add", [x, self.conv_then_scale(y, n.project, n.beta)], n.res1)
        y = self.gated(self.norm_then_conv(x, n.norm2, n.ffn1))
        return self.op("Add", [x, self.conv_then_scale(y, n.ffn2, n.gamma)], n.res2)


def nafunet_to_onnx(generator: keras.Model, opset: int = OPSET) -> onnx.ModelProto:
    """The whole generator as an NCHW graph with the NHWC `blurry` → `sharp` contract."""
    g = _Graph(generator)
    depth = levels(generator)
    multiple = generator.get_layer(Names.PAD).multiple
    x = g.op("Transpose", [INPUT_NAME], "nchw", perm=[0, 3, 1, 2])
    size = g.op("Shape", [x], "hw", start=2, end=4)
    m = g.const(np.array([multiple, multiple], np.int64), "multiple")
    pad_hw = g.op("Mod", [g.op("Sub", [m, g.op("Mod", [size, m], "rem")], "short"), m], "pad_hw")
    pads = g.op("Concat", [g.const(np.zeros(6, np.int64), "zeros"), pad_hw], "pads", axis=0)
    padded = g.op("Pad", [x, pads], Names.PAD, mode="reflect")
    channels = generator.inputs[0].shape[-1]
    if channels > CHANNELS:  # a hinted net (nafunet's hint_groups): photo and hints split, a stem each, added
        def channel_slice(start: int, stop: int, name: str) -> str:
            bounds = [g.const(np.array([v], np.int64), r) for v, r in ((start, "from"), (stop, "to"), (1, "axis"))]
            return g.op("Slice", [padded, *bounds], name)
        rgb = channel_slice(0, CHANNELS, Names.RGB)
        h = g.keras_conv(g.op("SpaceToDepth", [rgb], Names.UNSHUFFLE, blocksize=2), Names.STEM)
        layer_names, index = {layer.name for layer in generator.layers}, 0
        while Names.hint_group(index)[0] in layer_names:
            hint_name, unshuffle_name, stem_name, add_name = Names.hint_group(index)
            group = generator.get_layer(hint_name)
            hint = channel_slice(group.start, group.stop, hint_name)
            h = g.op("Add", [h, g.keras_conv(g.op("SpaceToDepth", [hint], unshuffle_name, blocksize=2), stem_name)],
                     add_name)
            index += 1
        padded = rgb
    else:
        h = g.keras_conv(g.op("SpaceToDepth", [padded], Names.UNSHUFFLE, blocksize=2), Names.STEM)
    skips = []
    for level in range(depth):
        for prefix in stage_blocks(generator, Names.ENCODER.format(level)):
            h = g.block(h, prefix)
        skips.append(h)
        h = g.keras_conv(h, Names.DOWN.format(level), stride=2, same=False)
    for prefix in stage_blocks(generator, Names.MID):
        h = g.block(h, prefix)
    for level in reversed(range(depth)):
        up = g.keras_conv(h, Names.UP.format(level))
        up = g.op("DepthToSpace", [up], Names.SHUFFLE.format(level), blocksize=2, mode="DCR")
        h = g.op("Add", [up, skips[level]], Names.SKIP.format(level))
        for prefix in stage_blocks(generator, Names.DECODER.format(level)):
            h = g.block(h, prefix)
    head = g.op("DepthToSpace", [g.keras_conv(h, Names.HEAD)], Names.SHUFFLE_OUT, blocksize=2, mode="DCR")
    out = g.op("Add", [padded, head], Names.RESIDUAL)
    starts = g.const(np.zeros(2, np.int64), "starts")
    cropped = g.op("Slice", [out, starts, size, g.const(np.array([2, 3], np.int64), "axes")], "crop")
    g.nodes.append(helper.make_node("Transpose", [cropped], [OUTPUT_NAME], name="nhwc", perm=[0, 2, 3, 1]))
    io = [helper.make_tensor_value_info(name, TensorProto.FLOAT, [*DYNAMIC_DIMS, c])
          for name, c in ((INPUT_NAME, channels), (OUTPUT_NAME, CHANNELS))]
    graph = helper.make_graph(g.nodes, generator.name, io[:1], io[1:], g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="deblur-export")
    model.ir_version = 8
    return model
