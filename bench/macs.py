"""Multiply-accumulates counted from an ONNX graph, and which BLAS kernel numpy runs (for the peak).

Why shapes from a real run as a fallback: the exported generator pads itself to its size multiple with
Shape/Slice/Pad ops, and onnx.shape_inference cannot see through them (every Conv output stays
[?, C, ?, ?]). So shapes come from shape inference when it resolves them, and otherwise from one ONNX
Runtime run on a concrete input with the needed tensors added as extra outputs.
"""

from __future__ import annotations

import ctypes
import math
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import numpy_helper, shape_inference

COUNTED = ("Conv", "ConvTranspose", "MatMul", "Gemm")


@dataclass
class MacCount:
    total: int  # MACs for one input of `input_shape`
    input_shape: tuple[int, ...]
    by_op: dict[str, int] = field(default_factory=dict)
    nodes: int = 0
    shapes_from: str = "shape inference"

    @property
    def per_megapixel(self) -> float:
        """MACs per input megapixel (input assumed NHWC: N×H×W pixels)."""
        n, h, w = self.input_shape[:3]
        return self.total / (n * h * w) * 1e6


def _static_input(model: onnx.ModelProto, shape: tuple[int, ...]) -> onnx.ModelProto:
    model = onnx.ModelProto.FromString(model.SerializeToString())
    dims = model.graph.input[0].type.tensor_type.shape.dim
    if len(dims) != len(shape):
        raise ValueError(f"model input has rank {len(dims)}, shape {shape} given")
    for dim, value in zip(dims, shape, strict=True):
        dim.Clear()
        dim.dim_value = value
    return model


def _inferred_shapes(model: onnx.ModelProto) -> dict[str, tuple[int, ...] | None]:
    inferred = shape_inference.infer_shapes(model, data_prop=True)
    shapes: dict[str, tuple[int, ...] | None] = {}
    for vi in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        dims = vi.type.tensor_type.shape.dim
        known = [d.dim_value if d.HasField("dim_value") else None for d in dims]
        shapes[vi.name] = tuple(known) if known and None not in known else None  # type: ignore[arg-type]
    for init in inferred.graph.initializer:
        shapes[init.name] = tuple(init.dims)
    return shapes


def _run_shapes(model: onnx.ModelProto, names: list[str], shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    """Shapes of `names` from one ONNX Runtime run on zeros of `shape`."""
    import onnxruntime as ort

    probe = onnx.ModelProto.FromString(model.SerializeToString())
    existing = {o.name for o in probe.graph.output}
    for name in names:
        if name not in existing:
            probe.graph.output.append(onnx.ValueInfoProto(name=name))
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep every named tensor
    session = ort.InferenceSession(probe.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: np.zeros(shape, np.float32)}
    outputs = session.run(names, feed)
    return {name: tuple(out.shape) for name, out in zip(names, outputs, strict=True)}


def _node_macs(node: onnx.NodeProto, shape: dict[str, tuple[int, ...]]) -> int:
    a, b, out = shape[node.input[0]], shape[node.input[1]], shape[node.output[0]]
    if node.op_type == "Conv":  # W: [Cout, Cin/group, k...]; each output element costs Cin/group·k... MACs
        return math.prod(out) * math.prod(b[1:])
    if node.op_type == "ConvTranspose":  # W: [Cin, Cout/group, k...]; each input element feeds Cout/group·k...
        return math.prod(a) * math.prod(b[1:])
    if node.op_type == "MatMul":  # [..., M, K] @ [..., K, N] -> [..., M, N]
        return math.prod(out) * a[-1]
    attrs = {at.name: onnx.helper.get_attribute_value(at) for at in node.attribute}  # Gemm
    k = a[0] if attrs.get("transA", 0) else a[1]
    return math.prod(out) * k


def count_macs(model: onnx.ModelProto, input_shape: tuple[int, ...] = (1, 256, 256, 3),
               allow_run: bool = True) -> MacCount:
    """MACs of Conv (incl. grouped/depthwise), ConvTranspose, MatMul and Gemm for one input of `input_shape`.

    Element-wise ops (norms, gates, adds) are not counted: they are memory-bound and a small share of the
    arithmetic; that is the usual convention for MACs/FLOPs of a network.
    """
    fixed = _static_input(model, tuple(input_shape))
    nodes = [n for n in fixed.graph.node if n.op_type in COUNTED]
    needed = sorted({name for n in nodes for name in (n.input[0], n.input[1], n.output[0])})
    shapes = _inferred_shapes(fixed)
    missing = [name for name in needed if shapes.get(name) is None]
    source = "shape inference"
    if missing:
        if not allow_run:
            raise ValueError(f"shape inference left {len(missing)} tensor shapes unknown (e.g. {missing[0]})")
        shapes.update(_run_shapes(fixed, missing, tuple(input_shape)))
        source = f"shape inference + one ONNX Runtime run ({len(missing)} shapes)"
    by_op: dict[str, int] = {}
    for node in nodes:
        by_op[node.op_type] = by_op.get(node.op_type, 0) + _node_macs(node, shapes)  # type: ignore[arg-type]
    return MacCount(sum(by_op.values()), tuple(input_shape), by_op, len(nodes), source)


def parameter_count(model: onnx.ModelProto) -> int:
    return int(sum(numpy_helper.to_array(init).size for init in model.graph.initializer))


# ---------------------------------------------------------------- BLAS identification


def blas_info() -> dict[str, str]:
    """Which BLAS numpy loaded, its kernel (core) name and thread count: threadpoolctl when installed,
    else OpenBLAS's own get_corename/get_config read through ctypes from the loaded library."""
    try:
        from threadpoolctl import threadpool_info

        for pool in threadpool_info():
            if pool.get("user_api") == "blas":
                return {"library": f"{pool.get('internal_api')} {pool.get('version')}",
                        "kernel": str(pool.get("architecture")), "threads": str(pool.get("num_threads"))}
    except ImportError:
        pass
    with open("/proc/self/maps") as maps:
        path = next((line.split()[-1] for line in maps if "openblas" in line.lower()), None)
    if path is None:
        return {"library": "unknown (no OpenBLAS mapped)", "kernel": "?", "threads": "?"}
    lib = ctypes.CDLL(path)  # already mapped: this only looks the symbols up
    for prefix, suffix in (("scipy_openblas_", "64_"), ("openblas_", "64_"), ("openblas_", "")):
        core = getattr(lib, f"{prefix}get_corename{suffix}", None)
        if core is None:
            continue
        config, threads = getattr(lib, f"{prefix}get_config{suffix}"), getattr(lib, f"{prefix}get_num_threads{suffix}")
        core.restype = config.restype = ctypes.c_char_p
        return {"library": config().decode().strip(), "kernel": core().decode(), "threads": str(threads())}
    return {"library": path.rsplit("/", 1)[-1], "kernel": "?", "threads": "?"}
