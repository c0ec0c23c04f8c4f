"""The training loop's eyes: CSV + TensorBoard logs, periodic validation and checkpoints.

The log's SSIM columns (`val_ssim`, `input_ssim`) are tf.image's SSIM, 11×11 Gaussian window, not the
7×7-window one `deblur-eval` reports; docs/training.md ("Two SSIMs") says why the names stay.
"""

from __future__ import annotations

import csv
import logging
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from training import checkpoint

log = logging.getLogger("deblur-train")
FIELDS = ["step", "wall_s", "lr", "g_loss", "content", "adv", "d_loss", "val_psnr", "val_ssim", "input_psnr",
          "input_ssim"]


def psnr_ssim_gaussian11(restored: np.ndarray, sharp: np.ndarray) -> tuple[float, float]:
    """Batch-mean PSNR and tf.image's SSIM (11×11 Gaussian window, σ 1.5): the log's val_/input_ columns."""
    restored = tf.clip_by_value(tf.convert_to_tensor(restored), 0.0, 1.0)
    sharp = tf.convert_to_tensor(sharp)
    return (float(tf.reduce_mean(tf.image.psnr(restored, sharp, 1.0))),
            float(tf.reduce_mean(tf.image.ssim(restored, sharp, 1.0))))


def validation_scores(generator: keras.Model, val: tuple[np.ndarray, np.ndarray]) -> tuple[float, float]:
    """The generator's (PSNR, SSIM) on the fixed validation set, in batches of 4: the log's val_ columns."""
    blur, sharp = val
    restored = np.concatenate([generator(blur[i:i + 4], training=False).numpy() for i in range(0, len(blur), 4)])
    return psnr_ssim_gaussian11(restored, sharp)


def last_wall(csv_path: Path, step: int) -> float:
    """Wall time already spent in a run folder up to `step`, so a resumed run's time axis is cumulative."""
    if not csv_path.exists():
        return 0.0
    with open(csv_path) as f:
        rows = [r for r in csv.DictReader(f) if int(r["step"]) <= step]
    return float(rows[-1]["wall_s"]) if rows else 0.0


class TrainingMonitor(keras.callbacks.Callback):
    def __init__(self, cfg, run_dir: Path, val: tuple[np.ndarray, np.ndarray], start_step: int,
                 phase_start: int, log_every: int = 50) -> None:
        super().__init__()
        self.cfg, self.run_dir, self.val = cfg, run_dir, val
        self.step, self.phase_start, self.log_every = start_step, phase_start, log_every
        # a hinted input's first 3 channels are the photo
        self.input_scores = psnr_ssim_gaussian11(val[0][..., :3], val[1])
        self.writer = tf.summary.create_file_writer(str(run_dir / "tb"))
        self.csv_path = run_dir / "log.csv"
        self.started = time.time()
        self.wall_offset = last_wall(self.csv_path, self.step)
        if not self.csv_path.exists():
            with open(self.csv_path, "w", newline="") as f:
                csv.writer(f).writerow(FIELDS)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.step += 1
        logs = dict(logs or {})
        do_val = self.step % self.cfg.val_every == 0 or self.step == self.cfg.steps
        if self.step % self.log_every and not do_val:
            return
        row = {k: "" for k in FIELDS}
        row.update({k: f"{float(v):.5f}" for k, v in logs.items() if k in FIELDS})
        row["step"] = self.step
        row["wall_s"] = f"{self.wall_offset + time.time() - self.started:.1f}"
        row["lr"] = f"{float(self.model.g_optimizer.learning_rate):.2e}"
        if do_val:
            psnr, ssim = validation_scores(self.model.generator, self.val)
            row.update(val_psnr=f"{psnr:.3f}", val_ssim=f"{ssim:.4f}", input_psnr=f"{self.input_scores[0]:.3f}",
                       input_ssim=f"{self.input_scores[1]:.4f}")
            log.info("step %d: val PSNR %.2f dB (input %.2f, gain %+.2f), SSIM %.4f (input %.4f)", self.step, psnr,
                     self.input_scores[0], psnr - self.input_scores[0], ssim, self.input_scores[1])
        with open(self.csv_path, "a", newline="") as f:
            csv.DictWriter(f, FIELDS).writerow(row)
        with self.writer.as_default(step=self.step):
            for key, value in row.items():
                if key != "step" and value != "":
                    tf.summary.scalar(key, float(value))
        if self.step % self.cfg.ckpt_every == 0 or self.step == self.cfg.steps:
            self.save()

    def save(self) -> None:
        gan = self.model
        checkpoint.save(self.run_dir / "ckpt.npz", self.step, self.phase_start,
                        checkpoint.gan_parts(gan.generator, gan.discriminator, gan.g_optimizer, gan.d_optimizer))
        gan.generator.save_weights(self.run_dir / "generator.weights.h5")
