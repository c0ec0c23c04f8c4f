"""The kernel-aware pieces (issue 15): the independent protocol, aligned scores, Wiener deconvolution,
the least-squares kernel (numpy and TF must agree) and the estimator's training run."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from service.deconvolution import wiener
from service.kernel_estimation import centre_on_centroid, clean_kernel, least_squares_kernel, support_kernel
from training.data.degrade import blur_linear
from training.data.independent import FAMILIES, MAX_CENTROID_OFFSET, independent_cases, independent_kernel
from training.data.kernels import line_kernel
from training.scoring import aligned_psnr, psnr


def _centroid_offset(kernel: np.ndarray) -> float:
    yy, xx = np.mgrid[:kernel.shape[0], :kernel.shape[1]]
    c = (kernel.shape[0] - 1) / 2
    return float(np.hypot((kernel * yy).sum() - c, (kernel * xx).sum() - c))


@pytest.mark.parametrize("family", FAMILIES)
def test_independent_kernels_are_psfs_and_often_off_centre(family: str) -> None:
    offsets = []
    for i in range(12):
        k = independent_kernel(np.random.default_rng([3, i]), family)
        assert k.ndim == 2 and k.shape[0] == k.shape[1] and k.shape[0] % 2 == 1
        assert k.min() >= 0 and k.sum() == pytest.approx(1, abs=1e-5)
        offsets.append(_centroid_offset(k))
    assert max(offsets) <= MAX_CENTROID_OFFSET + 0.01
    assert np.mean(offsets) > 0.5  # uncentred by design: the aligned score has something to find


def test_independent_cases_are_fixed_and_cover_every_family(make_photo) -> None:
    rng = np.random.default_rng(0)
    photos = [(f"p{i}.png", make_photo(rng, 1100, 1700).astype(np.float32) / 255) for i in range(2)]
    a, b = list(independent_cases(photos)), list(independent_cases(photos))
    assert [c[0] for c in a] == [c[0] for c in b] and all(np.array_equal(x[1], y[1]) for x, y in zip(a, b, strict=True))
    assert {c[3] for c in a} == set(FAMILIES)
    for _, blurred, sharp, _, kernel in a:
        assert blurred.shape == sharp.shape == (512 - kernel.shape[0] + 1,) * 2 + (3,)


def test_aligned_psnr_finds_the_shift_and_plain_psnr_does_not(make_photo) -> None:
    ref = make_photo(np.random.default_rng(1), 96, 96).astype(np.float32) / 255
    shifted = np.roll(ref, (2, -3), axis=(0, 1))
    score, shift = aligned_psnr(shifted, ref)
    assert shift == (2, -3) and score > 100 and psnr(shifted, ref) < 30
    with pytest.raises(ValueError, match="too small"):
        aligned_psnr(ref[:16, :16], ref[:16, :16])


def _blurred_pair(make_photo, kernel: np.ndarray, size: int = 160) -> tuple[np.ndarray, np.ndarray]:
    region = make_photo(np.random.default_rng(2), size, size).astype(np.float32) / 255
    blurred = blur_linear(region, kernel)
    m = (kernel.shape[0] - 1) // 2
    return blurred, region[m:m + blurred.shape[0], m:m + blurred.shape[1]]


def _streak_and_noisy_guide(make_photo) -> tuple[np.ndarray, np.ndarray]:
    """(a photo blurred by a 9 px streak, its sharp version with 2 % noise): the pair both TF twins are checked on."""
    blurred, sharp = _blurred_pair(make_photo, line_kernel(np.random.default_rng(6), 9), 96)
    guide = np.clip(sharp + 0.02 * np.random.default_rng(7).standard_normal(sharp.shape), 0, 1).astype(np.float32)
    return blurred, guide


def test_wiener_with_the_true_kernel_restores_and_a_delta_is_nearly_the_identity(make_photo) -> None:
    kernel = line_kernel(np.random.default_rng(4), 15)
    blurred, sharp = _blurred_pair(make_photo, kernel)
    restored = psnr(wiener(blurred, kernel, 1e-2, boundary_iterations=10), sharp)
    assert restored > psnr(blurred, sharp) + 1
    assert restored > psnr(wiener(blurred, kernel, 1e-2, boundary_iterations=0), sharp) + 3  # the edge rings
    delta = np.zeros((5, 5), np.float32)
    delta[2, 2] = 1
    assert psnr(wiener(blurred, delta, 1e-4), blurred) > 40


def test_least_squares_kernel_recovers_the_kernel_from_a_sharp_guide(make_photo) -> None:
    kernel = line_kernel(np.random.default_rng(5), 13)
    blurred, sharp = _blurred_pair(make_photo, kernel, 200)
    estimate = clean_kernel(least_squares_kernel(blurred, sharp, 21, ridge=1e-2))  # noise-free: a light ridge
    truth = centre_on_centroid(kernel, 21)
    box = centre_on_centroid(np.ones((5, 5)), 21)
    error = np.abs(estimate - truth).sum()  # 2 = disjoint
    assert error < 0.5 and error < np.abs(box - truth).sum() / 3
    flat = clean_kernel(np.full((9, 9), -1.0))
    assert flat[4, 4] == 1 and flat.sum() == 1  # nothing positive: fall back to "no blur"


def test_tf_and_numpy_least_squares_kernels_are_the_same_maths(make_photo) -> None:
    tf = pytest.importorskip("tensorflow")
    from training.kernel_estimator import least_squares_kernel_tf
    blurred, guide = _streak_and_noisy_guide(make_photo)
    ours = least_squares_kernel(blurred, guide, 15)
    theirs = least_squares_kernel_tf(tf.constant(blurred[None]), tf.constant(guide[None]), 15).numpy()[0]
    assert np.abs(ours).max() > 1e-3  # not a trivially zero pair
    every = least_squares_kernel_tf(tf.constant(blurred[None]), tf.constant(guide[None]), 15, edge_fraction=1.0)
    every_np = least_squares_kernel(blurred, guide, 15, edge_fraction=1.0)
    assert np.abs(every_np - every.numpy()[0]).max() < 1e-3 * np.abs(every_np).max()
    assert np.abs(ours - theirs).max() < 1e-3 * np.abs(ours).max()


def test_tf_support_kernel_is_the_services_fit(make_photo) -> None:
    """The guide is trained through `support_kernel_tf`, and the service fits `support_kernel`: one maths."""
    tf = pytest.importorskip("tensorflow")
    from training.kernel_estimator import support_kernel_tf
    blurred, guide = _streak_and_noisy_guide(make_photo)
    ours = support_kernel(blurred, guide, 15)
    guide_tensor = tf.Variable(guide[None])
    with tf.GradientTape() as tape:
        theirs = support_kernel_tf(tf.constant(blurred[None]), guide_tensor, 15)
        peak = theirs[0, 7, 7]
    assert ours.sum() > 0.5 and ours.min() >= 0  # a real, non-negative fit
    assert np.abs(ours - theirs.numpy()[0]).max() < 1e-4 * ours.max()
    gradient = tape.gradient(peak, guide_tensor).numpy()
    assert np.isfinite(gradient).all() and np.abs(gradient).max() > 0  # the guide learns through the fit


def test_an_untrained_edge_selector_is_the_fixed_selection_and_learns_through_the_fit(make_photo) -> None:
    """The selector starts as today's top-10 % choice (so training starts from the served estimate), and the
    fit's gradient reaches its weights."""
    tf = pytest.importorskip("tensorflow")
    from training.edge_selector import build_edge_selector
    from training.kernel_estimator import strongest_edges, support_kernel_tf
    blurred, guide = (tf.constant(x[None]) for x in _streak_and_noisy_guide(make_photo))
    selector = build_edge_selector(width=4)
    fixed = support_kernel_tf(blurred, guide, 15).numpy()[0]
    with tf.GradientTape() as tape:
        weight = selector([blurred, guide, strongest_edges(guide)[..., None]])[..., 0]
        learned = support_kernel_tf(blurred, guide, 15, selection=weight)
        peak = learned[0, 7, 7]
    assert fixed.sum() > 0.5 and np.abs(fixed - learned.numpy()[0]).max() < 1e-5 * fixed.max()
    gradient = tape.gradient(peak, selector.get_layer("correction").kernel).numpy()
    assert np.isfinite(gradient).all() and np.abs(gradient).max() > 0


