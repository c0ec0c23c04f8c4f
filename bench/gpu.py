"""GPU (only where CUDA works): the engine on the CUDA provider, fixed tile shape vs dynamic whole-image shapes.

    python -m bench.gpu [--model M] [--fp16-model M16] [--repeats 5]

Why both: tiles give cuDNN one shape per photo size, bounded by the tile size (and flat memory); whole images give every
new size its own algorithm search, paid on the first call. So each row shows the first call at that
shape and the steady-state median. An fp16 export (float32 in/out, --fp16-model) gets the same rows.
Without a usable CUDA provider this prints why and reports a skip; it is never required.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from bench.common import SIZES, Report, Table, base_parser, finish, measure, psnr, require_model, synthetic_photo
from bench.engine import make_engine


def cuda_problem(model: Path) -> str | None:
    """Why CUDA cannot be benchmarked here, or None when a session really runs on it."""
    if not Path("/dev/nvidia0").exists() and shutil.which("nvidia-smi") is None:
        return "no NVIDIA device on this machine"
    from service.engine import ModelError

    try:
        engine = make_engine(model, 0, provider="cuda")
    except ModelError as exc:
        return f"CUDA session could not be created: {exc}"
    if engine.provider != "CUDAExecutionProvider":
        return f"ONNX Runtime fell back to {engine.provider} (CUDA 13 / cuDNN 9 libraries missing?)"
    return None


def rows_for(model: Path, label: str, sizes: dict[str, tuple[int, int]], repeats: int, table: Table) -> float | None:
    """Add fixed-tile and whole-image rows for one model; returns the 720p fixed-tile median (s)."""
    engine = make_engine(model, 0, provider="cuda")
    at_720p = None
    for name, (h, w) in sizes.items():
        img = synthetic_photo(h, w)
        outs, rows = {}, []
        for path, fn in (("fixed tiles", lambda img=img: engine.deblur(img).image),
                         ("whole image (dynamic shape)", lambda img=img: engine.deblur_whole(img))):
            start = time.perf_counter()
            try:
                outs[path] = fn()  # the first call at this shape: includes cuDNN's algorithm search
            except Exception as exc:  # a 12 MP whole image may not fit in GPU memory: say so, keep going
                rows.append([path, f"failed: {str(exc).splitlines()[0][:60]}", "-", "-"])
                continue
            first = time.perf_counter() - start
            t = measure(fn, repeats, warmup=0)
            rows.append([path, first, t.median, h * w / 1e6 / t.median])
            if name == "720p" and path == "fixed tiles":
                at_720p = t.median
        quality = psnr(*outs.values()) if len(outs) == 2 else float("nan")
        for row in rows:
            table.add(label, f"{name} ({w}×{h})", *row, quality if row[0] == "fixed tiles" else "-")
    return at_720p


def run(args: argparse.Namespace) -> Report:
    require_model(args)
    title = "GPU: CUDA provider, fixed tiles vs dynamic shapes"
    problem = cuda_problem(args.model)
    if problem:
        print(f"bench.gpu: skipped: {problem}")
        return Report("gpu", title, f"Skipped: {problem}.", [("GPU (CUDA provider)", "skipped", "optional")])
    repeats = 1 if args.quick else args.repeats
    sizes = {"quick": (240, 320)} if args.quick else {k: SIZES[k] for k in ("720p", "1080p", "12MP")}
    table = Table(["model", "image", "path", "first call s", "median s", "MP/s", "PSNR tiles vs whole dB"])
    summary = []
    for label, path in (("fp32", args.model), ("fp16", args.fp16_model)):
        if path is None:
            continue
        t = rows_for(path, label, sizes, repeats, table)
        if t is not None:
            summary.append((f"720p frame on GPU, {label}, fixed tiles", f"{t * 1000:.0f} ms", "-"))
    body = (f"Provider CUDAExecutionProvider, default tiles; median of {repeats} after the first call "
            f"(the first call at a shape includes cuDNN's algorithm search).\n\n" + table.markdown())
    return Report("gpu", title, body, summary)


def parser() -> argparse.ArgumentParser:
    p = base_parser("gpu", __doc__.splitlines()[0])
    p.add_argument("--fp16-model", type=Path, help="an fp16 export with float32 input/output, if there is one")
    return p


def main(argv: list[str] | None = None) -> Report:
    args = parser().parse_args(argv)
    return finish(run(args), args)


if __name__ == "__main__":
    main()
