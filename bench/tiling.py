"""Tiling cost on a 2 MP image: tiled vs whole-image time and PSNR, and the tile/overlap/batch sweep.

    python -m bench.tiling [--model M] [--threads 2] [--sweep trimmed|full|none] [--repeats 3]

Why one session for the whole sweep: the tile shape is just the input shape of the same ONNX Runtime
session (dynamic H/W), so each configuration runs service.tiling.run_tiled over engine.run with its
own TilePlan, after one untimed warm-up call at that shape. The quality column is the PSNR of the
tiled output against the whole-image output of the same model (docs/model-contract.md asks ≥ 40 dB).
"""

from __future__ import annotations

import argparse
import itertools
from typing import Any

import numpy as np

from bench.common import (
    SIZES,
    Report,
    Table,
    base_parser,
    finish,
    interleaved,
    measure,
    psnr,
    require_model,
    synthetic_photo,
)
from bench.engine import make_engine, tile_defaults

TILES, OVERLAPS, BATCHES = (192, 256, 384, 512), (16, 32, 64), (1, 2, 4)


def sweep_configs(mode: str, defaults: dict[str, int]) -> list[tuple[int, int, int]]:
    """full: every tile×overlap×batch; trimmed: tile×overlap at the default batch, then the batches at the
    default tile/overlap (14 runs instead of 36); none: nothing."""
    if mode == "full":
        return list(itertools.product(TILES, OVERLAPS, BATCHES))
    if mode == "none":
        return []
    b, t, o = defaults["tile_batch"], defaults["tile_size"], defaults["tile_overlap"]
    return [(ts, ov, b) for ts, ov in itertools.product(TILES, OVERLAPS)] + [(t, o, n) for n in BATCHES if n != b]


def run(args: argparse.Namespace) -> Report:
    from service.tiling import TilePlan, run_tiled

    require_model(args)
    repeats = 1 if args.quick else args.repeats
    h, w = (300, 420) if args.quick else SIZES["2MP"]
    engine = make_engine(args.model, args.threads)
    k = engine.info.size_multiple
    img = synthetic_photo(h, w)
    outs: dict[str, Any] = {}
    times = interleaved({"tiled": lambda: outs.__setitem__("tiled", engine.deblur(img).image),
                         "whole": lambda: outs.__setitem__("whole", engine.deblur_whole(img))}, repeats)
    whole = outs["whole"]
    tiled_s, whole_s = times["tiled"].median, times["whole"].median
    quality = psnr(outs["tiled"], whole)
    head = Table(["image", "tiles (size/overlap/batch)", "tiled s", "whole s", "tiled/whole", "PSNR tiled vs whole dB"])
    head.add(f"{w}×{h} ({h * w / 1e6:.2f} MP)",
             f"{len(engine.plan(h, w))} ({engine.tile_size}/{engine.tile_overlap}/{engine.tile_batch})",
             tiled_s, whole_s, tiled_s / whole_s, quality)
    summary = [(f"tiled/whole time, {h * w / 1e6:.1f} MP", f"{tiled_s / whole_s:.2f}", "≤ 1.10 at 2 MP"),
               ("PSNR tiled vs whole, default tiles", f"{quality:.1f} dB", "≥ 40 dB")]

    configs = sweep_configs("none" if args.sweep == "none" else ("trimmed" if args.quick else args.sweep),
                            tile_defaults())
    if args.quick:
        configs = configs[:1] + configs[-1:]
    sweep = Table(["tile", "overlap", "batch", "tiles", "pixels run / image", "s (median)", "vs whole",
                   "PSNR vs whole dB", "≥ 40 dB"])
    best: tuple[float, tuple[int, int, int]] | None = None
    for tile, overlap, batch in configs:
        if tile % k or 2 * overlap > tile:
            continue
        plan = TilePlan(h, w, tile, overlap, k)
        result: dict[str, np.ndarray] = {}
        t = measure(lambda p=plan, b=batch, r=result: r.__setitem__("x", run_tiled(img, engine.run, p, b)), repeats)
        q = psnr(np.clip(result["x"], 0, 1), whole)
        ok = q >= 40
        sweep.add(tile, overlap, batch, len(plan), len(plan) * tile * tile / (h * w), t.median, t.median / whole_s,
                  q, "yes" if ok else "**no**")
        if ok and (best is None or t.median < best[0]):
            best = (t.median, (tile, overlap, batch))
    body = (f"Threads {args.threads}; provider {engine.provider}; median of {repeats} runs, tiled and whole "
            f"interleaved. `whole` = one model call on the reflect-padded image (Engine.deblur_whole).\n\n"
            + head.markdown())
    if configs:
        pick = f"fastest with PSNR ≥ 40 dB: tile {best[1][0]}, overlap {best[1][1]}, batch {best[1][2]}" if best \
            else "no configuration reached 40 dB"
        body += (f"\n\nSweep ({'full' if args.sweep == 'full' else 'trimmed'}; `pixels run / image` = the work "
                 f"the tiles add for overlap and padding): {pick}.\n\n" + sweep.markdown())
        if best:
            summary.append(("fastest tiles with ≥ 40 dB (size/overlap/batch)", "/".join(map(str, best[1])), "-"))
    return Report("tiling", "Tiling cost (tiled vs whole image) and the tile sweep", body, summary)


def parser() -> argparse.ArgumentParser:
    p = base_parser("tiling", __doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads")
    p.add_argument("--sweep", choices=["trimmed", "full", "none"], default="trimmed",
                   help="trimmed: 12 tile×overlap runs at the default batch + the other batches (default)")
    return p


def main(argv: list[str] | None = None) -> Report:
    args = parser().parse_args(argv)
    return finish(run(args), args)


if __name__ == "__main__":
    main()
