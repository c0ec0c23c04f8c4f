"""The kernel-aware chain's cost at 720p beside the plain model, timed round-robin in one process.

    python -m bench.kernel_aware --chain runs/hinted1/export/refiner.onnx [--model models/deblur-generator.onnx]

Rows: the plain model (Engine.deblur), the whole chain (Engine.deblur of the kernel-aware model: guide,
kernel estimate, Wiener hint, the line hint where the model reads one, refiner) and each stage alone, so
the 1.0 s budget of issue 15 can be read against where the time goes. Threads: the engine's default (all cores).
"""

from __future__ import annotations

from pathlib import Path

from bench.common import SIZES, Report, Table, base_parser, finish, interleaved, synthetic_photo
from service.deconvolution import wiener
from service.engine import Engine
from service.kernel_aware import HINT_BOUNDARY_ITERATIONS, HINT_WEIGHT, LINE_HINT_NAME, estimation_region, line_hint
from service.tiling import run_tiled


def main(argv: list[str] | None = None) -> int:
    p = base_parser("kernel_aware", __doc__.splitlines()[0])
    p.add_argument("--chain", type=Path, required=True, help="a kernel-aware model (metadata hint, guide beside it)")
    p.add_argument("--size", default="720p", choices=sorted(SIZES))
    args = p.parse_args(argv)
    plain = Engine(args.model, providers=("cpu",))
    chain = Engine(args.chain, providers=("cpu",))
    if chain.guide is None:
        p.error(f"{args.chain} is not a kernel-aware model (no hint in its metadata)")
    height, width = SIZES[args.size] if not args.quick else (96, 128)
    rgb = synthetic_photo(height, width)
    region = rgb[estimation_region(rgb)]
    guide = chain.guide.deblur(region).image
    kernel = chain.kernel_of(region, guide)
    stacked = chain.model_input(rgb)
    plan = chain.plan(height, width)
    stages = {
        "plain model (Engine.deblur)": lambda: plain.deblur(rgb),
        "kernel-aware chain (Engine.deblur)": lambda: chain.deblur(rgb),
        "  1 guide on the estimation region (tiled)": lambda: chain.guide.deblur(region),
        "  2 kernel estimate (estimation_region, support_kernel" + (", corrector)" if chain.corrector else ")"):
            lambda: chain.kernel_of(rgb[estimation_region(rgb)], guide),
        "  3 Wiener hint": lambda: wiener(rgb, kernel, HINT_WEIGHT, HINT_BOUNDARY_ITERATIONS),
        **({"  3b line hint (cepstrum, luminance Wiener)": lambda: line_hint(rgb)} if chain.hint == LINE_HINT_NAME
           else {}),
        f"  4 refiner (tiled, {stacked.shape[-1]} channels)": lambda: run_tiled(stacked, chain.run, plan,
                                                                               chain.tile_batch, channels_out=3),
    }
    timings = interleaved(stages, 1 if args.quick else args.repeats)
    base = timings["plain model (Engine.deblur)"].median
    table = Table(["stage", f"s per {args.size} frame (median)", "min–max", "× plain model"])
    for name, timing in timings.items():
        table.add(name, timing.median, timing.spread, timing.median / base)
    body = (f"{width}×{height} synthetic photo, {len(plan)} tiles per pass, CPU provider, the engine's default "
            f"threads; chain: {args.chain.name} (guide {chain.guide.info.path.name}).\n\n{table.markdown()}")
    finish(Report("kernel_aware", f"Kernel-aware chain vs the plain model at {args.size}", body), args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
