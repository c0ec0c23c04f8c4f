"""Training runs end to end on a tiny config: steps, logs, checkpoints, exact resume, kill -9, GAN phase."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from training.config import Config
from training.trainer import train

REPO = Path(__file__).resolve().parents[2]


def _weights(run_dir: Path) -> list[np.ndarray]:
    with np.load(run_dir / "ckpt.npz") as data:
        return [data[k] for k in sorted(data.files) if k.startswith("g/")]


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_tiny_run_logs_validates_and_checkpoints(tiny_overrides: list[str]) -> None:
    cfg = Config.load(None, [*tiny_overrides, "steps=4"])
    run_dir = train(cfg)
    rows = _rows(run_dir / "log.csv")
    assert [int(r["step"]) for r in rows] == [2, 4]
    assert all(float(r["val_psnr"]) > 5 and float(r["input_psnr"]) > 5 for r in rows)
    assert (run_dir / "generator.weights.h5").is_file() and (run_dir / "config.json").is_file()
    assert any((run_dir / "tb").iterdir())
    with np.load(run_dir / "ckpt.npz") as data:
        assert int(data["step"]) == 4


def test_resume_reproduces_the_uninterrupted_run(tiny_overrides: list[str], tmp_path: Path) -> None:
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    straight = [*tiny_overrides, f"run_dir={tmp_path / 'straight'}"]
    split = [*tiny_overrides, f"run_dir={tmp_path / 'split'}"]
    train(Config.load(None, [*straight, "steps=4"]))
    train(Config.load(None, [*split, "steps=2"]))  # "killed" after its checkpoint at step 2
    with np.load(tmp_path / "split" / "ckpt.npz") as data:
        assert int(data["step"]) == 2
    # the resumed run keeps the schedule of a 4-step phase: same config except the steps it was given
    train(Config.load(None, [*split, "steps=4"]))
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "split")
    assert len(a) == len(b)
    worst = max(float(np.max(np.abs(x - y))) for x, y in zip(a, b, strict=True))
    assert worst < 1e-5, worst


def test_gan_phases_run_with_both_adversarial_losses(tiny_overrides: list[str]) -> None:
    for loss, disc, precision in (("ralsgan", "patchgan", "float32"), ("wgan-gp", "multiscale", "float32"),
                                  ("ralsgan", "patchgan", "mixed_bfloat16")):
        run_dir = f"{Path(tiny_overrides[1].split('=')[1])}_{loss}_{precision}"
        cfg = Config.load(None, [*tiny_overrides, "steps=2", "adv_weight=0.01", f"adversarial={loss}",
                                 f"discriminator={disc}", f"precision={precision}", f"run_dir={run_dir}"])
        run_dir = train(cfg)
        row = _rows(run_dir / "log.csv")[-1]
        assert np.isfinite(float(row["d_loss"])) and np.isfinite(float(row["adv"]))


def _cli(args: list[str], **kw) -> subprocess.Popen:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "training.train", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def test_bfloat16_run_trains_float32_weights_and_restores_the_policy(tiny_overrides: list[str]) -> None:
    import keras

    reference = Path(tiny_overrides[1].split("=", 1)[1] + "_float32")
    before = _weights(train(Config.load(None, [*tiny_overrides, "steps=2", f"run_dir={reference}"])))
    run_dir = train(Config.load(None, [*tiny_overrides, "steps=2", "precision=mixed_bfloat16"]))
    assert keras.mixed_precision.global_policy().name == "float32"
    after = _weights(run_dir)
    assert all(w.dtype == np.float32 for w in after)
    assert all(np.isfinite(float(r["content"])) for r in _rows(run_dir / "log.csv"))
    # the same samples, steps and seed: bfloat16 arithmetic moves the weights close to where float32 does
    changed = [a for a, b in zip(before, after, strict=True) if not np.array_equal(a, b)]
    assert changed, "bfloat16 gave bit-identical weights: the policy was not applied"
    assert max(float(np.max(np.abs(a - b))) for a, b in zip(before, after, strict=True)) < 1e-2


def test_train_step_bench_times_both_precisions() -> None:
    from bench.train_step import parser, run

    report = run(parser().parse_args(["--quick"]))
    rows = [line for line in report.body.splitlines() if line.startswith(("| float32", "| mixed_bfloat16"))]
    assert len(rows) == 2 and all("2 × 64²" in row for row in rows)
    assert report.summary[0][0] == "train step bf16 speed-up"


def test_kill_9_then_the_same_command_resumes(tiny_overrides: list[str]) -> None:
    run_dir = Path(tiny_overrides[1].split("=", 1)[1])
    args = ["--set", *tiny_overrides, "steps=100000", "val_every=1000"]
    proc = _cli(args)
    deadline = time.time() + 240
    while not (run_dir / "ckpt.npz").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.5)
    time.sleep(1.0)  # let it run past the checkpoint, mid-step
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with np.load(run_dir / "ckpt.npz") as data:
        saved = int(data["step"])
    assert saved >= 2
    done = _cli(["--set", *tiny_overrides, f"steps={saved + 2}"])
    out, _ = done.communicate(timeout=240)
    assert done.returncode == 0, out
    assert f"resumed from {run_dir / 'ckpt.npz'} at step {saved}" in out
    with np.load(run_dir / "ckpt.npz") as data:
        assert int(data["step"]) == saved + 2


def test_mirrored_strategy_on_two_logical_cpus(tiny_overrides: list[str]) -> None:
    done = _cli(["--logical-cpus", "2", "--set", *tiny_overrides, "steps=2"])
    out, _ = done.communicate(timeout=240)
    assert done.returncode == 0, out
    assert "training on 2 replica(s), 1 worker(s), with MirroredStrategy" in out


@pytest.mark.parametrize("override, message", [
    ("nope=1", "bad override"),
    ("photos=/does/not/exist", "does not exist"),
    ("generator=vgg", "unknown generator"),
    ("batch=lots", "cannot use"),
    ("offcentre_max_shift=2.5", "takes a whole number"),
    ("precision=float16", "unknown precision"),
])
def test_cli_rejects_bad_config_with_one_clear_line(tiny_overrides: list[str], override: str, message: str) -> None:
    done = _cli(["--set", *tiny_overrides, "steps=1", override])
    out, _ = done.communicate(timeout=120)
    assert done.returncode == 2
    assert message in out and "Traceback" not in out
