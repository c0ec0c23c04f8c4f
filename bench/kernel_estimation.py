"""Kernel-estimation benchmark (issue 15): every estimator scored the same way on both protocols.

    python -m bench.kernel_estimation [--guide runs/estimator1/guide.onnx] [--corrector models/corrector2.onnx ...]
                                      [--spectral] [--map] [--refiner runs/hinted1-18000/export/refiner.onnx]
                                      [--limit N] [--ceiling] [--markdown]
    python -m bench.kernel_estimation --tune [--limit 16]   # how support_kernel's defaults were chosen
    python -m bench.kernel_estimation --tune-map [--limit 6]   # how map_kernel's defaults were chosen

For each case (own protocol: the training generator's kernels on a 512² crop of each held-out photo;
independent protocol: training/data/independent.py) and each estimator it reports
- kernel L1 to the true kernel, both centred on their centroids (0 = perfect, 2 = disjoint);
- aligned PSNR gain (±6 px, training/scoring.py) of the same Wiener deconvolution
  (service/deconvolution.py, fixed weight) run with the estimate, beside the same run with the true kernel;
- seconds per megapixel of the estimation alone (median over the cases, this machine);
- with `--refiner` (a kernel-aware model), the aligned gain of that model's whole chain with its hint made
  from each estimate instead of its own (the estimate comes from the whole crop, not the chain's region):
  the bake-off's "same deconvolution and refinement" for every estimator.
Estimators: the true kernel (the ceiling), a 9×9 box (what "always guess the mean" earns), the shipped
generator's output as guide with Cho & Lee's top-10 % gradient selection (the Fourier closed form, and
the support-constrained non-negative least squares the service uses), a trained guide network, a
trained corrector of the service's estimate (service/kernel_correction.py), the spectral estimate with
phase retrieval (bench/spectral_kernel.py) and the classical coarse-to-fine MAP estimate
(bench/map_kernel.py).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from bench.common import Report, Table, base_parser, finish
from bench.map_kernel import MAP_CANVAS, map_kernel
from bench.spectral_kernel import spectral_kernel
from service.deconvolution import DEFAULT_WEIGHT, wiener
from service.engine import Engine
from service.kernel_aware import HINT_CANVAS
from service.kernel_correction import KernelCorrector
from service.kernel_estimation import (
    EDGE_FRACTION,
    centre_on_centroid,
    clean_kernel,
    least_squares_kernel,
    support_kernel,
)
from training.config import Config
from training.data.folders import is_validation, list_images
from training.data.independent import CROP, independent_cases
from training.data.kernels import line_kernel, shake_kernel
from training.data.protocol import blurred_pair, protocol_pair
from training.evaluate import independent_photos, load_rgb
from training.scoring import aligned_psnr

CANVAS = HINT_CANVAS  # the service's estimate support, so the benchmark scores what the chain runs
WIENER_WEIGHT = DEFAULT_WEIGHT
Estimator = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (blurred, true kernel) -> kernel
HYBRID_EXTENT = 40  # px; chosen on training-split crops (own kernels and long blur), docs/kernel-aware.md


def centre_crop(path: Path) -> np.ndarray:
    """The photo's central CROP² square (what every case of this benchmark is cut from)."""
    photo = load_rgb(path, 1024)
    h, w = photo.shape[:2]
    y, x = max(0, (h - CROP) // 2), max(0, (w - CROP) // 2)
    return photo[y:y + CROP, x:x + CROP]


def training_photos(photos: str) -> list[Path]:
    return [p for p in list_images([photos]) if not is_validation(p, Config.val_fraction)]


def own_cases(photos: str, limit: int, training_split: bool = False
              ) -> Iterator[tuple[str, np.ndarray, np.ndarray, str, np.ndarray]]:
    """The own protocol's held-out photos, or (`training_split`) photos of the training split, evenly
    spaced through it, with kernels of their own seed: what settings may be tuned on."""
    if training_split:
        pool = training_photos(photos)
        files = pool[::max(1, len(pool) // (limit or len(pool)))][:limit or None]
    else:
        files = [p for p in list_images([photos]) if is_validation(p, Config.val_fraction)][:limit or None]
    for path in files:
        seed_name = f"tune-{path.name}" if training_split else path.name
        yield (path.name, *protocol_pair(centre_crop(path), seed_name))


def long_blur_cases(photos: str, limit: int, seed: int = 7
                    ) -> Iterator[tuple[str, np.ndarray, np.ndarray, str, np.ndarray]]:
    """Training-split photos blurred by the training generator's shake and streaks at 25–57 px, longer
    than the own protocol's: where a guide-free estimator has to prove itself, still tunable on."""
    pool = training_photos(photos)
    rng = np.random.default_rng(seed)
    for i, path in enumerate(pool[min(5, len(pool) - 1)::max(1, len(pool) // limit)][:limit]):
        sharp = centre_crop(path)
        extent = rng.uniform(25, 57)
        family, kernel = ("shake", shake_kernel(rng, extent)) if i % 2 == 0 else ("streak", line_kernel(rng, extent))
        yield (path.name, *blurred_pair(sharp, kernel, rng), family, kernel)


def kernel_l1(estimate: np.ndarray, truth: np.ndarray) -> float:
    size = max(estimate.shape[0], truth.shape[0]) + 8
    return float(np.abs(centre_on_centroid(estimate, size) - centre_on_centroid(truth, size)).sum())


class LastImage:
    """`function`'s answer for the last image asked: a sweep asks the guide once per setting, and the
    hybrid row reuses the classical row's kernel. Holding the array keeps its identity from being reused."""

    def __init__(self, function: Callable[..., np.ndarray]) -> None:
        self.function, self.blurred, self.answer = function, None, None

    def __call__(self, blurred: np.ndarray, *rest: np.ndarray) -> np.ndarray:
        if blurred is not self.blurred:
            self.blurred, self.answer = blurred, self.function(blurred, *rest)
        return self.answer


GuideOf = Callable[[np.ndarray], np.ndarray]  # blurred photo -> a guide network's output for it


def kernel_extent(kernel: np.ndarray) -> int:
    """The longer side (px) of the box holding the kernel's values above 2 % of its peak."""
    rows, cols = np.nonzero(kernel > 0.02 * kernel.max())
    return int(max(np.ptp(rows), np.ptp(cols))) + 1


def hybrid(classical: Estimator, fallback: Estimator) -> Estimator:
    """The classical estimate where it finds long blur (≥ HYBRID_EXTENT), which a guide network trained on
    shorter blur cannot see, else `fallback`'s."""
    def estimate(blurred: np.ndarray, truth: np.ndarray) -> np.ndarray:
        kernel = classical(blurred, truth)
        return kernel if kernel_extent(kernel) >= HYBRID_EXTENT else fallback(blurred, truth)
    return estimate


def guided(guide: GuideOf, edge_fraction: float, solver=least_squares_kernel) -> Estimator:
    def estimate(blurred: np.ndarray, _truth: np.ndarray) -> np.ndarray:
        return clean_kernel(solver(blurred, guide(blurred), CANVAS, edge_fraction))
    return estimate


def corrected(guide: GuideOf, corrector: KernelCorrector) -> Estimator:
    def estimate(blurred: np.ndarray, _truth: np.ndarray) -> np.ndarray:
        return corrector(blurred, guide(blurred))
    return estimate


def spectral(guide: GuideOf) -> Estimator:
    def estimate(blurred: np.ndarray, _truth: np.ndarray) -> np.ndarray:
        return spectral_kernel(blurred, guide(blurred), CANVAS)
    return estimate


def map_tuning_grid() -> dict[str, Estimator]:
    """map_kernel at every (L0 weight, edge fraction) of its sweep."""
    return {f"MAP, L0 weight {weight:g}, top {fraction:.0%} edges":
            functools.partial(lambda b, _k, w, f: map_kernel(b, MAP_CANVAS, w, f), w=weight, f=fraction)
            for weight in (3e-4, 1e-3, 3e-3) for fraction in (0.05, 0.2)}


def tuning_grid(model: Path) -> dict[str, Estimator]:
    """support_kernel with the shipped guide at every (edge fraction, ridge) of the sweep."""
    guide = LastImage(Engine(model, providers=("cpu",), threads=1).deblurred)
    return {f"support, top {fraction:.0%} edges, ridge {ridge:g}":
            guided(guide, fraction, functools.partial(support_kernel, ridge=ridge))
            for fraction in (0.03, 0.1, 0.3) for ridge in (0.1, 0.3, 1.0, 3.0)}


def estimators(model: Path, guide: Path | None, correctors: Sequence[Path] = (),
               with_spectral: bool = False, with_map: bool = False) -> dict[str, Estimator]:
    shipped = Engine(model, providers=("cpu",), threads=1).deblurred
    found: dict[str, Estimator] = {
        "true kernel (ceiling)": lambda b, k: k,
        "9x9 box (mean guess)": lambda b, k: np.full((9, 9), 1 / 81),
        f"shipped model as guide, top {EDGE_FRACTION:.0%} edges, Fourier": guided(shipped, EDGE_FRACTION),
        f"shipped model as guide, top {EDGE_FRACTION:.0%} edges, on the support (service)":
            guided(shipped, EDGE_FRACTION, support_kernel),
    }
    if guide:
        learned = Engine(guide, providers=("cpu",), threads=1).deblurred
        found[f"learned guide ({guide.parent.name})"] = guided(learned, EDGE_FRACTION)
    corrected_rows = [corrected(shipped, KernelCorrector(path, guide=shipped)) for path in correctors]
    for path, estimate in zip(correctors, corrected_rows, strict=True):
        found[f"learned corrector ({path.parent.name}/{path.stem}) of the service's estimate"] = estimate
    if with_spectral:
        found["spectral + phase retrieval, 180° by the shipped model"] = spectral(shipped)
    if with_map:
        classical = LastImage(lambda blurred, _truth: map_kernel(blurred, MAP_CANVAS))
        found[f"classical coarse-to-fine MAP, L0 prior ({MAP_CANVAS} px canvas)"] = classical
        if corrected_rows:
            found[f"hybrid: the MAP estimate where it spans ≥ {HYBRID_EXTENT} px, else the corrector's "
                  "(time: the corrector's only, the MAP row's is cached)"] = hybrid(classical, corrected_rows[0])
    return found


def chain_gain(refiner: Engine, blurred: np.ndarray, sharp: np.ndarray, kernel: np.ndarray, base: float) -> float:
    restored = refiner.deblur(blurred, kernel_of=lambda _region, _guide: kernel).image
    return aligned_psnr(restored, sharp)[0] - base


def score(cases, methods: dict[str, Estimator], refiner: Engine | None = None) -> dict[str, dict[str, list[float]]]:
    results = {name: {"l1": [], "gain": [], "true_gain": [], "s_per_mp": [], "chain": [], "true_chain": []}
               for name in methods}
    for case, blurred, sharp, family, kernel in cases:
        base = aligned_psnr(blurred, sharp)[0]
        true_gain = aligned_psnr(wiener(blurred, kernel, WIENER_WEIGHT), sharp)[0] - base
        true_chain = chain_gain(refiner, blurred, sharp, kernel, base) if refiner else float("nan")
        line = []
        for name, method in methods.items():
            start = time.perf_counter()
            estimate = method(blurred, kernel)
            seconds = time.perf_counter() - start
            r = results[name]
            r["l1"].append(kernel_l1(estimate, kernel))
            r["gain"].append(aligned_psnr(wiener(blurred, estimate, WIENER_WEIGHT), sharp)[0] - base)
            r["true_gain"].append(true_gain)
            r["s_per_mp"].append(seconds / (blurred.shape[0] * blurred.shape[1] / 1e6))
            r["chain"].append(chain_gain(refiner, blurred, sharp, estimate, base) if refiner else float("nan"))
            r["true_chain"].append(true_chain)
            line.append(f"{r['l1'][-1]:.2f}/{r['gain'][-1]:+.2f}" + (f"/{r['chain'][-1]:+.2f}" if refiner else ""))
        print(f"{case[:36]:36s} {family:8s} {kernel.shape[0]:3d}px  " + "  ".join(line), flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    p = base_parser("kernel_estimation", __doc__.splitlines()[0])
    p.add_argument("--guide", type=Path, help="a trained guide network (ONNX, e.g. a deblur-export of a "
                   "deblur-train-estimator run)")
    p.add_argument("--corrector", type=Path, nargs="+", default=[], help="trained kernel correctors (ONNX, from "
                   "deblur-train-corrector), a row each; the first is the hybrid's fallback")
    p.add_argument("--spectral", action="store_true", help="also score the spectral estimate (Goldstein & Fattal "
                   "style, bench/spectral_kernel.py)")
    p.add_argument("--map", action="store_true", help="also score the classical coarse-to-fine MAP estimate "
                   "(L0 prior, bench/map_kernel.py)")
    p.add_argument("--refiner", type=Path, help="a kernel-aware model: also score its chain fed each estimate")
    p.add_argument("--photos", default="data/photos/train", help="own protocol: held-out photos of this folder")
    p.add_argument("--independent", default="data/photos/independent", help="the independent protocol's photos")
    p.add_argument("--limit", type=int, default=0, help="at most N photos per protocol (0 = all)")
    p.add_argument("--tune", action="store_true", help="sweep support_kernel's edge fraction and ridge on photos "
                   "of the training split instead (never on a validation protocol)")
    p.add_argument("--ceiling", action="store_true", help="score only the true kernel: with --refiner, what that "
                   "refiner makes of a right kernel")
    p.add_argument("--tune-map", action="store_true", help="sweep the MAP estimate's L0 weight and edge fraction "
                   "on training-split photos, with own-protocol kernels and with long blur")
    args = p.parse_args(argv)
    if args.tune:
        methods = tuning_grid(args.model)
        protocols = {"training split": own_cases(args.photos, args.limit or 16, training_split=True)}
    elif args.tune_map:
        methods = map_tuning_grid()
        protocols = {"training split": own_cases(args.photos, args.limit or 6, training_split=True),
                     "training split, long blur": long_blur_cases(args.photos, 2 * (args.limit or 6))}
    else:
        methods = ({"true kernel (ceiling)": lambda _blurred, truth: truth} if args.ceiling else
                   estimators(args.model, args.guide, args.corrector, args.spectral, args.map))
        protocols = {"own": own_cases(args.photos, args.limit),
                     "independent": independent_cases(independent_photos(args.independent, limit=args.limit))}
    refiner = Engine(args.refiner, providers=("cpu",), threads=1) if args.refiner else None
    chain_columns = ["chain gain, estimate (aligned dB)", "chain gain, true kernel", "chain worse than input"]
    table = Table(["protocol", "estimator", "cases", "kernel L1", "Wiener gain, estimate (aligned dB)",
                   "Wiener gain, true kernel", "worse than input", "estimation s/MP",
                   *(chain_columns if refiner else [])])
    for protocol, cases in protocols.items():
        for name, r in score(cases, methods, refiner).items():
            chain = [float(np.mean(r["chain"])), float(np.mean(r["true_chain"])),
                     int(np.sum(np.array(r["chain"]) < 0))] if refiner else []
            table.add(protocol, name, len(r["l1"]), float(np.mean(r["l1"])), float(np.mean(r["gain"])),
                      float(np.mean(r["true_gain"])), int(np.sum(np.array(r["gain"]) < 0)),
                      float(np.median(r["s_per_mp"])), *chain)
    body = (f"Wiener weight {WIENER_WEIGHT} (gradient prior, linear light), canvas {CANVAS} px, one thread"
            + (f"; chain: {args.refiner}" if refiner else "") + f".\n\n{table.markdown()}")
    report = (Report("kernel_estimation_tune", "Kernel estimation: choosing support_kernel's settings on training "
                     "photos", body) if args.tune else
              Report("kernel_estimation_tune_map", "Kernel estimation: choosing the MAP estimate's settings on "
                     "training photos", body) if args.tune_map else
              Report("kernel_estimation", "Kernel estimation: every estimator, both protocols", body))
    finish(report, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
