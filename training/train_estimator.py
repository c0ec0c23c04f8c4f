"""`deblur-train-estimator`: train the kernel estimator's guide network, resumable like `deblur-train`.

    deblur-train-estimator --config models/estimator-config-supguide5.json --set steps=103000 run_dir=runs/guide

The guide starts from a generator's weights (`init_weights`, e.g. the shipped 0.5.0: it already knows
what sharp looks like) and learns, through the kernel fit named by `estimator_solve`
(training/kernel_estimator.py), to draw the edges that pin the kernel down. Writes config.json, ckpt.npz,
guide.weights.h5 and log.csv (train losses over the last 50 steps; from step 0, validation kernel L1 and
Wiener excess of the cleaned estimates on the held-out seventh, beside a 9×9 box's L1 and no deconvolution's
excess).
"""

from __future__ import annotations

import argparse
import csv
import logging
import sys
import time
from pathlib import Path

import keras
import numpy as np

from service.kernel_estimation import clean_kernel
from training import checkpoint
from training.config import Config
from training.data.folders import DataError, estimation_split, load_photos
from training.data.kernels import canvas_size
from training.data.pipeline import train_dataset
from training.data.synthesis import SyntheticPairs
from training.edge_selector import EdgeSelectorTrainer, build_edge_selector
from training.kernel_estimator import KernelEstimatorTrainer, estimator_parts, pad_kernel
from training.monitor import last_wall
from training.nets import build_generator
from training.runtime import make_optimizers, precision_policy
from training.train_corrector import scores as kernel_scores

log = logging.getLogger("deblur-train-estimator")
FIELDS = ["step", "wall_s", "lr", "loss", "kernel_loss", "content", "skipped", "val_kernel_l1", "val_wiener_db",
          "val_box_l1", "val_delta_wiener_db"]


