"""How far a trained generator actually looks: its effective receptive field, measured by gradients.

    python -m training.receptive_field --config models/train-config.json --weights models/generator.weights.h5

Deblurring a 31 px streak needs context at least that far from each pixel. The theoretical receptive
field of a U-Net says little (a block whose residual scale stayed near zero adds nothing), so this
measures the share of |∂ output(centre) / ∂ input| that lies beyond each distance, averaged over a few
sharp photos blurred by the validation protocol, and prints each level's mean LayerScale.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from training.config import Config
from training.nets import build_generator

RADII = (4, 8, 16, 24, 32, 48, 64, 96)


def mass_beyond(generator: keras.Model, images: np.ndarray, radii: tuple[int, ...] = RADII) -> dict[int, float]:
    """Share of the centre pixel's input-gradient mass farther than r (Chebyshev distance) for each r."""
    x = tf.constant(images)
    size = images.shape[1]
    c = size // 2
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = generator(x, training=False)
        centre = tf.reduce_sum(y[:, c, c, :] - x[:, c, c, :])  # the correction, not the identity skip
    grad = np.abs(tape.gradient(centre, x).numpy()).sum(axis=(0, 3))
    yy, xx = np.mgrid[:size, :size]
    dist = np.maximum(np.abs(yy - c), np.abs(xx - c))
    total = grad.sum() or 1.0
    return {r: float(grad[dist > r].sum() / total) for r in radii}


def layer_scales(generator: keras.Model) -> dict[str, float]:
    """Mean |LayerScale| of the spatial branch (beta) per level: near zero means the level is unused."""
    levels: dict[str, list[float]] = {}
    for layer in generator.layers:
        if layer.name.endswith("_beta"):
            levels.setdefault(layer.name.split("_")[0], []).append(float(np.abs(layer.get_weights()[0]).mean()))
    return {level: float(np.mean(v)) for level, v in levels.items()}


def protocol_crops(photos: str, size: int, count: int, val_fraction: float, seed: int = 7) -> np.ndarray:
    """`count` centre crops of held-out photos, blurred by the fixed protocol."""
    from training.data.folders import is_validation, list_images, load_photos
    from training.data.protocol import protocol_pair

    files = [p for p in list_images([photos]) if is_validation(p, val_fraction)][:count]
    images, kept, _ = load_photos(files, size + 64)  # too-small photos are skipped: pair names with what was kept
    crops = []
    for path, photo in zip(kept, images, strict=True):
        blurred, _, _, _ = protocol_pair(photo.astype(np.float32) / 255, path.name, seed)
        h, w = blurred.shape[:2]
        crops.append(blurred[(h - size) // 2:(h + size) // 2, (w - size) // 2:(w + size) // 2])
    if not crops:
        raise ValueError(f"no held-out photos of at least {size + 64} px under {photos}")
    return np.stack(crops)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Measure a generator's effective receptive field.")
    parser.add_argument("--config", type=Path, default=Path("models/train-config.json"))
    parser.add_argument("--weights", type=Path, default=Path("models/generator.weights.h5"))
    parser.add_argument("--photos", default="data/photos/train")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--images", type=int, default=8)
    args = parser.parse_args(argv)
    try:
        cfg = Config.load(args.config)
        generator = build_generator(cfg)
        generator.load_weights(args.weights)
        images = protocol_crops(args.photos, args.size, args.images, cfg.val_fraction)
    except (ValueError, OSError) as exc:
        print(f"receptive_field: {exc}", file=sys.stderr)
        return 2
    beyond = mass_beyond(generator, images)
    print("| distance r (px) | " + " | ".join(str(r) for r in beyond) + " |")
    print("|---|" + "---|" * len(beyond))
    print("| gradient mass beyond r | " + " | ".join(f"{v:.1%}" for v in beyond.values()) + " |")
    print("\nmean |LayerScale| of the spatial branch per level: "
          + ", ".join(f"{k} {v:.3f}" for k, v in layer_scales(generator).items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
