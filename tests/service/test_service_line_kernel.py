"""The cepstral streak estimate (service/line_kernel.py) and the line hint a kernel-aware model reads beside
the guided one (service/kernel_aware.py's LINE_HINT_NAME)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from service_helpers import make_model, photo
from test_service_kernel_aware import corrector_model, hinted_model

from service.deconvolution import to_srgb, wiener
from service.engine import Engine, ModelError
from service.kernel_aware import (
    HINT_BOUNDARY_ITERATIONS,
    HINT_WEIGHT,
    LINE_HINT_NAME,
    estimation_region,
    hinted_input,
    line_hint,
    wiener_hint,
)
from service.kernel_estimation import luminance_linear
from service.line_kernel import LINE_CANVAS, line_fit, line_kernel, line_psf


def streaked(degrees: float, length: float, size: int = 256, seed: int = 0) -> np.ndarray:
    """A textured size² sRGB photo blurred (circularly) by a uniform streak."""
    rng = np.random.default_rng(seed)
    fy, fx = np.fft.fftfreq(size)[:, None], np.fft.fftfreq(size)[None, :]
    texture = np.real(np.fft.ifft2(np.fft.fft2(rng.normal(size=(size, size))) / np.maximum(np.hypot(fy, fx), 1 / size)))
    sharp = (texture - texture.min()) / np.ptp(texture)
    kernel = np.zeros((size, size))
    start = size // 2 - LINE_CANVAS // 2
    kernel[start:start + LINE_CANVAS, start:start + LINE_CANVAS] = line_psf(degrees, length)
    blurred = np.real(np.fft.ifft2(np.fft.fft2(sharp) * np.fft.fft2(np.fft.ifftshift(kernel))))
    return np.repeat(to_srgb(np.clip(blurred, 0, 1))[..., None], 3, -1).astype(np.float32)


def test_a_streak_psf_has_its_length_and_direction() -> None:
    for degrees, rows, cols in ((0, 1, 21), (90, 21, 1), (45, 15, 15)):
        kernel = line_psf(degrees, 21)
        assert kernel.shape == (LINE_CANVAS, LINE_CANVAS) and kernel.sum() == pytest.approx(1) and kernel.min() >= 0
        r, c = np.nonzero(kernel > 0.05 * kernel.max())
        assert abs(np.ptp(r) + 1 - rows) <= 1 and abs(np.ptp(c) + 1 - cols) <= 1
    up = line_psf(45, 21)
    centre = LINE_CANVAS // 2
    assert up[centre - 6, centre + 6] > 0 and up[centre + 6, centre + 6] == 0  # 45°: up and to the right (y up)


@pytest.mark.parametrize(("degrees", "length"), [(0.0, 15.0), (30.0, 21.0), (120.0, 35.0)])
def test_the_cepstrum_finds_a_streaks_direction_and_length(degrees: float, length: float) -> None:
    found = line_fit(streaked(degrees, length))
    assert found is not None
    angle, found_length = found
    assert abs((angle - degrees + 90) % 180 - 90) <= 2 and abs(found_length - length) <= 1.5


def test_a_region_too_small_for_a_streak_gets_no_deconvolution() -> None:
    small = np.asarray(photo(20, 18), np.float32) / 255
    assert line_fit(small) is None
    kernel = line_kernel(small)
    assert kernel[LINE_CANVAS // 2, LINE_CANVAS // 2] == 1 and kernel.sum() == 1


def test_the_line_hint_is_the_luminance_deconvolved_with_the_streak() -> None:
    rgb = streaked(30, 21)
    hint, kernel = line_hint(rgb)
    np.testing.assert_array_equal(kernel, line_kernel(rgb[estimation_region(rgb)]))
    gray = to_srgb(luminance_linear(rgb))[..., None]
    np.testing.assert_allclose(hint, wiener(gray, kernel, HINT_WEIGHT, HINT_BOUNDARY_ITERATIONS), atol=1e-6)
    stacked = hinted_input(rgb, lambda window: rgb[window], hint=LINE_HINT_NAME)
    assert stacked.shape == (*rgb.shape[:2], 7)
    np.testing.assert_allclose(stacked[..., 6:], np.clip(hint, 0, 1), atol=1e-6)
    guided, _ = wiener_hint(rgb, lambda window: rgb[window])
    np.testing.assert_allclose(stacked[..., 3:6], np.clip(guided, 0, 1), atol=1e-6)


@pytest.fixture
def line_folder(tmp_path: Path) -> Path:
    make_model(tmp_path / "guide.onnx", (1, 1), metadata={"name": "guide-test", "version": "g1"})
    corrector_model(tmp_path / "corrector.onnx")
    return tmp_path


def test_the_engine_serves_a_model_that_reads_the_line_hint(line_folder: Path) -> None:
    model = hinted_model(line_folder / "model.onnx", "guide.onnx", LINE_HINT_NAME, channels=7,
                         corrector="corrector.onnx")
    engine = Engine(model, providers=["cpu"], tile_size=64, tile_overlap=16, threads=1)
    assert engine.describe()["input"]["channels"] == 7 and engine.describe()["kernel_aware"]["hint"] == LINE_HINT_NAME
    rgb = np.asarray(photo(100, 80), np.float32) / 255
    guided, _ = wiener_hint(rgb, lambda window: engine.guide.deblur(rgb[window]).image, engine.corrector)
    stacked = engine.model_input(rgb)
    np.testing.assert_allclose(stacked[..., 3:6], np.clip(guided, 0, 1), atol=1e-6)
    np.testing.assert_allclose(stacked[..., 6:], np.clip(line_hint(rgb)[0], 0, 1), atol=1e-6)
    result = engine.deblur(rgb)
    np.testing.assert_allclose(result.image, engine.deblur_whole(rgb), atol=2e-5)  # seam-free tiles


@pytest.mark.parametrize(("channels", "corrector", "message"), [
    (6, "corrector.onnx", "must have 7 channels"),
    (7, "", "its kernel corrector '' must be another file beside it"),
])
def test_a_line_hint_model_needs_its_channels_and_corrector(line_folder: Path, channels: int, corrector: str,
                                                            message: str) -> None:
    model = hinted_model(line_folder / "model.onnx", "guide.onnx", LINE_HINT_NAME, channels=channels,
                         corrector=corrector)
    with pytest.raises(ModelError, match=message):
        Engine(model, providers=["cpu"], threads=1)


def test_the_chain_bench_times_the_line_hint(line_folder: Path, capsys) -> None:
    from bench.kernel_aware import main as bench_main
    model = hinted_model(line_folder / "model.onnx", "guide.onnx", LINE_HINT_NAME, channels=7,
                         corrector="corrector.onnx")
    assert bench_main(["--chain", str(model), "--model", str(line_folder / "guide.onnx"), "--quick"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")][1:]
    assert len(rows) == 7 and "line hint" in rows[5] and "7 channels" in rows[6]
