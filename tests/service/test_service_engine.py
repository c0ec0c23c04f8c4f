"""The ONNX Runtime engine on tiny conv models with a known receptive field."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnx
import pytest
from service_helpers import make_model, photo

from service.engine import Engine, ModelError, file_sha256


def picture(h: int, w: int) -> np.ndarray:
    return np.asarray(photo(w, h), np.float32) / 255.0


def test_tiled_equals_whole_image_when_receptive_field_is_inside_the_overlap(engine):
    img = picture(200, 136)
    tiled = engine.deblur(img)
    assert tiled.tiles > 4
    np.testing.assert_allclose(tiled.image, engine.deblur_whole(img), atol=1e-5)


def _hard_cut(engine: Engine, img: np.ndarray) -> np.ndarray:
    """Naive control: non-overlapping tiles pasted side by side (what a visible grid looks like)."""
    t = engine.tile_size
    h, w = img.shape[:2]
    out = np.zeros_like(img)
    for y in range(0, h, t):
        for x in range(0, w, t):
            crop = img[y : y + t, x : x + t]
            out[y : y + t, x : x + t] = engine.deblur_whole(crop)
    return out


def _seam_jumps(err: np.ndarray, lines: list[int]) -> tuple[float, float]:
    """Largest row-averaged change of the error across the given row boundaries vs all other rows.

    A visible grid is a line where the whole row jumps: that is what the row average picks out."""
    jumps = np.abs(np.diff(err, axis=0)).mean(axis=(1, 2))
    mask = np.zeros(len(jumps), bool)
    mask[[y - 1 for y in lines if 0 < y < len(jumps) + 1]] = True
    return float(jumps[mask].max()), float(jumps[~mask].max())


def test_wide_receptive_field_blends_without_a_grid(wide_model):
    eng = Engine(wide_model, providers=["cpu"], tile_size=64, tile_overlap=8, tile_batch=4, threads=1)
    img = picture(256, 192)
    whole = eng.deblur_whole(img)
    err = eng.deblur(img).image - whole
    psnr = 10 * np.log10(1.0 / float(np.mean(err**2)))
    assert psnr >= 40.0
    plan = eng.plan(256, 192)
    edges = sorted({y for y in plan.ys if y > 0} | {y + eng.tile_size for y in plan.ys if y + 64 < 256})
    at_edges, elsewhere = _seam_jumps(err, edges)
    assert at_edges <= elsewhere  # tile borders are not where the error jumps
    # control: the same metric does see the grid of naive side-by-side tiles
    cut_err = _hard_cut(eng, img) - whole
    cut_edges, cut_elsewhere = _seam_jumps(cut_err, list(range(64, 256, 64)))
    assert cut_edges > 1.2 * cut_elsewhere
    assert max(at_edges, elsewhere) < 0.25 * cut_edges
    assert np.abs(err).max() < 0.5 * np.abs(cut_err).max()


@pytest.mark.parametrize(("h", "w"), [(1, 1), (1, 50), (50, 1), (13, 7), (64, 64), (65, 129)])
def test_any_size_comes_back_the_same_size_and_in_range(engine, h, w):
    img = picture(h, w)
    out = engine.deblur(img).image
    assert out.shape == (h, w, 3) and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    whole = engine.deblur_whole(img)  # padded to the size multiple inside, cropped back
    assert whole.shape == (h, w, 3)


def test_tile_geometry_is_rounded_to_the_size_multiple(small_model):
    eng = Engine(small_model, providers=["cpu"], tile_size=60, tile_overlap=12, tile_batch=2, warmup=False)
    assert eng.info.size_multiple == 8
    assert (eng.tile_size, eng.tile_overlap) == (64, 16)
    assert not eng.warmed
    eng.warmup()
    assert eng.warmed


def test_metadata_is_read_with_defaults(engine, small_model, wide_model):
    info = engine.info
    assert (info.name, info.version, info.trained) == ("tiny-test", "t1", False)
    assert info.metrics == {"psnr": 12.5, "ssim": 0.5}
    assert info.sha256 == file_sha256(small_model)
    wide = Engine(wide_model, providers=["cpu"], tile_size=64, tile_overlap=8, warmup=False)
    assert wide.info.name == "wide" and wide.info.version == wide.info.sha256[:12]
    assert wide.info.trained is None and wide.info.metrics is None
    desc = engine.describe()
    assert desc["execution_provider"] == "CPUExecutionProvider"
    assert desc["input"]["size_multiple"] == 8 and desc["tiling"]["tile_size"] == 64


def test_concurrent_calls_agree(engine):
    img = picture(100, 90)
    expected = engine.deblur(img).image
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: engine.deblur(img).image, range(4)))
    for r in results:
        np.testing.assert_array_equal(r, expected)


def test_cuda_request_falls_back_with_one_warning(small_model, caplog):
    caplog.set_level(logging.WARNING, logger="deblur.engine")
    eng = Engine(small_model, providers=["cuda", "cpu"], tile_size=32, tile_overlap=8, warmup=False)
    warnings = [r for r in caplog.records if r.name == "deblur.engine"]
    if eng.provider == "CUDAExecutionProvider":
        assert warnings == []
    else:
        assert eng.provider == "CPUExecutionProvider"
        assert len(warnings) == 1 and "CUDA" in warnings[0].getMessage()


def test_bad_model_files_give_one_clear_error(tmp_path, small_model):
    with pytest.raises(ModelError, match="not found"):
        Engine(tmp_path / "nope.onnx", providers=["cpu"])
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"this is not a model")
    with pytest.raises(ModelError, match="cannot load model") as exc:
        Engine(junk, providers=["cpu"])
    assert "\n" not in str(exc.value)
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(small_model.read_bytes()[:200])
    with pytest.raises(ModelError):
        Engine(truncated, providers=["cpu"])
    renamed = make_model(tmp_path / "renamed.onnx", input_name="x")
    with pytest.raises(ModelError, match="blurry"):
        Engine(renamed, providers=["cpu"])
    bad_meta = make_model(tmp_path / "meta.onnx", metadata={"size_multiple": "eight"})
    with pytest.raises(ModelError, match="size_multiple"):
        Engine(bad_meta, providers=["cpu"])


def test_fixed_spatial_shape_is_refused(tmp_path):
    path = make_model(tmp_path / "fixed.onnx")
    model = onnx.load(str(path))
    for dim, value in zip(model.graph.input[0].type.tensor_type.shape.dim[1:3], (64, 64), strict=True):
        dim.dim_value = value
    onnx.save(model, str(path))
    with pytest.raises(ModelError, match="dynamic"):
        Engine(Path(path), providers=["cpu"])
