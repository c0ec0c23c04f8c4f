"""`deblur-train-corrector`: train the kernel corrector (training/kernel_corrector.py) and export it to ONNX.

    deblur-train-corrector --out runs/corrector1 [--samples 6000 --steps 3000] [--kernel-weights W ...]

Samples come from the training split only: every seventh training photo is held out for this run's own
validation, so neither validation protocol's photos are touched. Each sample is a synthetic blur of a
random crop (the training generator's kernels, up to the canvas), the frozen guide's output on it, and
the maps the service builds from the two (`correction_maps`). The maps are cached in the run folder, so a
second run with other net settings skips the slow part. Writes samples-*.npz, log.csv (the loss over the
last steps; validation kernel L1 and Wiener excess of the corrected kernel beside the service's
estimate's), config.json, corrector.weights.h5 and corrector.onnx (parity-checked against Keras).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
import time
from pathlib import Path

import keras
import numpy as np
import onnx
import onnxruntime as ort

from service.engine import Engine
from service.kernel_aware import HINT_CANVAS
from service.kernel_correction import MapMaker, kernel_from_log_map
from service.kernel_estimation import centre_on_centroid
from training.data.folders import DataError, estimation_split, load_photos
from training.data.kernels import FAMILIES, check_kernel_weights
from training.data.synthesis import SyntheticPairs
from training.kernel_corrector import LOSS_NAMES, build_corrector, corrector_loss, dihedral, to_onnx, wiener_excess_db

log = logging.getLogger("deblur-train-corrector")
FIELDS = ["step", "wall_s", "lr", "loss", "val_kernel_l1", "val_estimate_l1", "val_wiener_db", "val_estimate_wiener_db"]


def make_samples(source: SyntheticPairs, maps_of: MapMaker, count: int, path: Path) -> dict[str, np.ndarray]:
    """count × (the maps a corrector reads, the true kernel centred on the canvas), cached at `path`.
    Samples are deterministic per index, so a cache of the same shape is reused: cut when it holds more,
    extended by the missing indices when it holds fewer (a larger run redraws only what is new).
    `maps_of.guide` runs the guide at full size too."""
    canvas, channels = maps_of.canvas, maps_of.channels
    maps, kernels = [], []
    if path.is_file():
        with np.load(path) as cached:
            if cached["maps"].shape[1:] == (2 * canvas - 1,) * 2 + (channels,):
                if len(cached["kernels"]) >= count:
                    return {"maps": cached["maps"][:count], "kernels": cached["kernels"][:count]}
                maps, kernels = list(cached["maps"]), list(cached["kernels"])
    start = time.perf_counter()
    for index in range(len(kernels), count):
        blurred, _, kernel = source.with_kernel(index)
        sample_maps = maps_of(blurred, maps_of.guide(blurred))
        maps.append(sample_maps)
        kernels.append(centre_on_centroid(kernel.astype(np.float64), canvas).astype(np.float32))
        if (index + 1) % 500 == 0:
            log.info("%s: %d of %d samples (%.0f s)", path.name, index + 1, count, time.perf_counter() - start)
    samples = {"maps": np.stack(maps), "kernels": np.stack(kernels)}
    path.unlink(missing_ok=True)  # a cache linked from another run is replaced here, never written through
    np.savez(path, **samples)
    return samples


def given_estimate(samples: dict[str, np.ndarray], canvas: int) -> np.ndarray:
    """The service's own estimate, read back from channel 0 (its log), so it is scored like the corrector."""
    start = canvas // 2
    return kernel_from_log_map(samples["maps"][:, start:start + canvas, start:start + canvas, 0]).astype(np.float32)


def scores(kernels: np.ndarray, true: np.ndarray) -> tuple[float, float]:
    """(mean kernel L1, mean Wiener excess in dB) of estimates against the true kernels."""
    kernels = kernels / np.maximum(kernels.sum((1, 2), keepdims=True), 1e-12)
    excess = np.concatenate([wiener_excess_db(true[i:i + 64], kernels[i:i + 64]).numpy()
                             for i in range(0, len(true), 64)])
    return float(np.abs(kernels - true).sum((1, 2)).mean()), float(excess.mean())


def check_parity(corrector: keras.Model, model: onnx.ModelProto, maps: np.ndarray, tolerance: float = 1e-4) -> float:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: maps})[0]
    error = float(np.abs(got - corrector.predict(maps, verbose=0)).max())
    if error > tolerance:
        raise RuntimeError(f"ONNX export differs from Keras by {error:.2e} (> {tolerance:g})")
    return error


