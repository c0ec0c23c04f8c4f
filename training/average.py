"""`deblur-average`: one generator whose weights are the mean of several of the same net's (a model soup,
or stochastic weight averaging over one run's late checkpoints).

    deblur-average --config runs/line4/config.json \\
        --weights runs/line4/generator.weights.h5 runs/line4f/generator.weights.h5 --out runs/soup/generator.weights.h5

Weights fine-tuned from one start stay in one basin, where their mean often scores above each of them at
no cost when served (Izmailov et al. 2018; Wortsman et al. 2022). Whether it does here is read on the
config's own validation crops (training photos' held-out split, the log's `val_psnr`), never on an
evaluation protocol: the table it prints scores every input file and the mean. The output folder also
gets the config, so `deblur-export --run-dir` and `make score` take it as they take a run.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import keras
import numpy as np

from training.config import Config
from training.data.folders import DataError
from training.monitor import validation_scores
from training.nets import build_generator
from training.runtime import precision_policy
from training.trainer import build_data, saved_variable_count


def running_sum(total: list[np.ndarray] | None, generator: keras.Model) -> list[np.ndarray]:
    """`total` plus the generator's current arrays, in float64 (None starts the sum)."""
    arrays = [np.asarray(w.numpy(), np.float64) for w in generator.weights]
    return arrays if total is None else [t + a for t, a in zip(total, arrays, strict=True)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Average several weight files of one net; score each on validation.")
    parser.add_argument("--config", required=True, help="the run's config.json (the net and its validation set)")
    parser.add_argument("--weights", nargs="+", type=Path, required=True, help="two or more .weights.h5 files")
    parser.add_argument("--out", type=Path, required=True, help="where to write the mean .weights.h5")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    try:
        if len(args.weights) < 2:
            raise ValueError("give two or more --weights files to average")
        for path in args.weights:
            if not path.is_file():
                raise FileNotFoundError(f"no weights file at {path}")
            if not path.name.endswith(".weights.h5"):  # Keras picks the format by the name
                raise ValueError(f"{path} is not named *.weights.h5, the only name Keras reads generator weights from")
        cfg = Config.load(args.config, [])
        with precision_policy("float32"):
            generator = build_generator(cfg)
            for path in args.weights:
                if saved_variable_count(path) != len(generator.weights):
                    raise ValueError(f"{path} holds {saved_variable_count(path)} arrays, not this config's net's "
                                     f"{len(generator.weights)}: only weights of one net can be averaged")
            _, val = build_data(cfg)
            rows, total = [], None
            for path in args.weights:  # each file is read once: scored, then added to the sum
                generator.load_weights(path)
                rows.append((str(path), *validation_scores(generator, val)))
                total = running_sum(total, generator)
            generator.set_weights([(t / len(args.weights)).astype(w.dtype)
                                   for t, w in zip(total, generator.weights, strict=True)])
            rows.append((f"mean of {len(args.weights)}", *validation_scores(generator, val)))
            args.out.parent.mkdir(parents=True, exist_ok=True)
            generator.save_weights(args.out)
            (args.out.parent / "config.json").write_text(cfg.to_json())
    except (DataError, ValueError, FileNotFoundError) as exc:
        print(f"deblur-average: {exc}", file=sys.stderr)
        return 2
    print("| weights | val PSNR | val SSIM |\n|---|---|---|")
    for name, psnr, ssim in rows:
        print(f"| {name} | {psnr:.3f} | {ssim:.4f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
