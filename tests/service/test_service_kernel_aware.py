"""A kernel-aware model (docs/model-contract.md): the engine runs its guide, makes the hint the training
data made (service/kernel_aware.py), tiles photo ⊕ hint seam-free, and refuses a broken pairing."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from fastapi.testclient import TestClient
from onnx import TensorProto, helper, numpy_helper
from service_helpers import make_model, photo, png_bytes

from service.app import create_app
from service.deconvolution import wiener
from service.engine import Engine, ModelError
from service.kernel_aware import (
    CORRECTED_HINT_NAME,
    HINT_BOUNDARY_ITERATIONS,
    HINT_NAME,
    HINT_REGION,
    HINT_WEIGHT,
    estimation_region,
    estimation_shape,
    wiener_hint,
)
from service.kernel_correction import LOG_SCALE, KernelCorrector
from service.settings import Settings


def hinted_model(path: Path, guide: str, hint: str = HINT_NAME, channels: int = 6, corrector: str = "") -> Path:
    """A 3×3 conv from photo ⊕ hint to RGB: half the photo, half the hint, a little mixing (radius 1)."""
    rng = np.random.default_rng(3)
    w = rng.normal(0.0, 0.02, size=(3, channels, 3, 3)).astype(np.float32)
    for c in range(3):
        w[c, c, 1, 1] += 0.5
        w[c, (c + 3) % channels, 1, 1] += 0.5
    nodes = [helper.make_node("Transpose", ["blurry"], ["x"], perm=[0, 3, 1, 2]),
             helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1]),
             helper.make_node("Transpose", ["y"], ["sharp"], perm=[0, 2, 3, 1])]
    graph = helper.make_graph(nodes, "hinted", [helper.make_tensor_value_info("blurry", TensorProto.FLOAT,
                                                                              ["N", "H", "W", channels])],
                              [helper.make_tensor_value_info("sharp", TensorProto.FLOAT, ["N", "H", "W", 3])],
                              initializer=[numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for key, value in {"size_multiple": "8", "name": "hinted-test", "version": "h1", "hint": hint,
                       "hint_guide": guide, **({"hint_corrector": corrector} if corrector else {})}.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("kernel-aware")
    make_model(folder / "guide.onnx", (1, 1), metadata={"name": "guide-test", "version": "g1"})
    hinted_model(folder / "hinted.onnx", "guide.onnx")
    return folder


@pytest.fixture(scope="module")
def engine(folder: Path) -> Engine:
    return Engine(folder / "hinted.onnx", providers=["cpu"], tile_size=64, tile_overlap=16, tile_batch=2, threads=1)


def test_the_engine_refines_the_photo_beside_the_hint_made_from_its_guide(engine: Engine) -> None:
    rgb = np.asarray(photo(150, 100), np.float32) / 255
    counted: list[int] = []
    result = engine.deblur(rgb, counted.append)
    assert result.image.shape == rgb.shape
    assert result.tiles == sum(counted) == engine.tile_count(100, 150) == 2 * len(engine.plan(100, 150))
    hint, _ = wiener_hint(rgb, lambda window: engine.guide.deblur(rgb[window]).image)
    stacked = np.concatenate([rgb, np.clip(hint, 0, 1)], -1).astype(np.float32)
    np.testing.assert_allclose(engine.model_input(rgb), stacked, atol=1e-6)
    # seam-free tiles: a seam is 1e-3 or more; the reference runs its guide whole, and that float32 rounding
    # passes through the kernel estimate and the (float32) Wiener hint, hence 2e-5 here against 1e-5 plain
    np.testing.assert_allclose(result.image, engine.deblur_whole(rgb), atol=2e-5)
    plain = Engine(engine.guide.info.path, providers=["cpu"], tile_size=64, tile_overlap=16, threads=1)
    assert np.abs(result.image - plain.deblur(rgb).image).max() > 1e-3  # the hint really reaches the output


def test_another_estimator_can_make_the_hint(engine: Engine) -> None:
    """What benchmarks use to feed each estimator through the same chain."""
    rgb = np.asarray(photo(90, 70), np.float32) / 255
    streak = np.zeros((9, 9))
    streak[4, 1:8] = 1 / 7
    seen: list[tuple[int, ...]] = []

    def kernel_of(region: np.ndarray, guide: np.ndarray) -> np.ndarray:
        seen.append(region.shape + guide.shape)
        return streak
    hint = wiener(rgb, streak, HINT_WEIGHT, HINT_BOUNDARY_ITERATIONS)
    np.testing.assert_allclose(engine.model_input(rgb, kernel_of=kernel_of)[..., 3:], np.clip(hint, 0, 1), atol=1e-6)
    assert seen == [(70, 90, 3, 70, 90, 3)]
    assert np.abs(engine.deblur(rgb, kernel_of=kernel_of).image - engine.deblur(rgb).image).max() > 1e-3


def test_a_large_photo_runs_its_guide_on_the_estimation_region_only(engine: Engine) -> None:
    rgb = np.asarray(photo(HINT_REGION + 70, HINT_REGION + 20), np.float32) / 255
    window = estimation_region(rgb)
    assert rgb[window].shape[:2] == estimation_shape(*rgb.shape[:2]) == (HINT_REGION, HINT_REGION)
    counted: list[int] = []
    result = engine.deblur(rgb, counted.append)
    guide_tiles = len(engine.guide.plan(HINT_REGION, HINT_REGION))
    assert result.tiles == sum(counted) == len(engine.plan(*rgb.shape[:2])) + guide_tiles
    hint, _ = wiener_hint(rgb, lambda w: engine.guide.deblur(rgb[w]).image)
    np.testing.assert_allclose(engine.model_input(rgb)[..., 3:], np.clip(hint, 0, 1), atol=1e-6)


def test_model_describes_the_chain(engine: Engine) -> None:
    described = engine.describe()
    assert described["input"]["channels"] == 6
    assert described["kernel_aware"]["hint"] == HINT_NAME
    assert described["kernel_aware"]["guide"]["version"] == "g1"


def test_deblur_over_http_counts_both_stages(engine: Engine) -> None:
    with TestClient(create_app(Settings(providers="cpu"), engine)) as client:
        r = client.post("/deblur", files={"file": ("p.png", png_bytes(photo(90, 60)), "image/png")})
        assert r.status_code == 200 and int(r.headers["x-tiles"]) == engine.tile_count(60, 90)
        assert client.get("/model").json()["kernel_aware"]["guide"]["name"] == "guide-test"


def corrector_model(path: Path, canvas: int = 15, channels: int = 4) -> Path:
    """A kernel corrector of the contract that returns its estimate channel's centre, un-logged (a
    cross-scale one: its half-size estimate's)."""
    grid, channel = 2 * canvas - 1, 0 if channels == 4 else 4
    start, stop = numpy_helper.from_array(np.array([canvas // 2, canvas // 2, channel], np.int64), "start"), \
        numpy_helper.from_array(np.array([canvas // 2 + canvas, canvas // 2 + canvas, channel + 1], np.int64), "stop")
    axes = numpy_helper.from_array(np.array([1, 2, 3], np.int64), "axes")
    squeeze = numpy_helper.from_array(np.array([3], np.int64), "squeeze")
    scale = numpy_helper.from_array(np.array(LOG_SCALE, np.float32), "scale")
    one = numpy_helper.from_array(np.array(1.0, np.float32), "one")
    nodes = [helper.make_node("Slice", ["maps", "start", "stop", "axes"], ["centre"]),
             helper.make_node("Squeeze", ["centre", "squeeze"], ["logged"]),
             helper.make_node("Sub", ["logged", "one"], ["shifted"]),
             helper.make_node("Mul", ["shifted", "scale"], ["log_kernel"]),
             helper.make_node("Exp", ["log_kernel"], ["kernel"])]
    graph = helper.make_graph(nodes, "corrector", [helper.make_tensor_value_info("maps", TensorProto.FLOAT,
                                                                                 ["N", grid, grid, channels])],
                              [helper.make_tensor_value_info("kernel", TensorProto.FLOAT, ["N", canvas, canvas])],
                              initializer=[start, stop, axes, squeeze, scale, one])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))
    return path


def test_a_corrected_hint_makes_its_kernel_with_the_corrector_beside_it(folder: Path, tmp_path: Path) -> None:
    shutil.copy(folder / "guide.onnx", tmp_path / "guide.onnx")
    corrector_model(tmp_path / "corrector.onnx")
    model = hinted_model(tmp_path / "model.onnx", "guide.onnx", CORRECTED_HINT_NAME, corrector="corrector.onnx")
    engine = Engine(model, providers=["cpu"], tile_size=64, tile_overlap=16, threads=1)
    assert engine.describe()["kernel_aware"]["hint"] == CORRECTED_HINT_NAME
    assert engine.describe()["kernel_aware"]["corrector"] == {"file": "corrector.onnx", "canvas": 15,
                                                              "cross_scale": False}
    rgb = np.asarray(photo(100, 80), np.float32) / 255
    hint, kernel = wiener_hint(rgb, lambda window: engine.guide.deblur(rgb[window]).image, engine.corrector)
    assert kernel.shape == (15, 15)  # the corrector's canvas, not the service estimate's 45
    np.testing.assert_allclose(engine.model_input(rgb)[..., 3:], np.clip(hint, 0, 1), atol=1e-6)


def test_a_cross_scale_corrector_is_served_with_the_guides_half_size_pass(folder: Path, tmp_path: Path) -> None:
    shutil.copy(folder / "guide.onnx", tmp_path / "guide.onnx")
    corrector_model(tmp_path / "corrector.onnx", channels=6)
    model = hinted_model(tmp_path / "model.onnx", "guide.onnx", CORRECTED_HINT_NAME, corrector="corrector.onnx")
    engine = Engine(model, providers=["cpu"], tile_size=64, tile_overlap=16, threads=1)
    assert engine.describe()["kernel_aware"]["corrector"]["cross_scale"] is True
    rgb = np.asarray(photo(100, 80), np.float32) / 255
    halves: list[tuple[int, ...]] = []
    corrector = KernelCorrector(tmp_path / "corrector.onnx",
                                guide=lambda half: halves.append(half.shape) or engine.guide.deblur(half).image)
    hint, _ = wiener_hint(rgb, lambda window: engine.guide.deblur(rgb[window]).image, corrector)
    assert halves == [(40, 50, 3)]
    np.testing.assert_allclose(engine.model_input(rgb)[..., 3:], np.clip(hint, 0, 1), atol=1e-6)


@pytest.mark.parametrize(("case", "message"), [
    ("corrector-missing", "its kernel corrector 'absent.onnx' must be another file beside it"),
    ("corrector-without-its-hint", "names a kernel corrector"),
    ("corrector-is-not-one", "not a kernel corrector"),
])
def test_a_broken_corrector_is_one_clear_model_error(folder: Path, tmp_path: Path, case: str, message: str) -> None:
    shutil.copy(folder / "guide.onnx", tmp_path / "guide.onnx")
    corrector_model(tmp_path / "corrector.onnx")
    path = tmp_path / "model.onnx"
    if case == "corrector-missing":
        hinted_model(path, "guide.onnx", CORRECTED_HINT_NAME, corrector="absent.onnx")
    elif case == "corrector-without-its-hint":
        hinted_model(path, "guide.onnx", HINT_NAME, corrector="corrector.onnx")
    else:
        hinted_model(path, "guide.onnx", CORRECTED_HINT_NAME, corrector="guide.onnx")
    with pytest.raises(ModelError, match=message):
        Engine(path, providers=["cpu"], threads=1)


@pytest.mark.parametrize(("case", "message"), [
    ("unknown-hint", "is not one this service makes"),
    ("missing-guide", "must be another file beside it"),
    ("guide-is-itself", "must be another file beside it"),
    ("guide-needs-a-guide", "a guide must be a plain model"),
    ("three-channels", "must have 6 channels"),
])
def test_a_broken_pairing_is_one_clear_model_error(folder: Path, tmp_path: Path, case: str, message: str) -> None:
    shutil.copy(folder / "guide.onnx", tmp_path / "guide.onnx")
    hinted_model(tmp_path / "chained.onnx", "guide.onnx")
    path = tmp_path / "model.onnx"
    if case == "unknown-hint":
        hinted_model(path, "guide.onnx", hint="oracle")
    elif case == "missing-guide":
        hinted_model(path, "absent.onnx")
    elif case == "guide-is-itself":
        hinted_model(path, "model.onnx")
    elif case == "guide-needs-a-guide":
        hinted_model(path, "chained.onnx")
    else:
        make_model(path, (1,), metadata={"hint": HINT_NAME, "hint_guide": "guide.onnx"})
    with pytest.raises(ModelError, match=message):
        Engine(path, providers=["cpu"], threads=1)


def test_the_chain_bench_times_every_stage(folder: Path, capsys) -> None:
    from bench.kernel_aware import main as bench_main
    assert bench_main(["--chain", str(folder / "hinted.onnx"), "--model", str(folder / "guide.onnx"), "--quick"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")][1:]
    assert len(rows) == 6 and rows[0].startswith("| plain model") and "Wiener hint" in rows[4]
    with pytest.raises(SystemExit):  # a plain model is not a chain: argparse's error, exit 2
        bench_main(["--chain", str(folder / "guide.onnx"), "--quick"])
    assert "is not a kernel-aware model" in capsys.readouterr().err
