"""Non-blind deconvolution: Wiener weight × boundary iterations on the own protocol, and the 720p cost.

    python -m bench.deconvolution [--limit 14] [--markdown]

Quality: aligned PSNR gain (training/scoring.py) of `service.deconvolution.wiener` handed the true kernel,
on the own protocol's 512² crops (bench.kernel_estimation's cases), for each weight and number of boundary
iterations. This sweep chose the defaults; it never runs on the independent protocol. Cost: seconds for
one 720p RGB frame with a 31 px kernel at each iteration count (median of --repeats, this machine;
--quick: a 256x192 frame, one run).
"""

from __future__ import annotations

import numpy as np

from bench.common import SIZES, Report, Table, base_parser, finish, measure, synthetic_photo
from bench.kernel_estimation import own_cases
from service.deconvolution import wiener
from training.scoring import aligned_psnr

WEIGHTS = (0.01, 0.03, 0.1)
ITERATIONS = (0, 3, 8)


def main(argv: list[str] | None = None) -> int:
    p = base_parser("deconvolution", __doc__.splitlines()[0])
    p.add_argument("--photos", default="data/photos/train", help="own protocol: held-out photos of this folder")
    p.add_argument("--limit", type=int, default=14, help="at most N photos (0 = all 37)")
    args = p.parse_args(argv)
    gains = {(w, i): [] for w in WEIGHTS for i in ITERATIONS}
    cases = 0
    for _, blurred, sharp, _, kernel in own_cases(args.photos, args.limit):
        base = aligned_psnr(blurred, sharp)[0]
        cases += 1
        for w, i in gains:
            gains[(w, i)].append(aligned_psnr(wiener(blurred, kernel, w, i), sharp)[0] - base)
    quality = Table(["weight", *(f"{i} boundary iterations" for i in ITERATIONS)])
    for w in WEIGHTS:
        quality.add(w, *(float(np.mean(gains[(w, i)])) for i in ITERATIONS))
    size = (192, 256) if args.quick else SIZES["720p"]
    frame = synthetic_photo(*size)
    kernel = np.full((31, 31), 1 / 961, np.float32)
    cost = Table(["boundary iterations", f"s per {size[1]}x{size[0]} frame", "min–max"])
    for i in ITERATIONS:
        t = measure(lambda i=i: wiener(frame, kernel, 0.03, i), 1 if args.quick else args.repeats)
        cost.add(i, t.median, t.spread)
    body = (f"Aligned gain (dB) with the true kernel, {cases} own-protocol crops:\n\n{quality.markdown()}\n\n"
            f"Cost (one process, numpy FFT):\n\n{cost.markdown()}")
    finish(Report("deconvolution", "Non-blind deconvolution: weight, boundary iterations, cost", body), args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