def test_the_estimators_loss_sees_the_estimate_the_service_cleans() -> None:
    """`floored` cuts what `clean_kernel` cuts, and the loss trains only the values the service keeps."""
    tf = pytest.importorskip("tensorflow")
    from training.kernel_estimator import floored, wiener_kernel_loss
    raw = np.random.default_rng(5).random((1, 9, 9)) ** 8  # a few strong entries over a diffuse floor
    raw[0, 4, 4] = 2.0
    cleaned = clean_kernel(raw[0])
    kept = floored(tf.constant(raw, tf.float32)).numpy()[0]
    assert np.array_equal(kept > 0, cleaned > 0) and 0 < (kept > 0).sum() < raw.size  # the floor was cut
    estimate = tf.Variable(raw.astype(np.float32))
    truth = np.zeros((1, 9, 9), np.float32)
    truth[0, 4, 2:7] = 0.2
    with tf.GradientTape() as tape:
        loss = wiener_kernel_loss(estimate, tf.constant(truth))
    gradient = tape.gradient(loss, estimate).numpy()[0]
    assert np.all(gradient[kept == 0] == 0) and np.abs(gradient[kept > 0]).max() > 0


def test_estimation_split_holds_out_every_seventh_training_photo(tmp_path: Path, make_photo) -> None:
    from training.data.folders import estimation_split, is_validation
    rng = np.random.default_rng(3)
    for i in range(30):
        Image.fromarray(make_photo(rng, 16, 16)).save(tmp_path / f"p{i:02d}.png")
    train, held_out = estimation_split([tmp_path], 0.2)
    assert not set(train) & set(held_out) and not any(is_validation(p, 0.2) for p in train + held_out)
    assert len(train) + len(held_out) == sum(not is_validation(p, 0.2) for p in tmp_path.glob("*.png"))
    assert len(held_out) == (len(train) + len(held_out) + 3) // 7