def kernel_samplers(cfg: Config):
    """(train sampler → (blurred, sharp, padded kernel), fixed validation arrays (blurred, kernels)): the
    estimator's split of the config's photos (`estimation_split`), the same the corrector trains on, so
    the held-out seventh judges a guide and its corrector alike."""
    train_files, val_files = estimation_split([f for f in cfg.photos.split(",") if f], cfg.val_fraction)
    min_side = max(cfg.crop, cfg.val_crop) + cfg.kernel_canvas
    (train_photos, _, _), (val_photos, _, _) = load_photos(train_files, min_side), load_photos(val_files, min_side)
    if not train_photos or not val_photos:
        raise DataError(f"{cfg.photos}: too few training photos of at least {min_side} px for a kernel estimator")
    blur = dict(max_blur=cfg.max_blur, kernel_weights=cfg.kernel_weights, max_noise=cfg.max_noise,
                jpeg_prob=cfg.jpeg_prob, max_motion=cfg.max_motion)
    train = SyntheticPairs(train_photos, cfg.crop, cfg.seed, scale_range=cfg.scale_range, realism=cfg.realism(),
                           **blur)
    val = SyntheticPairs(val_photos, cfg.val_crop, cfg.seed + 1, augment=False, **blur)

    def sample(source: SyntheticPairs, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        blurred, sharp, kernel = source.with_kernel(index)
        return blurred, sharp, pad_kernel(kernel, cfg.kernel_canvas)

    val_set = [sample(val, i) for i in range(cfg.val_images)]
    return (lambda i: sample(train, i)), (np.stack([v[0] for v in val_set]), np.stack([v[2] for v in val_set]))


class EstimatorMonitor(keras.callbacks.Callback):
    """CSV log, validation kernel L1 every `val_every` steps, exact-resume checkpoints."""

    def __init__(self, cfg: Config, run_dir: Path, val: tuple[np.ndarray, np.ndarray], step: int) -> None:
        super().__init__()
        self.cfg, self.run_dir, self.val, self.step = cfg, run_dir, val, step
        self.fit_start, self.last = step, {}  # Keras' means run from fit()'s start: un-average them
        def guess(kernel: np.ndarray) -> np.ndarray:  # one kernel for every validation sample
            return np.repeat(pad_kernel(kernel, cfg.kernel_canvas)[None], len(val[1]), 0)
        self.box_l1 = kernel_scores(guess(np.full((9, 9), 1 / 81, np.float32)), val[1])[0]
        self.delta_db = kernel_scores(guess(np.ones((1, 1), np.float32)), val[1])[1]  # no deconvolution at all
        self.csv_path = run_dir / "log.csv"
        self.started = time.time()
        self.wall_offset = last_wall(self.csv_path, step)
        if not self.csv_path.exists():
            with self.csv_path.open("w", newline="") as f:
                csv.writer(f).writerow(FIELDS)

    def validate(self) -> tuple[float, float]:
        """(kernel L1, Wiener excess in dB) of the estimates as the service uses them: `clean_kernel`ed."""
        blurred, kernels = self.val
        raw = np.concatenate([self.model(blurred[i:i + 4]).numpy() for i in range(0, len(blurred), 4)])
        return kernel_scores(np.stack([clean_kernel(k.astype(np.float64)) for k in raw]), kernels)

    def window_mean(self, name: str, running_mean: float) -> float:
        """The mean of a logged value since the last row, from Keras' running mean since fit() started."""
        last_step, last_mean = self.last.get(name, (self.fit_start, 0.0))
        n, m = self.step - self.fit_start, last_step - self.fit_start
        self.last[name] = (self.step, running_mean)
        return (running_mean * n - last_mean * m) / max(n - m, 1)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.step += 1
        do_val = self.step % self.cfg.val_every == 0 or self.step == self.cfg.steps
        if self.step % 50 and not do_val:
            return
        row = dict.fromkeys(FIELDS, "")
        row.update(step=self.step, wall_s=f"{self.wall_offset + time.time() - self.started:.1f}",
                   lr=f"{float(self.model.optimizer.learning_rate):.2e}",
                   **{k: f"{self.window_mean(k, float(v)):.5f}" for k, v in (logs or {}).items() if k in FIELDS})
        if do_val:
            row.update(self.validation_row())
        self.append(row)
        if self.step % self.cfg.ckpt_every == 0 or self.step == self.cfg.steps:
            self.save()

    def on_train_begin(self, logs: dict | None = None) -> None:
        """A first validation row before any step: where the guide starts (0.5.0's estimate, say)."""
        if self.step == self.fit_start and self.step == self.cfg.init_step:
            row = dict.fromkeys(FIELDS, "")
            row.update(step=self.step, wall_s=f"{self.wall_offset:.1f}", **self.validation_row())
            self.append(row)

    def append(self, row: dict[str, str]) -> None:
        with self.csv_path.open("a", newline="") as f:
            csv.DictWriter(f, FIELDS).writerow(row)

    def validation_row(self) -> dict[str, str]:
        l1, excess = self.validate()
        log.info("step %d: validation kernel L1 %.4f, Wiener excess %.3f dB (a 9x9 box: L1 %.4f; no deconvolution: "
                 "%.3f dB)", self.step, l1, excess, self.box_l1, self.delta_db)
        return dict(val_kernel_l1=f"{l1:.5f}", val_wiener_db=f"{excess:.4f}", val_box_l1=f"{self.box_l1:.5f}",
                    val_delta_wiener_db=f"{self.delta_db:.4f}")

    def save(self) -> None:
        checkpoint.save(self.run_dir / "ckpt.npz", self.step, self.cfg.init_step,
                        {self.cfg.estimator_net: self.model.trained, "opt": self.model.optimizer})
        self.model.trained.save_weights(self.run_dir / f"{self.cfg.estimator_net}.weights.h5")


def check_canvas(cfg: Config) -> None:
    """The canvas must hold the largest kernel the data makes (kernels.py's canvas for max_blur/max_motion)."""
    largest = canvas_size(max(cfg.max_blur, cfg.max_motion))
    if cfg.kernel_canvas % 2 == 0 or cfg.kernel_canvas < largest:
        raise ValueError(f"kernel_canvas={cfg.kernel_canvas} must be odd and at least {largest} px, the largest "
                         f"kernel max_blur={cfg.max_blur}, max_motion={cfg.max_motion} make")


def build_trainer(cfg: Config, guide: keras.Model) -> KernelEstimatorTrainer:
    """The trainer `estimator_net` names: the guide itself from `init_weights`, or an edge selector beside that
    guide, frozen (which needs `init_weights` and the support fit it weighs)."""
    parts = estimator_parts(cfg.estimator_solve, cfg.estimator_loss)
    selector = cfg.estimator_net == "selector"
    if selector and (not cfg.init_weights or cfg.estimator_solve != "support"):
        raise ValueError("estimator_net=selector needs init_weights (the frozen guide) and estimator_solve=support")
    if cfg.init_weights:
        guide.load_weights(cfg.init_weights)
        log.info("%s guide from %s", "frozen" if selector else "initial", cfg.init_weights)
    if selector:
        return EdgeSelectorTrainer(build_edge_selector(cfg.selector_width), guide, cfg.kernel_canvas, parts[1])
    return KernelEstimatorTrainer(guide, cfg.kernel_canvas, cfg.guide_content_weight, *parts,
                                  gradient_weight=cfg.guide_gradient_weight)


def train_estimator(cfg: Config) -> Path:
    check_canvas(cfg)
    with precision_policy(cfg.precision):
        run_dir = Path(cfg.run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(cfg.to_json())
        sampler, val = kernel_samplers(cfg)
        keras.utils.set_random_seed(cfg.seed)
        guide = build_generator(cfg)
        trainer = build_trainer(cfg, guide)
        optimizer = make_optimizers(cfg).generator  # the guide is a generator: the same AdamW and schedule
        optimizer.build(trainer.trained.trainable_variables)
        step = cfg.init_step
        ckpt = run_dir / "ckpt.npz"
        if ckpt.exists():
            step, _ = checkpoint.restore(ckpt, {cfg.estimator_net: trainer.trained, "opt": optimizer})
            log.info("resumed from %s at step %d", ckpt, step)
        trainer.compile(optimizer, cfg.grad_clip)
        if step >= cfg.steps:
            log.info("nothing to do: step %d >= steps %d", step, cfg.steps)
            return run_dir
        monitor = EstimatorMonitor(cfg, run_dir, val, step)
        shapes = ((cfg.crop, cfg.crop, 3), (cfg.crop, cfg.crop, 3), (cfg.kernel_canvas, cfg.kernel_canvas))
        dataset = train_dataset(sampler, cfg.crop, cfg.batch, start_step=step, shapes=shapes)
        trainer.fit(dataset, epochs=1, steps_per_epoch=cfg.steps - step, callbacks=[monitor],
                    verbose=1 if sys.stdout.isatty() else 2)
        return run_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train the kernel estimator's guide network (resumable).")
    parser.add_argument("--config", help="JSON file of hyperparameters (see training/config.py)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override config values")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        train_estimator(Config.load(args.config, args.set))
    except (DataError, ValueError, FileNotFoundError) as exc:
        print(f"deblur-train-estimator: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
