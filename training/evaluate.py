"""`deblur-eval`: score an ONNX model through the service's own engine (same tiling as production).

    deblur-eval --model models/deblur-generator.onnx --photos data/photos/train --out runs/eval
    deblur-eval --model models/deblur-generator.onnx --protocol independent --out runs/eval-independent
    deblur-eval --model models/deblur-generator.onnx --paired /data/GOPRO --out runs/eval-gopro

`--protocol own` (default) applies the fixed validation protocol (training/data/protocol.py) to the
held-out photos (the same file-hash split training uses); `--protocol independent` applies
training/data/independent.py (kernels from another generator, photos no training folder holds). Both
also score the aligned PSNR (best shift within ±6 px, training/scoring.py) and a Wiener filter handed
the true kernel (service/deconvolution.py), the yardstick for blind estimation. Paired mode scores real
blurred/sharp pairs. Writes per-image CSV, summary.json (embeddable with `deblur-export --metrics`) with
per-family and per-size means, and side-by-side crops (blurred | restored | sharp); `--real DIR` adds
before/after crops of photos without reference.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from service.deconvolution import wiener
from service.engine import Engine, ModelError
from training.config import Config
from training.data.folders import DataError, is_validation, list_images
from training.data.independent import independent_cases
from training.data.paired import find_pairs
from training.data.protocol import protocol_pair
from training.scoring import aligned_psnr, psnr, restoration_scores

FIELDS = ["image", "kernel", "kernel_px", "width", "height", "psnr_in", "psnr_out", "ssim_in", "ssim_out", "gain_db",
          "aligned_psnr_in", "aligned_psnr_out", "aligned_gain_db",
          "wiener_true_gain_db", "wiener_true_aligned_gain_db"]
SIZE_BUCKETS = ((0, 15, "<15 px"), (15, 30, "15-29 px"), (30, 10_000, ">=30 px"))
WIENER_WEIGHTS = (0.03, 0.1, 0.3, 1.0)  # the oracle column takes the best per image


def load_rgb(path: Path, max_side: int = 0) -> np.ndarray:
    with Image.open(path) as im:
        im = im.convert("RGB")
        if max_side and max(im.size) > max_side:
            scale = max_side / max(im.size)
            im = im.resize((round(im.width * scale), round(im.height * scale)), Image.Resampling.LANCZOS)
        return np.asarray(im, np.float32) / 255


def wiener_oracle(row: dict, blurred: np.ndarray, sharp: np.ndarray, kernel: np.ndarray) -> dict[str, float]:
    """Gains of a Wiener filter handed the true kernel, at its best weight per image (plain and aligned),
    over the input scores already in `row`."""
    restored = [wiener(blurred, kernel, w) for w in WIENER_WEIGHTS]
    plain = max(psnr(r, sharp) for r in restored)
    aligned = max(aligned_psnr(r, sharp)[0] for r in restored)
    return {"wiener_true_gain_db": plain - row["psnr_in"],
            "wiener_true_aligned_gain_db": aligned - row["aligned_psnr_in"]}


def side_by_side(images: list[np.ndarray], path: Path, crop: int = 320) -> None:
    """A centre crop at 100 % of each image, side by side (what a reviewer should look at)."""
    h, w = images[0].shape[:2]
    y, x = max(0, (h - crop) // 2), max(0, (w - crop) // 2)
    strip = np.concatenate([im[y:y + crop, x:x + crop] for im in images], axis=1)
    Image.fromarray(np.clip(np.rint(strip * 255), 0, 255).astype(np.uint8)).save(path)


def synthetic_cases(folder: str, val_fraction: float, use_all: bool, max_side: int, seed: int):
    files = [p for p in list_images([folder]) if use_all or is_validation(p, val_fraction)]
    if not files:
        raise DataError(f"no held-out photos under {folder} (val_fraction={val_fraction}); use --all")
    for path in files:
        blurred, sharp, family, kernel = protocol_pair(load_rgb(path, max_side), path.name, seed)
        yield path.name, blurred, sharp, family, kernel


def independent_photos(folder: str, max_side: int = 0, limit: int = 0) -> list[tuple[str, np.ndarray]]:
    """The independent protocol's photos (name, RGB), at most 2048 px a side unless `max_side` says."""
    return [(path.name, load_rgb(path, max_side or 2048)) for path in list_images([folder])[:limit or None]]


def paired_cases(root: str, max_side: int):
    for blur_path, sharp_path in find_pairs(root, "test"):
        yield blur_path.name, load_rgb(blur_path, max_side), load_rgb(sharp_path, max_side), "real", None