def test_estimator_step_with_a_degenerate_fit_is_skipped_and_counted() -> None:
    """A fit that comes out NaN (a guide with no edges left) must not poison the guide's weights."""
    tf = pytest.importorskip("tensorflow")
    import keras

    from training.kernel_estimator import KernelEstimatorTrainer, wiener_kernel_loss
    guide = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(3, 3, padding="same")])
    trainer = KernelEstimatorTrainer(guide, 5, solve=lambda b, g, size: tf.fill([tf.shape(b)[0], size, size], np.nan)
                                     + 0 * tf.reduce_sum(g), loss=wiener_kernel_loss)
    trainer.compile(keras.optimizers.SGD(0.1))
    images = np.random.default_rng(0).random((2, 16, 16, 3)).astype(np.float32)
    kernels = np.zeros((2, 5, 5), np.float32)
    kernels[:, 2, 2] = 1
    before = [w.copy() for w in guide.get_weights()]
    logs = trainer.train_on_batch(images, images, kernels, return_dict=True)  # (blurred, sharp, true kernel)
    assert logs["skipped"] == 1 and all(np.isfinite(v) for v in logs.values())
    assert all(np.array_equal(a, b) for a, b in zip(before, guide.get_weights(), strict=True))


@pytest.mark.parametrize("arm", [["estimator_solve=fourier", "estimator_loss=l1"],
                                 ["estimator_solve=support", "estimator_loss=wiener", "guide_gradient_weight=10"]])
def test_estimator_training_learns_logs_and_resumes(photo_dir: Path, tiny_overrides: list[str], tmp_path,
                                                    arm: list[str]) -> None:
    from training.train_estimator import main as estimator_main
    args = ["--set", *tiny_overrides, *arm, "kernel_canvas=11", "steps=4"]
    assert estimator_main(args) == 0
    run = tmp_path / "run"
    assert (run / "ckpt.npz").is_file() and (run / "guide.weights.h5").is_file()
    assert estimator_main(["--set", *tiny_overrides, *arm, "kernel_canvas=11", "steps=6"]) == 0
    rows = list(csv.DictReader((run / "log.csv").open()))
    assert [int(r["step"]) for r in rows if r["val_kernel_l1"]] == [0, 2, 4, 6]  # 0: where the guide starts
    scored = [r for r in rows if r["val_kernel_l1"]]
    assert all(0 <= float(r["val_kernel_l1"]) <= 2 and float(r["val_box_l1"]) > 0 for r in scored)
    assert all(np.isfinite(float(r["val_wiener_db"])) and float(r["val_delta_wiener_db"]) > 0 for r in scored)
    assert all(np.isfinite(float(r["loss"])) for r in rows if r["loss"])
    assert estimator_main(["--set", *tiny_overrides, "kernel_canvas=5", "max_blur=9"]) == 2  # 11 px kernels