def train(args: argparse.Namespace) -> Path:
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "config.json").write_text(json.dumps({k: str(v) if isinstance(v, Path) else v
                                                      for k, v in vars(args).items()}, indent=2) + "\n")
    train_files, val_files = estimation_split([args.photos], args.val_fraction)
    min_side = args.crop + args.canvas
    (train_photos, _, _), (val_photos, _, _) = load_photos(train_files, min_side), load_photos(val_files, min_side)
    if not train_photos or not val_photos:
        raise DataError(f"{args.photos}: too few training photos of at least {min_side} px for a corrector")
    guide = Engine(args.guide, providers=("cpu",), threads=1)
    blur = dict(max_blur=args.canvas - 4.0, max_motion=args.canvas - 4.0,  # the kernel's canvas fits the support
                kernel_weights=args.kernel_weights)
    maps_of = MapMaker(args.canvas, args.cross_scale, guide.deblurred)
    val = make_samples(SyntheticPairs(val_photos, args.crop, args.seed + 1, augment=False, **blur), maps_of,
                       args.val_samples, args.out / "samples-val.npz")
    data = make_samples(SyntheticPairs(train_photos, args.crop, args.seed, **blur), maps_of, args.samples,
                        args.out / "samples-train.npz")
    corrector = build_corrector(args.canvas, args.width, channels=maps_of.channels, estimate_gain=args.estimate_gain)
    schedule = keras.optimizers.schedules.CosineDecay(args.lr, args.steps, alpha=0.02)
    optimizer = keras.optimizers.AdamW(schedule, weight_decay=1e-4, clipnorm=1.0)
    corrector.compile(optimizer, loss=corrector_loss(args.loss, args.l1_weight))
    baseline = scores(given_estimate(val, args.canvas), val["kernels"])
    rng, losses, start = np.random.default_rng(args.seed), [], time.perf_counter()
    with open(args.out / "log.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(FIELDS)
        for step in range(1, args.steps + 1):
            chosen = rng.integers(0, len(data["kernels"]), args.batch)
            batch = dihedral(data["maps"][chosen], data["kernels"][chosen], rng)
            losses.append(float(corrector.train_on_batch(*batch)))
            if step % args.log_every == 0 or step == args.steps:
                val_l1, val_db = scores(corrector.predict(val["maps"], batch_size=64, verbose=0), val["kernels"])
                writer.writerow([step, f"{time.perf_counter() - start:.1f}", f"{float(schedule(step)):.2e}",
                                 f"{np.mean(losses[-args.log_every:]):.4f}", f"{val_l1:.4f}", f"{baseline[0]:.4f}",
                                 f"{val_db:.3f}", f"{baseline[1]:.3f}"])
                handle.flush()
                log.info("step %d: validation kernel L1 %.3f, Wiener excess %.2f dB (the estimate: %.3f, %.2f dB)",
                         step, val_l1, val_db, *baseline)
                corrector.save_weights(args.out / "corrector.weights.h5")
    model = to_onnx(corrector)
    error = check_parity(corrector, model, val["maps"][:8])
    onnx.save(model, args.out / "corrector.onnx")
    log.info("wrote %s (parity max abs error %.2e)", args.out / "corrector.onnx", error)
    return args.out / "corrector.onnx"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="deblur-train-corrector", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="run folder (samples, log, weights, ONNX)")
    p.add_argument("--photos", default="data/photos/train", help="photo folder; only its training split is used")
    p.add_argument("--guide", type=Path, default=Path("models/deblur-generator.onnx"),
                   help="the plain model whose output guides the estimate (the service's hint guide)")
    p.add_argument("--val-fraction", type=float, default=0.12, help="the own protocol's held-out share (kept out)")
    p.add_argument("--canvas", type=int, default=HINT_CANVAS, help="kernel support (px, odd)")
    p.add_argument("--crop", type=int, default=384, help="side of each training crop (px)")
    p.add_argument("--kernel-weights", type=float, nargs="+", metavar="W",
                   help=f"how often each kernel family is drawn, in the order {' '.join(FAMILIES)} "
                        "(default: the training generator's; missing trailing families are off)")
    p.add_argument("--samples", type=int, default=6000)
    p.add_argument("--val-samples", type=int, default=400)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--cross-scale", action="store_true",
                   help="also read the guide's estimate at half size (service/kernel_correction.py: MapMaker)")
    p.add_argument("--width", type=int, default=16, help="channels of every residual block")
    p.add_argument("--estimate-gain", type=float, default=1.0,
                   help="the service estimate's initial weight in the logits (1: an untrained net returns it)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--loss", choices=LOSS_NAMES, default="l1",
                   help="l1: kernel L1; wiener: what Wiener deconvolution loses with the estimate, plus the L1")
    p.add_argument("--l1-weight", type=float, default=1.0, help="the kernel L1's weight in the wiener loss")
    p.add_argument("--log-every", type=int, default=250)
    p.add_argument("--seed", type=int, default=1234)
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    args = parser().parse_args(argv)
    if args.canvas % 2 == 0 or args.canvas < 9:
        print(f"deblur-train-corrector: --canvas must be odd and at least 9, got {args.canvas}", file=sys.stderr)
        return 2
    try:
        if args.kernel_weights is not None:
            check_kernel_weights(tuple(args.kernel_weights))
    except ValueError as error:
        print(f"deblur-train-corrector: --kernel-weights: {error}", file=sys.stderr)
        return 2
    try:
        train(args)
    except DataError as error:
        print(f"deblur-train-corrector: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
