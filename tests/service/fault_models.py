"""ONNX models that misbehave on purpose, built with onnx.helper: a slow one (to have requests in flight
when a test pulls the plug) and one that fails inside ONNX Runtime for some inputs but not others."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _save(nodes: list, inits: list, path: Path, size_multiple: int = 8) -> Path:
    inp = helper.make_tensor_value_info("blurry", TensorProto.FLOAT, ["N", "H", "W", 3])
    out = helper.make_tensor_value_info("sharp", TensorProto.FLOAT, ["N", "H", "W", 3])
    model = helper.make_model(
        helper.make_graph(nodes, "fault", [inp], [out], initializer=inits),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    model.ir_version = 8
    for key, value in {"size_multiple": str(size_multiple), "name": path.stem, "version": "f1"}.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))
    return path


def heavy_model(path: Path, channels: int = 48, layers: int = 3) -> Path:
    """3→C→…→C→3 convolutions: ~9·C²·layers MACs per pixel, so a few hundred kilopixels take seconds."""
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Transpose", ["blurry"], ["x0"], perm=[0, 3, 1, 2])]
    inits = []
    widths = [3] + [channels] * layers + [3]
    for i, (cin, cout) in enumerate(zip(widths, widths[1:], strict=False)):
        w = rng.normal(0, 0.1 / np.sqrt(9 * cin), (cout, cin, 3, 3)).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"w{i}"))
        nodes.append(helper.make_node("Conv", [f"x{i}", f"w{i}"], [f"x{i + 1}"], pads=[1, 1, 1, 1]))
    last = f"x{len(widths) - 1}"
    nodes.append(helper.make_node("Transpose", [last], ["sharp"], perm=[0, 2, 3, 1]))
    return _save(nodes, inits, path)


def failing_model(path: Path, offset: float = 0.0) -> Path:
    """Identity, plus a Gather whose index is 1000 × the first pixel's red value + offset: ONNX Runtime
    raises "indices element out of data bounds" when any tile starts with red > 0.01, and the black warm-up
    passes (with offset >= 10 every input fails, the warm-up included)."""
    nodes = [
        helper.make_node("Slice", ["blurry", "zero4", "one4"], ["corner"]),  # [N,1,1,1]: pixel (0,0), red
        helper.make_node("Mul", ["corner", "thousand"], ["scaled"]),
        helper.make_node("Add", ["scaled", "offset"], ["shifted"]),
        helper.make_node("Cast", ["shifted"], ["index"], to=TensorProto.INT64),
        helper.make_node("Gather", ["table", "index"], ["picked"], axis=0),  # [N,1,1,1] when in bounds
        helper.make_node("Mul", ["picked", "zero"], ["nothing"]),
        helper.make_node("Add", ["blurry", "nothing"], ["sharp"]),
    ]
    inits = [
        numpy_helper.from_array(np.zeros(4, np.int64), "zero4"),
        numpy_helper.from_array(np.array([2**31, 1, 1, 1], np.int64), "one4"),
        numpy_helper.from_array(np.array(1000.0, np.float32), "thousand"),
        numpy_helper.from_array(np.array(offset, np.float32), "offset"),
        numpy_helper.from_array(np.zeros(10, np.float32), "table"),
        numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
    ]
    return _save(nodes, inits, path)
