"""Networks, losses, config, ONNX export with parity, and evaluation through the serving engine."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import keras
import numpy as np
import onnx
import onnxruntime as ort
import pytest

from training import losses
from training.config import Config
from training.evaluate import main as eval_main
from training.export import ParityError, export_generator
from training.export import main as export_main
from training.nets import build_discriminator, build_generator, macs_per_megapixel
from training.nets.resnet import build_resnet_generator

TINY = ["width=8", "enc_blocks=[1,1]", "mid_blocks=1", "dec_blocks=[1,1]"]


@pytest.fixture(scope="module")
def tiny_generator() -> keras.Model:
    g = build_generator(Config.load(None, TINY))
    rng = np.random.default_rng(0)
    for w in g.weights:  # random, non-zero weights: an untrained net is the identity, which proves nothing
        w.assign(rng.normal(0, 0.1, w.shape).astype("float32"))
    return g


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_generator_is_identity_at_init_and_accepts_any_size() -> None:
    g = build_generator(Config.load(None, TINY))
    x = np.random.default_rng(0).random((2, 37, 53, 3), dtype=np.float32)
    y = g(x).numpy()
    assert y.shape == x.shape and np.allclose(y, x, atol=1e-6)
    assert g.size_multiple == 8


def test_image_path_stays_float32_under_bfloat16() -> None:
    """Under mixed precision an untrained net is still exactly the identity: the input is never rounded."""
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        g = build_generator(Config.load(None, TINY))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    x = np.random.default_rng(0).random((1, 37, 53, 3), dtype=np.float32)
    y = g(x).numpy()
    assert y.dtype == np.float32 and np.array_equal(y, x)
    assert g.get_layer("stem").compute_dtype == "bfloat16"


def test_generator_output_depends_only_on_a_local_window(tiny_generator: keras.Model) -> None:
    """No global pooling: a change far away leaves a pixel untouched (tiles can equal whole images)."""
    x = np.random.default_rng(1).random((1, 256, 256, 3), dtype=np.float32)
    y = tiny_generator(x).numpy()
    x2 = x.copy()
    x2[:, 200:, 200:] = 0
    y2 = tiny_generator(x2).numpy()
    assert np.array_equal(y[:, :64, :64], y2[:, :64, :64])
    assert not np.array_equal(y[:, 200:, 200:], y2[:, 200:, 200:])


def test_macs_counter_matches_a_hand_count() -> None:
    inp = keras.Input((None, None, 3))
    model = keras.Model(inp, keras.layers.Conv2D(4, 3, padding="same")(inp))
    assert macs_per_megapixel(model, 64) == pytest.approx(3 * 3 * 3 * 4 * 1e6)


def test_resnet_generator_and_discriminators_build() -> None:
    g = build_resnet_generator(width=4, blocks=1)
    assert g(np.zeros((1, 30, 18, 3), np.float32)).shape == (1, 30, 18, 3)
    for kind in ("patchgan", "multiscale"):
        d = build_discriminator(kind, 4)
        assert d(np.zeros((2, 64, 64, 3), np.float32)).shape[0] == 2
    with pytest.raises(ValueError, match="unknown discriminator"):
        build_discriminator("huge")


def test_losses_are_zero_for_perfect_output_and_positive_otherwise() -> None:
    a = np.random.default_rng(0).random((2, 16, 16, 3), dtype=np.float32)
    b = np.clip(a + 0.1, 0, 1)
    assert float(losses.fft_l1(a, a)) == pytest.approx(0, abs=1e-6)
    assert float(losses.fft_l1(a, b)) > 0.01
    assert float(losses.charbonnier(a, a)) == pytest.approx(1e-3, rel=1e-3)
    real, fake = np.ones((4, 1), np.float32), -np.ones((4, 1), np.float32)
    assert float(losses.ralsgan_d(real, fake)) == pytest.approx(0.5 * ((1 + 1 - 1) ** 2 + (-1 - 1 + 1) ** 2))
    assert float(losses.ralsgan_d(real, fake)) < float(losses.ralsgan_d(fake, real))
    with pytest.raises(FileNotFoundError, match="VGG19 weights"):
        losses.Perceptual("/no/such/vgg19.h5")


def test_config_file_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"width": 16, "enc_blocks": [2, 2]}))
    cfg = Config.load(path, ["lr=0.01", "scale_range=[0.5, 1]"])
    assert (cfg.width, cfg.enc_blocks, cfg.lr, cfg.scale_range) == (16, (2, 2), 0.01, (0.5, 1.0))
    path.write_text(json.dumps({"widht": 16}))
    with pytest.raises(ValueError, match="unknown config key.*widht"):
        Config.load(path)


@pytest.mark.parametrize("field, value", [("generator", "vgg"), ("discriminator", "huge"),
                                          ("adversarial", "hinge"), ("precision", "float16")])
def test_config_refuses_an_unknown_choice_when_it_loads(tmp_path: Path, field: str, value: str) -> None:
    with pytest.raises(ValueError, match=f"unknown {field} '{value}' in the config: use one of "):
        Config.load(None, [f"{field}={value}"])
    path = tmp_path / "c.json"
    path.write_text(json.dumps({field: value}))
    with pytest.raises(ValueError, match=f"unknown {field} '{value}'"):
        Config.load(path)


def test_export_writes_the_contract_and_matches_tf(tiny_generator: keras.Model, tmp_path: Path) -> None:
    out = tmp_path / "g.onnx"
    error = export_generator(tiny_generator, out, {"name": "tiny", "version": "9.9"})
    assert error < 1e-4
    assert out.stat().st_mode & 0o777 == 0o644
    model = onnx.load(out)
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["size_multiple"] == "8" and meta["version"] == "9.9" and meta["normalisation"] == "rgb01"
    assert min(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["blurry"] and session.get_outputs()[0].name == "sharp"
    x = np.random.default_rng(2).random((1, 45, 70, 3), dtype=np.float32)
    np.testing.assert_allclose(session.run(None, {"blurry": x})[0], tiny_generator(x).numpy(), atol=1e-4)


def test_export_refuses_to_write_when_parity_fails(tiny_generator: keras.Model, tmp_path: Path) -> None:
    out = tmp_path / "bad.onnx"
    with pytest.raises(ParityError, match="differs from TensorFlow"):
        export_generator(tiny_generator, out, {"name": "x", "version": "1"},
                         reference=lambda x: tiny_generator(x).numpy() + 1e-3)
    assert not out.exists() and not list(tmp_path.glob("*.tmp"))


def test_export_cli_from_a_run_folder(tiny_generator: keras.Model, tmp_path: Path, capsys) -> None:
    (tmp_path / "config.json").write_text(Config.load(None, TINY).to_json())
    tiny_generator.save_weights(tmp_path / "generator.weights.h5")
    assert export_main(["--run-dir", str(tmp_path), "--out", str(tmp_path / "m.onnx"), "--version", "2.0"]) == 0
    assert "parity max abs error" in capsys.readouterr().out
    assert export_main(["--run-dir", str(tmp_path / "missing")]) == 2


def test_eval_of_an_identity_model_equals_the_blurred_baseline(photo_dir: Path, identity_onnx: Path,
                                                                tmp_path: Path) -> None:
    out = tmp_path / "eval"
    code = eval_main(["--model", str(identity_onnx), "--photos", str(photo_dir), "--all",
                      "--out", str(out), "--tile", "64", "--overlap", "16", "--real", str(photo_dir)])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["images"] == 12 and summary["mean_gain_db"] == pytest.approx(0, abs=1e-9)
    assert summary["mean_psnr_in"] == pytest.approx(summary["mean_psnr_out"])
    rows = _rows(out / "per_image.csv")
    assert len(rows) == 12 and {r["kernel"] for r in rows} <= {"shake", "streak", "blob", "defocus"}
    assert len(list(out.glob("*_blur-restored-sharp.png"))) == 12 and len(list(out.glob("real_*.png"))) == 12


def test_eval_reports_bad_inputs_clearly(identity_onnx: Path, tmp_path: Path, capsys) -> None:
    assert eval_main(["--model", str(tmp_path / "none.onnx")]) == 2
    assert "model file not found" in capsys.readouterr().err
    assert eval_main(["--model", str(identity_onnx), "--photos", str(tmp_path / "no")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_learning_curve_table_and_png(tmp_path: Path, capsys) -> None:
    from training.curve import main as curve_main
    from training.curve import read_curve

    logs = []
    for phase, (steps, gains) in enumerate((([100, 200], [0.5, 1.0]), ([300], [1.2]))):
        path = tmp_path / f"log{phase}.csv"
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["step", "wall_s", "val_psnr", "input_psnr", "val_ssim"])
            writer.writerow([steps[0] - 50, 10, "", "", ""])
            for s, g in zip(steps, gains, strict=True):
                writer.writerow([s, s * 3.6, 25 + g, 25, 0.8])
        logs.append(path)
    assert curve_main([str(p) for p in logs] + ["--png", str(tmp_path / "c.png")]) == 0
    points = read_curve(logs)
    assert [p["step"] for p in points] == [100, 200, 300]
    assert points[-1]["hours"] == pytest.approx((720 + 1080) / 3600)
    assert points[-1]["gain"] == pytest.approx(1.2)
    assert (tmp_path / "c.png").stat().st_size > 1000
    assert "| 0.50 | 1.00 |" in capsys.readouterr().out  # step 300: 0.5 wall hours, two cores by default
    assert curve_main([str(p) for p in logs] + ["--cores", "1"]) == 0  # a run pinned to one core
    assert "| 0.50 | 0.50 |" in capsys.readouterr().out
    with open(logs[1], "a", newline="") as f:  # a resumed run logs step 300 again, later and better
        csv.writer(f).writerows([[250, 900, "", "", ""], [300, 1100, 25 + 1.3, 25, 0.8]])
    points = read_curve(logs)
    assert [p["step"] for p in points] == [100, 200, 300] and points[-1]["gain"] == pytest.approx(1.3)


def test_each_ssim_is_the_one_its_name_says() -> None:
    """The log's SSIM is tf.image's (11×11 Gaussian), deblur-eval's scikit-image's default (7×7 uniform): the
    same pair scores differently, so a log's val_ssim and the model card's SSIM are not to be compared."""
    from skimage.metrics import structural_similarity

    from training.data.degrade import blur_linear
    from training.data.kernels import line_kernel
    from training.monitor import psnr_ssim_gaussian11
    from training.scoring import ssim_skimage7

    rng = np.random.default_rng(0)
    sharp = np.clip(np.cumsum(rng.normal(0, 0.05, (64, 64, 3)), 0) * 0.3 + 0.5, 0, 1).astype(np.float32)
    blurred = blur_linear(sharp, line_kernel(rng, 9)).astype(np.float32)
    c = (sharp.shape[0] - blurred.shape[0]) // 2
    sharp = np.ascontiguousarray(sharp[c:c + blurred.shape[0], c:c + blurred.shape[1]])
    gaussian11 = psnr_ssim_gaussian11(blurred[None], sharp[None])[1]
    assert gaussian11 == pytest.approx(structural_similarity(
        blurred, sharp, channel_axis=-1, data_range=1.0, gaussian_weights=True, sigma=1.5,
        use_sample_covariance=False), abs=1e-4)
    assert abs(ssim_skimage7(blurred, sharp) - gaussian11) > 0.005


def test_learning_curve_draws_eight_phases_in_eight_colours(tmp_path: Path) -> None:
    from PIL import Image, ImageColor

    from training.curve import COLOURS, draw

    points = [{"phase": 1 + i // 2, "step": 100 * (i + 1), "gain": 0.1 * i, "hours": i, "psnr": 25.0, "ssim": 0.8}
              for i in range(16)]
    draw(points, tmp_path / "c.png")
    rgb = np.asarray(Image.open(tmp_path / "c.png").convert("RGB"))
    pixels = set(map(tuple, rgb.reshape(-1, 3).tolist()))
    assert all(ImageColor.getrgb(hex_) in pixels for hex_, _ in COLOURS[:8])
