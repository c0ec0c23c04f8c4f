"""The kernel-aware refiner (issue 15, item 4): the support-constrained kernel estimate, the hint the
service makes from it, the hinted net that starts as the plain net, and a hinted training run."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np
import pytest

from service.kernel_aware import HINT_CANVAS, HINT_REGION, estimation_region, wiener_hint
from service.kernel_estimation import (
    centre_on_centroid,
    clean_kernel,
    least_squares_kernel,
    luminance_linear,
    selected_gradients,
    support_kernel,
    support_normal_equations,
    toeplitz_apply,
)
from training.data.degrade import add_noise, blur_linear, quantise
from training.data.kernels import shake_kernel


def _noisy_pair(make_photo, kernel: np.ndarray, size: int = 160) -> tuple[np.ndarray, np.ndarray]:
    region = make_photo(np.random.default_rng(11), size, size).astype(np.float32) / 255
    m = (kernel.shape[0] - 1) // 2
    blurred = quantise(add_noise(blur_linear(region, kernel), np.random.default_rng(12), shot=0.0, read=0.01))
    return blurred, region[m:m + blurred.shape[0], m:m + blurred.shape[1]]


def _l1(estimate: np.ndarray, kernel: np.ndarray, size: int = 31) -> float:
    return float(np.abs(centre_on_centroid(estimate, size) - centre_on_centroid(kernel, size)).sum())


def test_support_kernel_survives_sensor_noise_where_the_fourier_form_does_not(make_photo) -> None:
    kernel = shake_kernel(np.random.default_rng(3), 15)
    blurred, sharp = _noisy_pair(make_photo, kernel)
    constrained = support_kernel(blurred, sharp, 21, ridge=1e-3)  # a sharp guide needs only a light ridge
    assert constrained.shape == (21, 21) and constrained.min() >= 0 and constrained.sum() > 0
    ours = _l1(clean_kernel(constrained), kernel)
    fourier = _l1(clean_kernel(least_squares_kernel(blurred, sharp, 21)), kernel)
    assert ours < 0.6 and ours < fourier / 2
    with pytest.raises(ValueError, match="odd"):
        support_kernel(blurred, sharp, 20)


def test_the_matrix_free_normal_operator_is_the_dense_normal_matrix() -> None:
    """AᵀA·k by one FFT convolution equals the product with AᵀA built column by column, where column o of
    A is the guide's selected gradients shifted by o (the full linear convolution's support)."""
    size, rng = 5, np.random.default_rng(4)
    guide, blurred = rng.random((2, 18, 23, 3)).astype(np.float32)
    auto, _ = support_normal_equations(blurred, guide, size, edge_fraction=0.3)
    gradients = selected_gradients(luminance_linear(guide), 0.3)
    canvas = (18 + size - 1, 23 + size - 1)
    columns = []
    for oy in range(size):
        for ox in range(size):
            shifted = np.zeros((2, *canvas))
            for d, g in enumerate(gradients):
                shifted[d, oy:oy + 18, ox:ox + 23] = g
            columns.append(shifted.ravel())
    dense = np.stack(columns, 1)
    kernel = rng.random((size, size))
    expected = (dense.T @ dense @ kernel.ravel()).reshape(size, size)
    np.testing.assert_allclose(toeplitz_apply(auto, size)(kernel), expected, rtol=1e-9, atol=1e-9 * expected.max())


@pytest.mark.parametrize("shape", [(1, 1), (20, 30), (3, 200)])
def test_the_hint_is_defined_for_any_image_size(shape: tuple[int, int]) -> None:
    rgb = np.random.default_rng(0).random((*shape, 3)).astype(np.float32)
    hint, kernel = wiener_hint(rgb, lambda window: rgb[window])
    assert hint.shape == rgb.shape and np.isfinite(hint).all()
    assert kernel.shape == (HINT_CANVAS, HINT_CANVAS) and kernel.sum() == pytest.approx(1)
    flat = np.full((40, 40, 3), 0.5, np.float32)
    hint, kernel = wiener_hint(flat, lambda window: flat[window])  # no edges at all: "no blur", not NaN
    assert kernel.max() == 1 and np.abs(hint - flat).max() < 1e-3


def test_the_kernel_is_estimated_on_the_most_textured_window() -> None:
    rng = np.random.default_rng(3)
    rgb = np.full((300, 1100, 3), 0.5, np.float32)  # flat, with one textured patch right of centre
    rgb[40:260, 700:1000] = rng.random((220, 300, 3))
    rows, cols = estimation_region(rgb)
    assert (rows.stop - rows.start, cols.stop - cols.start) == (300, HINT_REGION)
    assert cols.start <= 700 and cols.stop >= 1000
    small = rgb[:HINT_REGION - 1, :HINT_REGION]
    assert estimation_region(small) == (slice(None), slice(None))  # a training crop is used whole


def test_the_hint_deblurs_when_the_guide_is_sharp(make_photo) -> None:
    from training.scoring import aligned_psnr
    kernel = shake_kernel(np.random.default_rng(5), 13)
    blurred, sharp = _noisy_pair(make_photo, kernel, 200)
    hint, _ = wiener_hint(blurred, lambda window: sharp[window])
    assert aligned_psnr(hint, sharp)[0] > aligned_psnr(blurred, sharp)[0] + 1


def test_hinted_net_starts_as_the_plain_net(tiny_overrides: list[str]) -> None:
    from training.config import Config
    from training.nets import build_generator
    from training.nets.nafunet import transfer_weights
    cfg = Config.load(None, tiny_overrides)
    plain, hinted = build_generator(cfg), build_generator(dataclasses.replace(cfg, hint="wiener"))
    rng = np.random.default_rng(1)
    for w in plain.weights:  # non-trivial weights everywhere (the head starts at zero)
        w.assign(rng.normal(0, 0.1, w.shape).astype(w.dtype))
    assert transfer_weights(plain, hinted) == ["hint_stem"]
    x = rng.random((2, 24, 40, 6)).astype(np.float32)
    np.testing.assert_array_equal(hinted(x).numpy(), plain(x[..., :3]).numpy())
    assert hinted.inputs[0].shape[-1] == 6 and hinted(x).shape == (2, 24, 40, 3)
    with pytest.raises(ValueError, match="no layer"):
        transfer_weights(hinted, plain)
    with pytest.raises(ValueError, match="unknown hint 'oracle'"):
        Config.load(None, [*tiny_overrides, "hint=oracle"])
    with pytest.raises(ValueError, match="needs generator 'nafunet'"):
        build_generator(dataclasses.replace(cfg, hint="wiener", generator="resnet"))


def test_a_hinted_run_trains_on_the_service_hint_from_plain_weights(tiny_overrides: list[str], identity_onnx: Path,
                                                                    tmp_path: Path) -> None:
    from training.config import Config
    from training.trainer import train
    plain = Config.load(None, [*tiny_overrides, "steps=2", f"run_dir={tmp_path / 'plain'}"])
    weights = train(plain) / "generator.weights.h5"
    guide = identity_onnx
    overrides = [*tiny_overrides, "steps=4", "hint=wiener", f"hint_guide={guide}", f"init_weights={weights}",
                 "crop=48", "val_crop=48"]
    run_dir = train(Config.load(None, overrides))
    rows = list(csv.DictReader((run_dir / "log.csv").open()))
    assert [int(r["step"]) for r in rows if r["val_psnr"]] == [2, 4]
    assert all(float(r["val_psnr"]) > 5 for r in rows)
    with np.load(run_dir / "ckpt.npz") as data:
        assert any(data[k].shape[:3] == (3, 3, 12) for k in data.files if k.startswith("g/"))  # the hint stem
    from training.nets import build_generator
    from training.trainer import initialise_generator
    later = Config.load(None, [*overrides, f"init_weights={run_dir / 'generator.weights.h5'}"])
    resumed, saved = build_generator(later), build_generator(later)
    saved.load_weights(run_dir / "generator.weights.h5")
    initialise_generator(resumed, later)  # a hinted run's own file: loaded as is, hint stem included
    assert all(np.array_equal(a, b) for a, b in zip(resumed.get_weights(), saved.get_weights(), strict=True))
    assert np.abs(resumed.get_layer("hint_stem").get_weights()[0]).max() > 0


def test_a_corrected_hint_run_trains_exports_and_serves_with_its_corrector(tiny_overrides: list[str],
                                                                           identity_onnx: Path, tmp_path: Path) -> None:
    import onnx

    from service.engine import Engine
    from service.kernel_correction import KernelCorrector
    from training.config import Config
    from training.export import main as export_main
    from training.kernel_corrector import build_corrector, to_onnx
    from training.trainer import train
    corrector = tmp_path / "corrector.onnx"
    onnx.save(to_onnx(build_corrector(15, width=2)), corrector)
    with pytest.raises(ValueError, match="read a hint_corrector"):
        Config.load(None, [*tiny_overrides, "hint=wiener-corrected"])
    overrides = [*tiny_overrides, "steps=2", "hint=wiener-corrected", f"hint_guide={identity_onnx}",
                 f"hint_corrector={corrector}", "crop=48", "val_crop=48", f"run_dir={tmp_path / 'run'}"]
    run_dir = train(Config.load(None, overrides))
    out = tmp_path / "export" / "refiner.onnx"
    assert export_main(["--run-dir", str(run_dir), "--out", str(out)]) == 0
    engine = Engine(out, providers=["cpu"], tile_size=64, tile_overlap=16, threads=1)
    assert isinstance(engine.corrector, KernelCorrector) and engine.corrector.path == out.parent / "corrector.onnx"
    assert engine.describe()["kernel_aware"]["corrector"] == {"file": "corrector.onnx", "canvas": 15,
                                                              "cross_scale": False}
    rgb = np.random.default_rng(4).random((70, 90, 3)).astype(np.float32)
    assert engine.deblur(rgb).image.shape == rgb.shape


def test_a_share_of_hints_is_made_with_the_true_kernel(make_photo, identity_onnx: Path) -> None:
    from service.deconvolution import wiener
    from service.engine import Engine
    from service.kernel_aware import HINT_BOUNDARY_ITERATIONS, HINT_WEIGHT
    from training.data.hinted import HintedPairs
    from training.data.synthesis import SyntheticPairs
    photos = [make_photo(np.random.default_rng(i), 120, 120) for i in range(2)]
    source = SyntheticPairs(photos, 48, seed=5, max_blur=15)
    guide = Engine(identity_onnx, providers=["cpu"], threads=1)
    always, never = HintedPairs(source, guide, true_share=1.0, seed=5), HintedPairs(source, guide)
    for index in range(3):
        blurred, sharp, kernel = source.with_kernel(index)
        made, target = always(index)
        np.testing.assert_array_equal(made[..., :3], blurred)
        np.testing.assert_array_equal(target, sharp)
        true_hint = np.clip(wiener(blurred, centre_on_centroid(kernel.astype(np.float64)), HINT_WEIGHT,
                                   HINT_BOUNDARY_ITERATIONS), 0, 1)
        np.testing.assert_allclose(made[..., 3:], true_hint, atol=1e-6)
        assert np.abs(never(index)[0][..., 3:] - true_hint).max() > 1e-3  # the estimate is not the truth
    half = HintedPairs(source, guide, true_share=0.5, seed=5)
    chosen = [np.array_equal(half(i)[0], always(i)[0]) for i in range(16)]
    assert 0 < sum(chosen) < 16 and chosen == [np.array_equal(half(i)[0], always(i)[0]) for i in range(16)]
    with pytest.raises(ValueError, match="synthetic"):
        HintedPairs(lambda i: source(i), guide, true_share=0.5)


def test_the_true_kernel_share_is_a_probability_of_a_synthetic_hinted_run(tiny_overrides: list[str]) -> None:
    from training.config import Config
    for bad, message in (("hint_true_share=1.5", "probability"), ("hint_true_share=0.3", "needs a hint")):
        with pytest.raises(ValueError, match=message):
            Config.load(None, [*tiny_overrides, bad])
    with pytest.raises(ValueError, match="needs a hint"):
        Config.load(None, [*tiny_overrides, "hint=wiener", "hint_true_share=0.3", "paired=data/gopro"])
    assert Config.load(None, [*tiny_overrides, "hint=wiener", "hint_true_share=0.3"]).hint_true_share == 0.3


def test_a_share_of_hints_is_made_with_the_true_kernel_turned(make_photo, identity_onnx: Path) -> None:
    from service.deconvolution import wiener
    from service.engine import Engine
    from service.kernel_aware import HINT_BOUNDARY_ITERATIONS, HINT_WEIGHT
    from training.data.hinted import HintedPairs, turned
    from training.data.synthesis import SyntheticPairs
    photos = [make_photo(np.random.default_rng(i), 120, 120) for i in range(2)]
    source = SyntheticPairs(photos, 48, seed=5, max_blur=15, kernel_weights=(0, 1))  # streaks: a turn is visible
    guide = Engine(identity_onnx, providers=["cpu"], threads=1)
    right = HintedPairs(source, guide, true_share=1.0, seed=5)
    wrong = HintedPairs(source, guide, seed=5, wrong_share=1.0)
    for index in range(3):
        blurred, sharp, kernel = source.with_kernel(index)
        made, target = wrong(index)
        np.testing.assert_array_equal(made[..., :3], blurred)
        np.testing.assert_array_equal(target, sharp)
        angle = np.random.default_rng([5, index, 3]).uniform(30, 330)
        hint_kernel = turned(centre_on_centroid(kernel.astype(np.float64)), angle)
        np.testing.assert_allclose(made[..., 3:], np.clip(wiener(blurred, hint_kernel, HINT_WEIGHT,
                                                                 HINT_BOUNDARY_ITERATIONS), 0, 1), atol=1e-6)
        assert np.abs(made[..., 3:] - right(index)[0][..., 3:]).max() > 1e-2  # a turned streak is not the truth
    split = HintedPairs(source, guide, true_share=0.4, seed=5, wrong_share=0.4)
    kinds = [(np.array_equal(split(i)[0], right(i)[0]), np.array_equal(split(i)[0], wrong(i)[0])) for i in range(20)]
    assert {(True, False), (False, True), (False, False)} == set(kinds)  # right, wrong and estimated hints all occur


def test_a_turned_kernel_keeps_its_mass_and_length() -> None:
    from training.data.hinted import turned
    streak = np.zeros((21, 21))
    streak[10, 3:18] = 1 / 15
    upright = turned(streak, 90)
    assert upright.sum() == pytest.approx(1) and upright.min() >= 0
    assert np.abs(upright - streak.T).max() < 1e-9  # a quarter turn of a centred row is the column
    diagonal = turned(streak, 45)
    rows, cols = np.nonzero(diagonal > 0.01)
    assert np.ptp(rows) >= 9 and np.ptp(cols) >= 9  # the 15 px streak spans ~10.6 px along each axis


def test_a_share_of_wrong_hints_is_made_with_the_true_kernel_scaled(make_photo, identity_onnx: Path) -> None:
    from service.deconvolution import wiener
    from service.engine import Engine
    from service.kernel_aware import HINT_BOUNDARY_ITERATIONS, HINT_WEIGHT
    from training.data.hinted import HintedPairs, scaled
    from training.data.synthesis import SyntheticPairs
    photos = [make_photo(np.random.default_rng(i), 120, 120) for i in range(2)]
    source = SyntheticPairs(photos, 48, seed=5, max_blur=15, kernel_weights=(0, 1))
    guide = Engine(identity_onnx, providers=["cpu"], threads=1)
    stretched = HintedPairs(source, guide, seed=5, wrong_share=1.0, wrong_scaled=1.0)
    factors = []
    for index in range(6):
        blurred, _, kernel = source.with_kernel(index)
        draws = np.random.default_rng([5, index, 3])
        draws.uniform(30, 330)  # the turn a turned hint would have used
        factors.append(draws.uniform(0.3, 0.7) if draws.random() < 0.5 else draws.uniform(1.3, 1.8))
        hint_kernel = scaled(centre_on_centroid(kernel.astype(np.float64)), factors[-1])
        expected = wiener(blurred, hint_kernel, HINT_WEIGHT, HINT_BOUNDARY_ITERATIONS)
        np.testing.assert_allclose(stretched(index)[0][..., 3:], np.clip(expected, 0, 1), atol=1e-6)
    assert min(factors) < 1 < max(factors)  # both too short and too long occur
    turned_only = HintedPairs(source, guide, seed=5, wrong_share=1.0)
    mixed = HintedPairs(source, guide, seed=5, wrong_share=1.0, wrong_scaled=0.5)
    kinds = [(np.array_equal(mixed(i)[0], turned_only(i)[0]), np.array_equal(mixed(i)[0], stretched(i)[0]))
             for i in range(12)]
    assert set(kinds) == {(True, False), (False, True)}  # each wrong hint is the turned one or the scaled one


def test_a_scaled_kernel_keeps_its_direction_and_mass_and_stays_unbroken() -> None:
    from training.data.hinted import scaled
    streak = np.zeros((21, 21))
    streak[10, 3:18] = 1 / 15
    for factor, length in ((0.5, 8), (1.6, 24)):
        stretched = scaled(streak, factor)
        assert stretched.sum() == pytest.approx(1) and stretched.min() >= 0
        cols = np.nonzero(stretched.sum(0) > 1e-3)[0]
        rows = np.nonzero(stretched.sum(1) > 1e-3)[0]
        assert abs(np.ptp(cols) + 1 - length) <= 2 and np.ptp(rows) <= 2  # the new length, the same thin row
        along = stretched.sum(0)[cols.min() + 1:cols.max()]
        assert along.min() > 0.5 * along.mean()  # no gaps where the points spread apart
    assert np.count_nonzero(scaled(streak, 4.0).sum(0)) <= 45  # what falls off the canvas is dropped


def test_the_wrong_kernel_share_needs_a_synthetic_hinted_run(tiny_overrides: list[str]) -> None:
    from training.config import Config
    for bad, message in (("hint_wrong_share=-0.1", "probability"), ("hint_wrong_share=0.3", "needs a hint")):
        with pytest.raises(ValueError, match=message):
            Config.load(None, [*tiny_overrides, bad])
    with pytest.raises(ValueError, match="sum is above 1"):
        Config.load(None, [*tiny_overrides, "hint=wiener", "hint_true_share=0.6", "hint_wrong_share=0.6"])
    assert Config.load(None, [*tiny_overrides, "hint=wiener", "hint_wrong_share=0.2"]).hint_wrong_share == 0.2
    with pytest.raises(ValueError, match="hint_wrong_share is 0"):
        Config.load(None, [*tiny_overrides, "hint=wiener", "hint_wrong_scaled=0.5"])
    with pytest.raises(ValueError, match="probability"):
        Config.load(None, [*tiny_overrides, "hint=wiener", "hint_wrong_share=0.2", "hint_wrong_scaled=1.5"])
