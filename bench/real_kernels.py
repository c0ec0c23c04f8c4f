"""Real blurred photos through a kernel-aware chain, with the served kernel and with the classical one.

    python -m bench.real_kernels --refiner runs/trust1-corrected2/export/refiner.onnx [--real data/photos/real-blur]
                                 [--out runs/real-kernels]

Real photos have no sharp reference, so no number can rank the estimators on them; the pictures have to be
looked at at 100 %. For each photo it writes NAME.png (input | chain with the model's own estimate | chain
with the classical MAP estimate, bench/map_kernel.py) and NAME-kernels.png (the two kernels, 4× enlarged),
and prints each kernel's extent.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from bench.kernel_estimation import kernel_extent
from bench.map_kernel import MAP_CANVAS, map_kernel
from service.engine import Engine
from service.kernel_aware import estimation_region
from training.data.folders import list_images
from training.evaluate import load_rgb

KERNEL_ZOOM = 4


def kernel_picture(kernel: np.ndarray) -> np.ndarray:
    """A kernel as a grey picture, its peak white, each value a KERNEL_ZOOM² block."""
    return np.kron(kernel / max(float(kernel.max()), 1e-12), np.ones((KERNEL_ZOOM, KERNEL_ZOOM)))


def save(picture: np.ndarray, path: Path) -> None:
    Image.fromarray((np.clip(picture, 0, 1) * 255).round().astype(np.uint8)).save(path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.real_kernels", description=__doc__.splitlines()[0])
    p.add_argument("--refiner", type=Path, required=True, help="a kernel-aware model (its guide and corrector "
                   "make its own estimate)")
    p.add_argument("--real", type=Path, default=Path("data/photos/real-blur"), help="folder of real blurred photos")
    p.add_argument("--out", type=Path, default=Path("runs/real-kernels"))
    p.add_argument("--max-side", type=int, default=1024, help="photos are downscaled to at most this side")
    args = p.parse_args(argv)
    chain = Engine(args.refiner, providers=("cpu",), threads=1)
    if chain.guide is None:
        p.error(f"{args.refiner} is not a kernel-aware model (no hint guide in its metadata)")
    args.out.mkdir(parents=True, exist_ok=True)
    for path in list_images([str(args.real)]):
        blurred = load_rgb(path, args.max_side)
        window = estimation_region(blurred)
        own = chain.kernel_of(blurred[window], chain.guide.deblur(blurred[window]).image)
        classical = map_kernel(blurred[window], MAP_CANVAS)
        outputs = [chain.deblur(blurred, kernel_of=lambda _r, _g, k=k: k).image for k in (own, classical)]
        save(np.concatenate([blurred, *outputs], 1), args.out / f"{path.stem}.png")
        pictures = [kernel_picture(k) for k in (own, classical)]
        height = max(k.shape[0] for k in pictures)
        own_picture, classical_picture = (np.pad(k, ((0, height - k.shape[0]), (0, 0))) for k in pictures)
        save(np.concatenate([own_picture, np.ones((height, 8)), classical_picture], 1),
             args.out / f"{path.stem}-kernels.png")
        print(f"{path.name}: own estimate spans {kernel_extent(own)} px, classical {kernel_extent(classical)} px",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
