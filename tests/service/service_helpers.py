"""Test helpers: tiny ONNX models with a known receptive field (onnx.helper) and test pictures.

A unique module name (not helpers.py): the test dirs have no __init__.py, so module basenames
share one namespace with tests/training (hence also the test_service_ prefix)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from PIL import Image


def conv_weights(rng: np.random.Generator) -> np.ndarray:
    """3×3 kernels, 3→3 channels: mostly identity plus a small random mix (sums to ~1 per output)."""
    w = rng.normal(0.0, 0.04, size=(3, 3, 3, 3)).astype(np.float32)
    for c in range(3):
        w[c, c, 1, 1] += 0.7
    return w


def make_model(
    path: Path,
    dilations: tuple[int, ...] = (1, 1),
    size_multiple: int = 8,
    metadata: dict[str, str] | None = None,
    input_name: str = "blurry",
    output_name: str = "sharp",
    seed: int = 0,
) -> Path:
    """NHWC → Transpose → Conv(3×3, dilation d) per entry → Transpose; receptive radius = sum(dilations)."""
    rng = np.random.default_rng(seed)
    nodes = [helper.make_node("Transpose", [input_name], ["x0"], perm=[0, 3, 1, 2])]
    inits = []
    for i, d in enumerate(dilations):
        w = numpy_helper.from_array(conv_weights(rng), f"w{i}")
        b = numpy_helper.from_array(rng.normal(0, 0.01, size=3).astype(np.float32), f"b{i}")
        inits += [w, b]
        nodes.append(
            helper.make_node("Conv", [f"x{i}", f"w{i}", f"b{i}"], [f"x{i + 1}"], pads=[d] * 4, dilations=[d, d])
        )
    nodes.append(helper.make_node("Transpose", [f"x{len(dilations)}"], [output_name], perm=[0, 2, 3, 1]))
    inp = helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["N", "H", "W", 3])
    out = helper.make_tensor_value_info(output_name, TensorProto.FLOAT, ["N", "H", "W", 3])
    graph = helper.make_graph(nodes, "tiny", [inp], [out], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    meta = {"size_multiple": str(size_multiple), "normalisation": "rgb01"}
    meta.update(metadata or {})
    for key, value in meta.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))
    return path


def png_bytes(img: Image.Image, **opts: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", **opts)
    return buf.getvalue()


def encoded(img: Image.Image, fmt: str, **opts: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **opts)
    return buf.getvalue()


def photo(width: int = 96, height: int = 64, mode: str = "RGB", seed: int = 0) -> Image.Image:
    """A smooth-ish test picture with structure (gradients + noise) in the given mode."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx / max(width - 1, 1), yy / max(height - 1, 1), (xx + yy) % 17 / 16], axis=-1)
    arr = np.clip(base + rng.normal(0, 0.05, base.shape), 0, 1)
    img = Image.fromarray((arr * 255).astype(np.uint8), "RGB")
    return img if mode == "RGB" else img.convert(mode)