def evaluate(engine: Engine, cases, out: Path | None, pictures: int = 12) -> list[dict]:
    """Score every case; synthetic cases (with a true kernel) also get aligned and Wiener-oracle scores."""
    rows = []
    for i, (name, blurred, sharp, family, kernel) in enumerate(cases):
        restored = engine.deblur(blurred).image
        synthetic = kernel is not None
        row = {"image": name, "kernel": family, "kernel_px": kernel.shape[0] if synthetic else 0,
               "width": sharp.shape[1], "height": sharp.shape[0],
               **restoration_scores(restored, blurred, sharp, aligned=synthetic)}
        if synthetic:
            row.update(wiener_oracle(row, blurred, sharp, kernel))
        rows.append(row)
        aligned = f"  aligned {row['aligned_gain_db']:+.2f} (Wiener+true k {row['wiener_true_aligned_gain_db']:+.2f})" \
            if synthetic else ""
        print(f"{name:40s} {family:8s} {row['kernel_px']:3d}px  PSNR {row['psnr_in']:6.2f} → {row['psnr_out']:6.2f} "
              f"({row['gain_db']:+.2f})  SSIM {row['ssim_in']:.3f} → {row['ssim_out']:.3f}{aligned}", flush=True)
        if out and i < pictures:
            side_by_side([blurred, restored, sharp], out / f"{Path(name).stem}_blur-restored-sharp.png")
    return rows


def _means(rows: list[dict]) -> dict:
    keys = [k for k in FIELDS[5:] if all(k in r for r in rows)]
    return {"images": len(rows), **{f"mean_{k}": round(float(np.mean([r[k] for r in rows])), 4) for k in keys}}


def summarise(rows: list[dict]) -> dict:
    """Means over all rows, the worst case, and (for synthetic protocols) means per kernel family and size."""
    gains = np.array([r["gain_db"] for r in rows])
    summary = {**_means(rows), "min_gain_db": round(float(gains.min()), 4), "images_worse": int((gains < 0).sum())}
    if all("aligned_gain_db" in r for r in rows):
        aligned = np.array([r["aligned_gain_db"] for r in rows])
        summary.update(min_aligned_gain_db=round(float(aligned.min()), 4),
                       images_worse_aligned=int((aligned < 0).sum()))
        families = sorted({r["kernel"] for r in rows})
        summary["by_family"] = {f: _means([r for r in rows if r["kernel"] == f]) for f in families}
        summary["by_size"] = {label: _means(sel) for lo, hi, label in SIZE_BUCKETS
                              if (sel := [r for r in rows if lo <= r["kernel_px"] < hi])}
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Score an ONNX deblurring model through the serving engine.")
    parser.add_argument("--model", type=Path, default=Path("models/deblur-generator.onnx"))
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--photos", help="sharp photos for the synthetic protocol (default: data/photos/train, "
                        "or data/photos/independent with --protocol independent)")
    source.add_argument("--paired", help="GoPro root (test split) or a folder with blur/ and sharp/")
    parser.add_argument("--protocol", choices=("own", "independent"), default="own",
                        help="own: the training generator's kernels on held-out photos; independent: another "
                             "generator's kernels on photos from packages training never uses")
    parser.add_argument("--all", action="store_true", help="use every photo, not only the held-out split")
    parser.add_argument("--val-fraction", type=float, default=Config.val_fraction,
                        help="must match training's split (default: the config's)")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--max-side", type=int, default=0, help="downscale larger images first (0 = never)")
    parser.add_argument("--real", help="folder of really blurred photos: writes before/after crops only")
    parser.add_argument("--out", type=Path, help="folder for per-image CSV, summary.json and pictures")
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--overlap", type=int, default=32)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        engine = Engine(args.model, providers=("cpu",), tile_size=args.tile, tile_overlap=args.overlap,
                        tile_batch=args.batch, threads=args.threads)
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
        if args.paired:
            cases = paired_cases(args.paired, args.max_side)
        elif args.protocol == "independent":
            cases = independent_cases(independent_photos(args.photos or "data/photos/independent", args.max_side))
        else:
            cases = synthetic_cases(args.photos or "data/photos/train", args.val_fraction, args.all, args.max_side,
                                    args.seed)
        rows = evaluate(engine, cases, args.out)
        if args.real and args.out:
            for path in list_images([args.real]):
                blurred = load_rgb(path, args.max_side)
                side_by_side([blurred, engine.deblur(blurred).image], args.out / f"real_{path.stem}.png", crop=480)
    except (ModelError, DataError, OSError) as exc:
        print(f"deblur-eval: {exc}", file=sys.stderr)
        return 2
    protocol = ("paired" if args.paired else "independent (training/data/independent.py)"
                if args.protocol == "independent" else f"synthetic (seed {args.seed}, held-out photos)")
    summary = {"model": engine.info.name, "version": engine.info.version, "protocol": protocol, **summarise(rows)}
    print(json.dumps(summary, indent=1))
    if args.out:
        with open(args.out / "per_image.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, FIELDS, restval="")
            writer.writeheader()
            writer.writerows({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()} for r in rows)
        (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