def test_edge_selector_training_beside_a_frozen_guide(photo_dir: Path, tiny_overrides: list[str], tmp_path) -> None:
    from training.train_estimator import main as estimator_main
    support = ["estimator_solve=support", "estimator_loss=wiener", "kernel_canvas=11"]
    assert estimator_main(["--set", *tiny_overrides, *support, "steps=2"]) == 0  # a guide to freeze
    guide = tmp_path / "run" / "guide.weights.h5"
    frozen = guide.read_bytes()
    selector = [*tiny_overrides, *support, "estimator_net=selector", "selector_width=4", f"init_weights={guide}",
                f"run_dir={tmp_path / 'selector'}"]
    assert estimator_main(["--set", *selector, "steps=4"]) == 0
    run = tmp_path / "selector"
    assert (run / "selector.weights.h5").is_file() and (run / "ckpt.npz").is_file()
    assert estimator_main(["--set", *selector, "steps=6"]) == 0  # resumes from its checkpoint
    rows = list(csv.DictReader((run / "log.csv").open()))
    assert [int(r["step"]) for r in rows if r["val_kernel_l1"]] == [0, 2, 4, 6]
    assert all(np.isfinite(float(r["val_wiener_db"])) for r in rows if r["val_wiener_db"])
    assert guide.read_bytes() == frozen  # the guide is read, never trained or rewritten
    assert estimator_main(["--set", *selector, "init_weights="]) == 2  # no guide to weigh
    assert estimator_main(["--set", *selector, "estimator_solve=fourier"]) == 2  # the selector weighs the support fit


