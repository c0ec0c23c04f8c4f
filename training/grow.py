"""`python -m training.grow`: a trained generator's weights, grown into larger depthwise kernels (same output).

    python -m training.grow --from-config models/train-config.json \\
        --weights models/generator.weights.h5 --to-config models/train-config-phase3.json --out grown.weights.h5

The growing itself is `training.nets.grow.grow_weights`; this module holds the command line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from training.config import Config
from training.nets import build_generator
from training.nets.grow import grow_weights


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Grow a trained generator's depthwise kernels (same output).")
    parser.add_argument("--from-config", type=Path, required=True, help="config the weights were trained with")
    parser.add_argument("--weights", type=Path, required=True)
    parser.add_argument("--to-config", type=Path, required=True, help="config with the larger kernel_sizes")
    parser.add_argument("--out", type=Path, required=True, help="where to write the grown .weights.h5")
    args = parser.parse_args(argv)
    try:
        source = build_generator(Config.load(args.from_config))
        source.load_weights(args.weights)
        target = build_generator(Config.load(args.to_config))
        grow_weights(source, target)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        target.save_weights(args.out)
    except (ValueError, OSError) as exc:
        print(f"grow: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
