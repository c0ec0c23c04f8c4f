"""`python -m training.curve LOG.csv…`: the learning curve (validation gain vs steps and hours).

Phases are given in order (e.g. content-only warm-up, then adversarial); each phase's log counts
steps cumulatively already, and its wall time is added to the previous phases'. Prints a Markdown
table and optionally draws a PNG (Pillow only, so no plotting library is needed).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from PIL import Image, ImageDraw

CORES = 2  # the machine the shipped model was trained on; --cores for a run pinned to fewer
COLOURS = [("#1f77b4", "blue"), ("#d62728", "red"), ("#2ca02c", "green"), ("#ff7f0e", "orange"),
           ("#9467bd", "purple"), ("#8c564b", "brown"), ("#e377c2", "pink"), ("#17becf", "cyan")]


def read_curve(logs: list[Path]) -> list[dict]:
    points, offset = [], 0.0
    for phase, path in enumerate(logs, start=1):
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        validated = {}  # by step: a resumed run may log a step twice; the later line wins
        for row in rows:
            if row["val_psnr"]:
                psnr = float(row["val_psnr"])
                validated[int(row["step"])] = {"phase": phase, "step": int(row["step"]), "psnr": psnr,
                                               "hours": (offset + float(row["wall_s"])) / 3600,
                                               "gain": psnr - float(row["input_psnr"]), "ssim": float(row["val_ssim"])}
        points += sorted(validated.values(), key=lambda p: p["step"])
        offset += max(float(row["wall_s"]) for row in rows) if rows else 0.0
    return points


def markdown(points: list[dict], cores: int = CORES) -> str:
    lines = [f"| phase | step | wall hours | CPU-hours ({cores} cores) | val PSNR | gain vs input | val SSIM |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {p['phase']} | {p['step']} | {p['hours']:.2f} | {p['hours'] * cores:.2f} | {p['psnr']:.2f} | "
              f"{p['gain']:+.2f} dB | {p['ssim']:.4f} |" for p in points]
    return "\n".join(lines)


def draw(points: list[dict], path: Path, size: tuple[int, int] = (720, 320)) -> None:
    w, h = size
    img = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(img)
    left, bottom, top, right = 50, h - 30, 20, w - 20
    max_step = max(p["step"] for p in points)
    lo, hi = min(0.0, min(p["gain"] for p in points)), max(p["gain"] for p in points) * 1.1 + 1e-6
    d.line([(left, top), (left, bottom), (right, bottom)], fill="black")

    def xy(p):
        return (left + (right - left) * p["step"] / max_step, bottom - (bottom - top) * (p["gain"] - lo) / (hi - lo))
    for a, b in zip(points, points[1:], strict=False):
        d.line([xy(a), xy(b)], fill=COLOURS[(b["phase"] - 1) % len(COLOURS)][0], width=2)
    for v in range(int(lo), int(hi) + 1):
        y = bottom - (bottom - top) * (v - lo) / (hi - lo)
        d.text((8, y - 6), f"{v:+d} dB", fill="black")
    d.text((left, bottom + 8), "0", fill="black")
    d.text((right - 60, bottom + 8), f"{max_step} steps", fill="black")
    phases = max(p["phase"] for p in points)
    names = ", ".join(COLOURS[i % len(COLOURS)][1] for i in range(phases))
    d.text((left + 10, top), f"validation gain over the blurred input, phases 1-{phases}: {names}", fill="black")
    img.save(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("logs", nargs="+", type=Path, help="log.csv of each phase, in order")
    parser.add_argument("--png", type=Path, help="also draw the curve into this PNG")
    parser.add_argument("--cores", type=int, default=CORES, help="cores the run used (CPU-hours = wall hours × "
                        "cores; 1 for a run pinned with taskset)")
    args = parser.parse_args(argv)
    points = read_curve(args.logs)
    if not points:
        print("no validation rows in these logs")
        return 1
    if args.cores < 1:
        parser.error(f"--cores must be at least 1, got {args.cores}")
    print(markdown(points, args.cores))
    if args.png:
        draw(points, args.png)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
