"""The kernel corrector: its maps carry the blur, an untrained net returns the service's estimate, and the
CLI trains, exports and hands the service a corrector that returns a PSF."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import fftconvolve

from service.kernel_correction import (
    KernelCorrector,
    correction_maps,
    gradient_autocorrelation,
    half_size,
    kernel_from_log_map,
)
from training.kernel_corrector import build_corrector, wiener_excess_db
from training.train_corrector import main as corrector_main
from training.train_corrector import make_samples


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
    # at estimate gain 0 the estimate is only one of the maps: an untrained net spreads the mass evenly
    unanchored = build_corrector(15, width=4, estimate_gain=0.0)(maps[None]).numpy()[0]
    np.testing.assert_allclose(unanchored, np.full((15, 15), 1 / 225), rtol=1e-4)


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


def test_a_cross_scale_corrector_reads_the_guide_at_half_size(photo_dir: Path, identity_onnx: Path,
                                                              tmp_path: Path) -> None:
    out = tmp_path / "cross"
    code = corrector_main(["--out", str(out), "--photos", str(photo_dir), "--guide", str(identity_onnx),
                           "--canvas", "15", "--crop", "64", "--samples", "4", "--val-samples", "2", "--steps", "2",
                           "--log-every", "1", "--width", "4", "--val-fraction", "0.2", "--cross-scale",
                           "--loss", "wiener", "--l1-weight", "0.5", "--estimate-gain", "0.25"])
    assert code == 0
    config = json.loads((out / "config.json").read_text())
    assert config["l1_weight"] == 0.5 and config["estimate_gain"] == 0.25
    with np.load(out / "samples-val.npz") as samples:
        assert samples["maps"].shape == (2, 29, 29, 6)
    rows = (out / "log.csv").read_text().splitlines()
    assert rows[0].endswith("val_wiener_db,val_estimate_wiener_db") and len(rows) == 3
    with pytest.raises(ValueError, match="needs the guide model to run at half size"):
        KernelCorrector(out / "corrector.onnx")
    seen: list[tuple[int, ...]] = []
    corrector = KernelCorrector(out / "corrector.onnx", guide=lambda photo: seen.append(photo.shape) or photo)
    kernel = corrector(*(np.random.default_rng(4).random((2, 81, 90, 3)).astype(np.float32)))
    assert seen == [(40, 45, 3)] and kernel.shape == (15, 15) and kernel.sum() == pytest.approx(1)


def test_the_half_size_maps_see_a_long_streak_at_its_length(make_photo) -> None:
    """A 21 px streak is 10.5 px at half size: the doubled half-size estimate must still span about 21 px."""
    photo = make_photo(np.random.default_rng(5), 200, 200).astype(np.float32) / 255
    kernel = np.zeros((21, 21))
    kernel[10, :] = 1 / 21
    blurred = np.stack([fftconvolve(photo[..., c], kernel, mode="valid") for c in range(3)], -1).astype(np.float32)
    sharp = photo[10:-10, 10:-10]
    maps, _ = correction_maps(blurred, sharp, 31, coarse=(half_size(blurred), half_size(sharp)))
    coarse_estimate = kernel_from_log_map(maps[15:46, 15:46, 4])
    rows = coarse_estimate[14:17].sum(0)  # bilinear doubling spreads a one-row streak over three rows
    assert coarse_estimate.sum() == pytest.approx(1, abs=0.02) and rows.sum() > 0.9
    assert 17 <= np.count_nonzero(rows > 0.2 * rows.max()) <= 25, rows.round(3)


def test_the_wiener_loss_is_zero_for_a_right_kernel_anywhere_and_grows_with_the_error() -> None:
    streak = np.zeros((1, 15, 15), np.float32)
    streak[0, 7, 2:11] = 1 / 9
    moved = np.roll(streak, (2, -1), axis=(1, 2))
    blurred = np.full_like(streak, 1 / 225)
    turned = np.zeros_like(streak)
    turned[0, 2:11, 7] = 1 / 9
    excess = [float(wiener_excess_db(streak, k)[0]) for k in (streak, moved, turned, blurred)]
    assert excess[0] == pytest.approx(0, abs=1e-3) and excess[1] == pytest.approx(0, abs=1e-3)
    assert 0.5 < excess[2] < excess[3]


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


class _CountingSource:
    """Index → (a blurred crop whose pixels are the index, its sharp crop, a 3×3 kernel): deterministic."""

    def __init__(self) -> None:
        self.drawn: list[int] = []

    def with_kernel(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        self.drawn.append(index)
        kernel = np.zeros((3, 3))
        kernel[1, index % 3] = 1
        return np.full((8, 8, 3), index, np.float32), np.zeros((8, 8, 3), np.float32), kernel


class _FirstPixelMaps:
    canvas, channels = 5, 1

    def guide(self, blurred: np.ndarray) -> np.ndarray:
        return blurred

    def __call__(self, blurred: np.ndarray, guided: np.ndarray) -> np.ndarray:
        return np.full((9, 9, 1), blurred[0, 0, 0], np.float32)


def test_a_sample_cache_is_cut_or_extended_and_never_written_through_a_link(tmp_path: Path) -> None:
    """A larger corrector run reuses a smaller run's cache and draws only the missing indices, and
    replaces a cache linked from another run instead of writing into that run's file."""
    shared = tmp_path / "samples-a.npz"
    first = make_samples(_CountingSource(), _FirstPixelMaps(), 3, shared)
    assert first["maps"][:, 0, 0, 0].tolist() == [0, 1, 2] and first["kernels"].shape == (3, 5, 5)
    linked = tmp_path / "samples-b.npz"
    linked.symlink_to(shared)
    source = _CountingSource()
    more = make_samples(source, _FirstPixelMaps(), 5, linked)
    assert source.drawn == [3, 4] and more["maps"][:, 0, 0, 0].tolist() == [0, 1, 2, 3, 4]
    assert not linked.is_symlink()
    with np.load(shared) as untouched:
        assert len(untouched["kernels"]) == 3
    fresh = make_samples(_CountingSource(), _FirstPixelMaps(), 5, tmp_path / "samples-c.npz")
    assert np.array_equal(fresh["kernels"], more["kernels"])
    source = _CountingSource()
    fewer = make_samples(source, _FirstPixelMaps(), 2, linked)
    assert source.drawn == [] and fewer["maps"][:, 0, 0, 0].tolist() == [0, 1]
