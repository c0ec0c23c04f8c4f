"""Training-step cost by precision: float32 vs mixed bfloat16, same weights, same fixed batch.

    python -m bench.train_step [--config models/train-config-phase7.json] [--batch 4] [--crop 192] [--repeats 10]

Why a fixed batch: it times the network's forward + backward + AdamW update alone (`DeblurGAN.train_step`
under `tf.function`), not the data pipeline, which runs ahead in parallel during real training. Both
generators start from the same Keras weights; they are built under their own dtype policy and timed
round-robin, so a noisy stretch of the VM hits both alike. The quality column is the PSNR of the bfloat16
generator's output against the float32 one's on a photo-like crop: what bfloat16 arithmetic changes.
Needs the `train` extra (TensorFlow).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from bench.common import REPO, Report, Table, base_parser, finish, interleaved, psnr, synthetic_photo


def _rel(path: Path) -> str:
    path = Path(path).resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def _gan(cfg, precision: str, weights: Path | None):
    from training.gan import DeblurGAN
    from training.nets import build_discriminator, build_generator
    from training.runtime import make_optimizers, precision_policy

    with precision_policy(precision):
        generator = build_generator(cfg)
        if weights:
            generator.load_weights(weights)
        gan = DeblurGAN(generator, build_discriminator(cfg.discriminator, cfg.disc_width), cfg)
        optimizers = make_optimizers(cfg)  # the update deblur-train runs, so the step timed is the real one
        gan.compile(optimizers.generator, optimizers.discriminator)
    return gan


def run(args: argparse.Namespace) -> Report:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    from training.config import Config
    from training.runtime import PRECISIONS

    overrides = ["width=8", "enc_blocks=[1]", "mid_blocks=1", "dec_blocks=[1]", "kernel_sizes=[]"] if args.quick else []
    cfg = Config.load(args.config, [*overrides, "adv_weight=0"])
    weights = None if args.quick else args.weights
    batch, crop = (2, 64) if args.quick else (args.batch, args.crop)
    repeats = 1 if args.quick else args.repeats
    rng = np.random.default_rng(0)
    sharp = np.stack([synthetic_photo(crop, crop, seed=i) for i in range(batch)])
    blurry = np.clip(sharp + rng.normal(0, 0.02, sharp.shape).astype(np.float32), 0, 1)
    gans = {p: _gan(cfg, p, weights) for p in PRECISIONS}
    outputs = {p: gans[p].generator(blurry, training=False).numpy() for p in PRECISIONS}  # before any update
    steps = {p: tf.function(gans[p].train_step) for p in PRECISIONS}
    times = interleaved({p: (lambda p=p: float(steps[p]((blurry, sharp))["g_loss"])) for p in PRECISIONS},
                        repeats, warmup=2)
    base = times["float32"].median
    table = Table(["precision", "batch × crop", "s/step", "min–max", "speed-up", "output PSNR vs float32"])
    for p in PRECISIONS:
        quality = "—" if p == "float32" else f"{psnr(outputs[p], outputs['float32']):.1f} dB"
        table.add(p, f"{batch} × {crop}²", times[p].median, times[p].spread, f"{base / times[p].median:.2f}×",
                  quality)
    speedup = base / times["mixed_bfloat16"].median
    source = _rel(weights) if weights else "random init"
    body = (f"Config `{_rel(args.config)}`{' (tiny --quick network)' if args.quick else ''}, weights `{source}`, "
            f"median of {repeats} steps after 2 warm-up steps.\n\n{table.markdown()}")
    return Report("train_step", "Training step: float32 vs mixed bfloat16", body,
                  [("train step bf16 speed-up", f"{speedup:.2f}×", "—")])


def parser() -> argparse.ArgumentParser:
    p = base_parser("train_step", __doc__.splitlines()[0])
    p.add_argument("--config", type=Path, default=REPO / "models" / "train-config-phase7.json")
    p.add_argument("--weights", type=Path, default=REPO / "models" / "generator.weights.h5")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--crop", type=int, default=192)
    p.set_defaults(repeats=10)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    finish(run(args), args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
