"""The kernel corrector: its maps carry the blur, an untrained net returns the service's estimate, and the
CLI trains, exports and hands the service a corrector that returns a PSF."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import fftconvolve

from service.kernel_correction import KernelCorrector, correction_maps, gradient_autocorrelation
from training.kernel_corrector import build_corrector
from training.train_corrector import main as corrector_main


def _horizontal_streak(gray: np.ndarray, length: int) -> np.ndarray:
    return fftconvolve(gray, np.full((1, length), 1 / length), mode="valid")


def test_the_blurred_photos_autocorrelation_shows_the_blur_direction() -> None:
    gray = np.random.default_rng(0).random((160, 160))
    auto = gradient_autocorrelation(_horizontal_streak(gray, 15), canvas=21)
    centre = auto.shape[0] // 2
    row, column = np.abs(auto[centre]), np.abs(auto[:, centre])
    row[centre] = column[centre] = 0
    # a horizontal streak correlates the gradients along x over its length, and not along y
    assert row[centre + 1:centre + 15].sum() > 5 * column[centre + 1:centre + 15].sum()


def test_the_autocorrelation_turns_with_the_photo() -> None:
    """What makes the rotation/flip augmentation of training valid for this channel."""
    gray = _horizontal_streak(np.random.default_rng(1).random((120, 140)), 9)
    turned = gradient_autocorrelation(np.rot90(gray), canvas=11)
    assert np.allclose(turned, np.rot90(gradient_autocorrelation(gray, canvas=11)), atol=1e-9)


def test_an_untrained_corrector_returns_the_services_estimate(make_photo) -> None:
    photo = make_photo(np.random.default_rng(2), 96, 96).astype(np.float32) / 255
    kernel = np.zeros((7, 7))
    kernel[3, 1:6] = 0.2
    blurred = np.stack([fftconvolve(photo[..., c], kernel, mode="valid") for c in range(3)], -1).astype(np.float32)
    maps, estimate = correction_maps(blurred, photo[3:-3, 3:-3], canvas=15)
    output = build_corrector(15, width=4)(maps[None]).numpy()[0]
    assert maps.shape == (29, 29, 4) and output.shape == (15, 15)
    assert np.abs(output - estimate).sum() < 0.01


def test_the_cli_trains_exports_and_the_service_loads_it(photo_dir: Path, identity_onnx: Path, tmp_path: Path) -> None:
    out = tmp_path / "corrector"
    code = corrector_main(["--out", str(out), "--photos", str(photo_dir), "--guide",
                           str(identity_onnx), "--canvas", "15", "--crop", "64",
                           "--samples", "6", "--val-samples", "2", "--steps", "2", "--log-every", "1",
                           "--width", "4", "--val-fraction", "0.2", "--kernel-weights", "0", "0", "0", "0", "0", "1"])
    assert code == 0
    assert json.loads((out / "config.json").read_text())["kernel_weights"] == [0, 0, 0, 0, 0, 1]
    log = (out / "log.csv").read_text().splitlines()
    assert log[0].startswith("step,") and len(log) == 3
    corrector = KernelCorrector(out / "corrector.onnx")
    assert corrector.canvas == 15
    photo = np.random.default_rng(3).random((80, 90, 3)).astype(np.float32)
    kernel = corrector(photo, photo)
    assert kernel.shape == (15, 15) and kernel.min() >= 0 and kernel.sum() == pytest.approx(1)


def test_bad_settings_and_files_are_refused_with_one_line(identity_onnx: Path, tmp_path: Path, capsys) -> None:
    assert corrector_main(["--out", str(tmp_path / "a"), "--canvas", "16"]) == 2
    assert "--canvas must be odd" in capsys.readouterr().err
    for weights in (["1", "-1"], ["0", "0"], ["1"] * 7):
        assert corrector_main(["--out", str(tmp_path / "w"), "--kernel-weights", *weights]) == 2
        assert ("--kernel-weights: kernel weights are up to 6 non-negative numbers (shake line defocus blob "
                "gaussian curve) with a positive sum, got " + " ".join(weights)) in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert corrector_main(["--out", str(tmp_path / "b"), "--photos", str(empty)]) == 2
    assert "deblur-train-corrector:" in capsys.readouterr().err
    with pytest.raises(ValueError, match="not a kernel corrector"):
        KernelCorrector(identity_onnx)
