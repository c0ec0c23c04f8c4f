"""`deblur-eval`: score an ONNX model through the service's own engine (same tiling as production).

    deblur-eval --model models/deblur-generator.onnx --photos data/photos/train --out runs/eval
    deblur-eval --model models/deblur-generator.onnx --paired /data/GOPRO --out runs/eval-gopro

Synthetic mode applies the fixed validation protocol (training/data/protocol.py) to the held-out
photos (the same file-hash split training uses). Paired mode scores real blurred/sharp pairs.
Writes per-image CSV, summary.json (embeddable with `deblur-export --metrics`) and side-by-side
crops (blurred | restored | sharp); `--real DIR` adds before/after crops of photos without reference.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from service.engine import Engine, ModelError
from training.data.paired import find_pairs
from training.data.protocol import protocol_pair
from training.data.synthetic import DataError, is_validation, list_images

FIELDS = ["image", "kernel", "kernel_px", "width", "height", "psnr_in", "psnr_out", "ssim_in", "ssim_out", "gain_db"]


def load_rgb(path: Path, max_side: int = 0) -> np.ndarray:
    with Image.open(path) as im:
        im = im.convert("RGB")
        if max_side and max(im.size) > max_side:
            scale = max_side / max(im.size)
            im = im.resize((round(im.width * scale), round(im.height * scale)), Image.Resampling.LANCZOS)
        return np.asarray(im, np.float32) / 255


def scores(restored: np.ndarray, blurred: np.ndarray, sharp: np.ndarray) -> dict[str, float]:
    def ssim(a):
        return structural_similarity(a, sharp, channel_axis=-1, data_range=1.0)
    psnr_in = peak_signal_noise_ratio(sharp, blurred, data_range=1.0)
    psnr_out = peak_signal_noise_ratio(sharp, restored, data_range=1.0)
    return {"psnr_in": psnr_in, "psnr_out": psnr_out, "ssim_in": ssim(blurred), "ssim_out": ssim(restored),
            "gain_db": psnr_out - psnr_in}


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
        blurred, sharp, family, size = protocol_pair(load_rgb(path, max_side), path.name, seed)
        yield path.name, blurred, sharp, family, size


def paired_cases(root: str, max_side: int):
    for blur_path, sharp_path in find_pairs(root, "test"):
        yield blur_path.name, load_rgb(blur_path, max_side), load_rgb(sharp_path, max_side), "real", 0


def evaluate(engine: Engine, cases, out: Path | None, pictures: int = 12) -> list[dict]:
    rows = []
    for i, (name, blurred, sharp, family, size) in enumerate(cases):
        restored = engine.deblur(blurred).image
        row = {"image": name, "kernel": family, "kernel_px": size, "width": sharp.shape[1], "height": sharp.shape[0],
               **scores(restored, blurred, sharp)}
        rows.append(row)
        print(f"{name:40s} {family:8s} {size:3d}px  PSNR {row['psnr_in']:6.2f} → {row['psnr_out']:6.2f} "
              f"({row['gain_db']:+.2f})  SSIM {row['ssim_in']:.3f} → {row['ssim_out']:.3f}", flush=True)
        if out and i < pictures:
            side_by_side([blurred, restored, sharp], out / f"{Path(name).stem}_blur-restored-sharp.png")
    return rows


def summarise(rows: list[dict]) -> dict:
    gains = np.array([r["gain_db"] for r in rows])
    return {"images": len(rows),
            **{f"mean_{k}": round(float(np.mean([r[k] for r in rows])), 4)
               for k in ("psnr_in", "psnr_out", "ssim_in", "ssim_out", "gain_db")},
            "min_gain_db": round(float(gains.min()), 4), "images_worse": int((gains < 0).sum())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Score an ONNX deblurring model through the serving engine.")
    parser.add_argument("--model", type=Path, default=Path("models/deblur-generator.onnx"))
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--photos", default="data/photos/train", help="sharp photos: the fixed synthetic protocol")
    source.add_argument("--paired", help="GoPro root (test split) or a folder with blur/ and sharp/")
    parser.add_argument("--all", action="store_true", help="use every photo, not only the held-out split")
    parser.add_argument("--val-fraction", type=float, default=0.12, help="must match training's split")
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
        cases = (paired_cases(args.paired, args.max_side) if args.paired
                 else synthetic_cases(args.photos, args.val_fraction, args.all, args.max_side, args.seed))
        rows = evaluate(engine, cases, args.out)
        if args.real and args.out:
            for path in list_images([args.real]):
                blurred = load_rgb(path, args.max_side)
                side_by_side([blurred, engine.deblur(blurred).image], args.out / f"real_{path.stem}.png", crop=480)
    except (ModelError, DataError, OSError) as exc:
        print(f"deblur-eval: {exc}", file=sys.stderr)
        return 2
    summary = {"model": engine.info.name, "version": engine.info.version, "protocol": "paired" if args.paired
               else f"synthetic (seed {args.seed}, held-out photos)", **summarise(rows)}
    print(json.dumps(summary, indent=1))
    if args.out:
        with open(args.out / "per_image.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, FIELDS)
            writer.writeheader()
            writer.writerows({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()} for r in rows)
        (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
