"""The pure parts of bench/: MAC counting (exact counts on hand-built graphs), tables, results file, PSNR,
timing order, sweep sizes, test pictures. No timing is asserted: that is what the benchmarks are for."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from service_helpers import make_model

from bench.common import Table, Timing, interleaved, psnr, synthetic_photo, write_section
from bench.macs import blas_info, count_macs, parameter_count
from bench.tiling import sweep_configs


def _init(name: str, value: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(value, name)


def _model(nodes: list, inits: list, out_channels: int) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "H", "W", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", "h", "w", out_channels])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def test_conv_macs_count_full_grouped_and_pointwise_convs_exactly() -> None:
    """3×3 conv 3→8, depthwise 3×3 (group 8), 1×1 8→3 on 16×16: 256·(8·3·9 + 8·1·9 + 3·8·1) MACs."""
    nodes = [
        helper.make_node("Transpose", ["x"], ["a"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["a", "w1"], ["b"], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["b", "w2"], ["c"], pads=[1, 1, 1, 1], group=8),
        helper.make_node("Conv", ["c", "w3"], ["d"]),
        helper.make_node("Transpose", ["d"], ["y"], perm=[0, 2, 3, 1]),
    ]
    inits = [_init("w1", np.ones((8, 3, 3, 3), np.float32)), _init("w2", np.ones((8, 1, 3, 3), np.float32)),
             _init("w3", np.ones((3, 8, 1, 1), np.float32))]
    count = count_macs(_model(nodes, inits, 3), (1, 16, 16, 3))
    assert count.total == 256 * (216 + 72 + 24)
    assert count.per_megapixel == 312e6
    assert count.nodes == 3 and count.shapes_from == "shape inference"
    assert count_macs(_model(nodes, inits, 3), (2, 16, 16, 3)).per_megapixel == 312e6  # per pixel, not per call
    assert parameter_count(_model(nodes, inits, 3)) == 216 + 72 + 24


def test_strided_conv_and_gemm_count_output_positions() -> None:
    """A stride-2 2×2 conv 3→4 on 8×8 has 16 outputs × 4 × 12; a Gemm [16,12]·[12,5] has 16·5·12."""
    nodes = [
        helper.make_node("Transpose", ["x"], ["a"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["a", "w"], ["b"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Reshape", ["b", "shape"], ["c"]),
        helper.make_node("Gemm", ["c", "g"], ["d"]),
        helper.make_node("Reshape", ["d", "back"], ["y"]),
    ]
    inits = [_init("w", np.ones((4, 3, 2, 2), np.float32)), _init("shape", np.array([16, 4], np.int64)),
             _init("g", np.ones((4, 5), np.float32)), _init("back", np.array([1, 4, 4, 5], np.int64))]
    count = count_macs(_model(nodes, inits, 5), (1, 8, 8, 3))
    assert count.by_op == {"Conv": 16 * 4 * 12, "Gemm": 16 * 5 * 4}


def test_shapes_behind_dynamic_padding_come_from_a_real_run() -> None:
    """Pad to a multiple of 8 computed from Shape (like the generator's PadToMultiple): shape inference
    cannot see 10×13 → 16×16, so the count needs the ONNX Runtime fallback; MatMul [.,16,16,3]·[3,4]."""
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Slice", ["s", "st", "en"], ["hw"]),
        helper.make_node("Mod", ["hw", "m"], ["r"]),
        helper.make_node("Sub", ["m", "r"], ["p0"]),
        helper.make_node("Mod", ["p0", "m"], ["p"]),
        helper.make_node("Concat", ["z5", "p", "z1"], ["pads"], axis=0),
        helper.make_node("Pad", ["x", "pads"], ["xp"], mode="reflect"),
        helper.make_node("MatMul", ["xp", "w"], ["y"]),
    ]
    ints = {"st": [1], "en": [3], "m": [8, 8], "z5": [0] * 5, "z1": [0]}
    inits = [_init(k, np.array(v, np.int64)) for k, v in ints.items()] + [_init("w", np.ones((3, 4), np.float32))]
    model = _model(nodes, inits, 4)
    with pytest.raises(ValueError, match="unknown"):
        count_macs(model, (1, 10, 13, 3), allow_run=False)
    count = count_macs(model, (1, 10, 13, 3))
    assert count.total == 16 * 16 * 4 * 3
    assert "ONNX Runtime run" in count.shapes_from


def test_macs_of_the_service_test_model(tmp_path: Path) -> None:
    """Two 3×3 convs 3→3 (any dilation): 2 · 3·3·9 MACs per pixel."""
    model = onnx.load(str(make_model(tmp_path / "m.onnx", (1, 2))))
    assert count_macs(model, (1, 32, 48, 3)).per_megapixel == 162e6


def test_table_is_a_padded_markdown_table() -> None:
    table = Table(["a", "value"])
    table.add("x", 1.23456)
    table.add("longer", float("nan"))
    table.add("big", 12345.6)
    assert table.markdown().splitlines() == [
        "| a      | value |",
        "|--------|-------|",
        "| x      | 1.23  |",
        "| longer | -     |",
        "| big    | 12346 |",
    ]


def test_results_file_sections_are_replaced_not_duplicated(tmp_path: Path) -> None:
    path = tmp_path / "RESULTS.md"
    write_section(path, "engine", "## Engine\nold")
    write_section(path, "http", "## HTTP\none")
    write_section(path, "engine", "## Engine\nnew")
    write_section(path, "summary", "## Summary", first=True)
    text = path.read_text()
    assert text.startswith("# Benchmark results")
    assert "old" not in text and text.count("<!-- bench:engine -->") == 1
    assert text.index("## Summary") < text.index("## Engine\nnew") < text.index("## HTTP")


def test_psnr_known_values() -> None:
    a = np.zeros((4, 4, 3), np.float32)
    assert psnr(a, a) == float("inf")
    assert psnr(a, a + 0.1) == pytest.approx(20.0)
    assert psnr(a, a + 0.01) == pytest.approx(40.0)


def test_interleaved_runs_round_robin_and_quotes_the_median() -> None:
    calls: list[str] = []
    times = interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, repeats=3, warmup=1)
    assert calls == ["a", "b"] * 4
    assert [len(t.values) for t in times.values()] == [3, 3]
    assert Timing([3.0, 1.0, 2.0]).median == 2.0
    assert Timing([3.0, 1.0, 2.0]).spread == "1.000–3.000"


def test_sweep_sizes() -> None:
    defaults = {"tile_size": 256, "tile_overlap": 32, "tile_batch": 4}
    assert len(sweep_configs("full", defaults)) == 36
    trimmed = sweep_configs("trimmed", defaults)
    assert len(trimmed) == 14 and (256, 32, 1) in trimmed and (512, 64, 4) in trimmed
    assert sweep_configs("none", defaults) == []


def test_synthetic_photo_is_deterministic_and_in_range() -> None:
    a, b = synthetic_photo(40, 60, seed=3), synthetic_photo(40, 60, seed=3)
    assert a.shape == (40, 60, 3) and a.dtype == np.float32
    assert np.array_equal(a, b) and a.min() >= 0.0 and a.max() <= 1.0
    assert a.std() > 0.1  # edges and texture, not a flat field


def test_blas_info_names_the_library() -> None:
    info = blas_info()
    assert set(info) == {"library", "kernel", "threads"} and info["library"]
