"""`deblur-train`: train the GAN from one config, resumable from the run folder's last checkpoint.

    deblur-train --config models/train-config.json --set steps=4000 run_dir=runs/try

Writes into `run_dir`: config.json, ckpt.npz (exact resume), generator.weights.h5 (for export or
to start another phase), log.csv (losses and validation PSNR/SSIM) and TensorBoard events.
Kill it at any time; the same command continues from the last checkpoint.
"""

from __future__ import annotations

import argparse
import logging
import sys

import tensorflow as tf

from training.config import Config
from training.data.folders import DataError
from training.trainer import train


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train the deblurring GAN (resumes from RUN_DIR/ckpt.npz).")
    parser.add_argument("--config", help="JSON file of hyperparameters (see training/config.py)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override config values")
    parser.add_argument("--logical-cpus", type=int, default=0,
                        help="split the CPU into N logical devices (tests MirroredStrategy without GPUs)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.logical_cpus > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * args.logical_cpus)
    try:
        cfg = Config.load(args.config, args.set)
        train(cfg)
    except (DataError, ValueError, FileNotFoundError) as exc:
        print(f"deblur-train: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