def test_eval_runs_the_independent_protocol_with_aligned_and_oracle_columns(tmp_path: Path, make_photo,
                                                                           identity_onnx: Path) -> None:
    from training.evaluate import main as eval_main
    photos = tmp_path / "independent"
    photos.mkdir()
    rng = np.random.default_rng(8)
    for i in range(2):
        Image.fromarray(make_photo(rng, 300, 340)).save(photos / f"p{i}.png")
    out = tmp_path / "eval"
    assert eval_main(["--model", str(identity_onnx), "--protocol", "independent",
                      "--photos", str(photos), "--out", str(out), "--tile", "64", "--overlap", "16"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["images"] == 2 and summary["mean_aligned_gain_db"] == pytest.approx(0, abs=1e-9)
    assert summary["mean_wiener_true_aligned_gain_db"] > 0 and set(summary["by_family"]) <= set(FAMILIES)


def _photo_folders(tmp_path: Path, make_photo) -> tuple[Path, Path]:
    """An own-protocol folder (one photo, named so that the 12 % file-hash split holds it out) and an
    independent folder, with photos big enough for the ±6 px search after the largest kernels."""
    from training.data.folders import is_validation
    own, independent = tmp_path / "own", tmp_path / "independent"
    own.mkdir()
    independent.mkdir()
    rng = np.random.default_rng(9)
    names = [n for n in (f"p{i}.png" for i in range(200)) if is_validation(Path(n), 0.12)][:1]
    Image.fromarray(make_photo(rng, 200, 220)).save(own / names[0])
    Image.fromarray(make_photo(rng, 200, 220)).save(independent / "q.png")
    return own, independent


def test_kernel_estimation_bench_scores_every_estimator(tmp_path: Path, make_photo, capsys) -> None:
    from bench.kernel_estimation import main as bench_main
    own, independent = _photo_folders(tmp_path, make_photo)
    assert bench_main(["--photos", str(own), "--independent", str(independent), "--limit", "1",
                       "--spectral", "--map"]) == 0
    table = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| own") or
             line.startswith("| independent")]
    assert len(table) == 12 and all("| 1 " in line for line in table)  # 6 estimators × 2 protocols, 1 case each
    assert sum("spectral" in line for line in table) == 2 and sum("MAP" in line for line in table) == 2
    ceiling = [line for line in table if "true kernel" in line]
    assert all(line.split("|")[4].strip() == "0" for line in ceiling)  # the true kernel's L1 to itself
    Image.fromarray(make_photo(np.random.default_rng(3), 200, 220)).save(own / "trained-on.png")  # not held out
    assert bench_main(["--photos", str(own), "--tune", "--limit", "1"]) == 0
    sweep = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| training split")]
    assert len(sweep) == 12 and all("| 1 " in line for line in sweep)  # 3 edge fractions × 4 ridges
    assert bench_main(["--photos", str(own), "--tune-map", "--limit", "1"]) == 0
    sweep = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| training split")]
    assert len(sweep) == 12 and sum("long blur" in line for line in sweep) == 6  # 3 L0 weights × 2 edge fractions


def _half_photo_half_hint(folder: Path, guide: Path) -> Path:
    """A kernel-aware model of the contract: out = (photo + hint) / 2, with `guide` copied beside it."""
    import shutil

    import onnx
    from onnx import TensorProto, helper, numpy_helper
    shutil.copy(guide, folder / "guide.onnx")
    weights = np.zeros((3, 6, 1, 1), np.float32)
    for c in range(3):
        weights[c, c] = weights[c, c + 3] = 0.5
    nodes = [helper.make_node("Transpose", ["blurry"], ["x"], perm=[0, 3, 1, 2]),
             helper.make_node("Conv", ["x", "w"], ["y"]),
             helper.make_node("Transpose", ["y"], ["sharp"], perm=[0, 2, 3, 1])]
    graph = helper.make_graph(nodes, "half", [helper.make_tensor_value_info("blurry", TensorProto.FLOAT,
                                                                            ["N", "H", "W", 6])],
                              [helper.make_tensor_value_info("sharp", TensorProto.FLOAT, ["N", "H", "W", 3])],
                              initializer=[numpy_helper.from_array(weights, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    helper.set_model_props(model, {"name": "half", "version": "0", "size_multiple": "1", "hint": "wiener",
                                   "hint_guide": "guide.onnx"})
    onnx.save(model, folder / "half.onnx")
    return folder / "half.onnx"


def test_kernel_estimation_bench_scores_a_corrector_and_each_estimate_through_a_chain(
        tmp_path: Path, make_photo, identity_onnx: Path, capsys) -> None:
    import onnx

    from bench.kernel_estimation import main as bench_main
    from training.kernel_corrector import build_corrector, to_onnx
    own, independent = _photo_folders(tmp_path, make_photo)
    for name in ("corrector", "second"):
        onnx.save(to_onnx(build_corrector(15, width=2)), tmp_path / f"{name}.onnx")
    assert bench_main(["--photos", str(own), "--independent", str(independent), "--limit", "1",
                       "--corrector", str(tmp_path / "corrector.onnx"), str(tmp_path / "second.onnx"), "--map",
                       "--refiner", str(_half_photo_half_hint(tmp_path, identity_onnx))]) == 0
    table = [line.split("|") for line in capsys.readouterr().out.splitlines() if line.startswith("| own")]
    learned = [row[2].strip() for row in table if "learned corrector" in row[2]]
    assert len(table) == 8 and len(learned) == 2 and "/second)" in learned[1]  # a row per corrector
    assert any("hybrid" in row[2] for row in table)
    ceiling = next(row for row in table if "true kernel" in row[2])
    assert ceiling[9].strip() == ceiling[10].strip()  # the chain fed the true kernel is the true-kernel chain
    box = next(row for row in table if "box" in row[2])
    assert float(box[9]) != float(ceiling[9])  # each estimate reaches the chain: a box is not the true kernel
    assert bench_main(["--photos", str(own), "--independent", str(independent), "--limit", "1", "--ceiling",
                       "--refiner", str(tmp_path / "half.onnx")]) == 0
    rows = [line.split("|") for line in capsys.readouterr().out.splitlines() if line.startswith("| ")][1:]
    assert [row[2].strip() for row in rows] == ["true kernel (ceiling)"] * 2  # one row per protocol


def test_deconvolution_bench_sweeps_and_times(tmp_path: Path, make_photo, capsys) -> None:
    from bench.deconvolution import main as bench_main
    own, _ = _photo_folders(tmp_path, make_photo)
    assert bench_main(["--photos", str(own), "--limit", "1", "--quick"]) == 0
    out = capsys.readouterr().out
    assert "1 own-protocol crops" in out and out.count("| 0.0") + out.count("| 0.1") >= 3


def test_real_kernels_writes_both_chains_side_by_side(tmp_path: Path, make_photo, identity_onnx: Path,
                                                      capsys) -> None:
    from bench.real_kernels import main as real_main
    real = tmp_path / "real"
    real.mkdir()
    Image.fromarray(make_photo(np.random.default_rng(4), 120, 160)).save(real / "shaky.png")
    (real / "notes.txt").write_text("not a photo")
    out = tmp_path / "out"
    assert real_main(["--refiner", str(_half_photo_half_hint(tmp_path, identity_onnx)), "--real", str(real),
                      "--out", str(out)]) == 0
    assert Image.open(out / "shaky.png").size == (3 * 160, 120)  # input | own estimate | classical estimate
    assert Image.open(out / "shaky-kernels.png").size[1] > 0
    assert "shaky.png: own estimate spans" in capsys.readouterr().out
    with pytest.raises(SystemExit):  # a plain model has no estimate of its own to compare
        real_main(["--refiner", str(identity_onnx), "--real", str(real), "--out", str(out)])
    assert "not a kernel-aware model" in capsys.readouterr().err
