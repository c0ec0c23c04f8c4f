"""Efficiency: the model's MACs per megapixel (from the ONNX graph), achieved GFLOP/s, % of the matmul peak.

    python -m bench.efficiency [--model M] [--threads 1,2]

Why the peak runs in a clean subprocess: OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE may be set on these
machines and make OpenBLAS pick a slower kernel; the peak must be the best the CPU does, so the
float32 matmul runs with both unset and OPENBLAS_NUM_THREADS = the thread count, and says which
kernel ran. Two GFLOP/s figures: `useful` counts the image's pixels, `executed` the pixels the tiles
actually ran (overlap and padding included), so tiling waste and kernel speed can be told apart.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import onnx

from bench.common import REPO, SIZES, Report, Table, base_parser, finish, measure, require_model, synthetic_photo
from bench.engine import make_engine
from bench.macs import count_macs, parameter_count

MATMUL = """
import json, sys, time
import numpy as np
from bench.macs import blas_info
n, repeats = int(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(0)
a, b = rng.random((n, n), dtype=np.float32), rng.random((n, n), dtype=np.float32)
a @ b
times = []
for _ in range(repeats):
    t = time.perf_counter(); a @ b; times.append(time.perf_counter() - t)
times.sort()
print(json.dumps({"gflops": 2 * n**3 / times[len(times) // 2] / 1e9, **blas_info()}))
"""


def matmul_peak(threads: int, n: int = 2048, repeats: int = 7) -> dict[str, str | float]:
    """float32 n×n @ n×n GFLOP/s (median) in a subprocess with the OpenBLAS hints unset."""
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    env.update(OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    proc = subprocess.run([sys.executable, "-c", MATMUL, str(n), str(repeats)], capture_output=True, text=True,
                          env=env, cwd=REPO, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(args: argparse.Namespace) -> Report:
    require_model(args)
    repeats = 1 if args.quick else args.repeats
    model = onnx.load(str(args.model))
    macs = count_macs(model)
    gmac = macs.per_megapixel / 1e9
    h, w = (240, 320) if args.quick else SIZES["720p"]
    img = synthetic_photo(h, w)
    table = Table(["threads", "path", "s (median)", "useful GFLOP/s", "executed GFLOP/s", "matmul peak GFLOP/s",
                   "% of peak (executed)", "BLAS kernel"])
    summary = []
    for threads in (int(t) for t in str(args.threads).split(",")):
        peak = matmul_peak(threads, 512 if args.quick else 2048, 3 if args.quick else 7)
        engine = make_engine(args.model, threads)
        plan = engine.plan(h, w)
        run_px = len(plan) * engine.tile_size**2
        k = engine.info.size_multiple
        whole_px = -(-h // k) * k * (-(-w // k) * k)
        for path, fn, px in (("tiled (served)", lambda e=engine: e.deblur(img), run_px),
                             ("whole image", lambda e=engine: e.deblur_whole(img), whole_px)):
            t = measure(fn, repeats).median
            useful = 2 * gmac * (h * w / 1e6) / t
            executed = 2 * gmac * (px / 1e6) / t
            pct, useful_pct = 100 * executed / float(peak["gflops"]), 100 * useful / float(peak["gflops"])
            table.add(threads, path, t, useful, executed, float(peak["gflops"]), pct, peak["kernel"])
            if path.startswith("tiled") and threads == max(int(x) for x in str(args.threads).split(",")):
                summary.append((f"share of matmul peak, {h}p tiled, {threads} threads",
                                f"{pct:.0f} % executed ({useful_pct:.0f} % useful)", "≥ 40 %"))
        del engine
    body = (f"MACs counted from the ONNX graph ({macs.nodes} Conv/MatMul/Gemm nodes, grouped/depthwise included, "
            f"shapes from {macs.shapes_from}) on a {macs.input_shape[1]}×{macs.input_shape[2]} input: "
            f"**{gmac:.2f} GMAC per megapixel** ({2 * gmac:.1f} GFLOP/MP); {parameter_count(model) / 1e6:.2f} M "
            f"weights in the ONNX file. Image {w}×{h}, median of {repeats}. Peak: numpy float32 "
            f"{512 if args.quick else 2048}² matmul in a subprocess with OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE "
            f"unset (BLAS: {peak['library']}).\n\n" + table.markdown())
    summary.insert(0, ("model cost (ONNX graph)", f"{gmac:.2f} GMAC/MP", "-"))
    return Report("efficiency", "Efficiency: MACs per megapixel and share of the matmul peak", body, summary)


def parser() -> argparse.ArgumentParser:
    p = base_parser("efficiency", __doc__.splitlines()[0])
    p.add_argument("--threads", default="1,2", help="comma list of thread counts")
    return p


def main(argv: list[str] | None = None) -> Report:
    args = parser().parse_args(argv)
    return finish(run(args), args)


if __name__ == "__main__":
    main()
