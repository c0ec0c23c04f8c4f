"""Exact-resume checkpoints: models, optimizers and the step, in one file (the GAN: 2 models, 2 optimizers).

The file is written beside its final name and renamed into place, so a `kill -9` at any moment
leaves either the previous checkpoint or the new one, never half of one. The data stream is
addressed by step (see pipeline.py), so weights + optimizer state + step are the whole state of a
default run; stochastic layers (WGAN-GP's interpolation, the ResNet's dropout) are reseeded from
the step on resume.
"""

from __future__ import annotations

import os
from pathlib import Path

import keras
import numpy as np


def _variables(obj) -> list:
    return list(obj.variables)


def gan_parts(generator: keras.Model, discriminator: keras.Model, g_opt: keras.optimizers.Optimizer,
              d_opt: keras.optimizers.Optimizer) -> dict:
    """The GAN's state under the prefixes every GAN checkpoint has used."""
    return {"g": generator, "d": discriminator, "gopt": g_opt, "dopt": d_opt}


def save(path: Path, step: int, phase_start: int, parts: dict) -> None:
    """Write every variable of `parts` (prefix -> model or optimizer) and the step counters."""
    arrays = {"step": np.int64(step), "phase_start": np.int64(phase_start)}
    for prefix, obj in parts.items():
        for i, v in enumerate(_variables(obj)):
            arrays[f"{prefix}/{i:04d}"] = np.asarray(v)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def restore(path: Path, parts: dict) -> tuple[int, int]:
    """Load a checkpoint into built models and optimizers (prefix -> object); returns (step, phase_start)."""
    with np.load(path) as data:
        for prefix, obj in parts.items():
            variables = _variables(obj)
            stored = sorted(k for k in data.files if k.startswith(prefix + "/"))
            if len(stored) != len(variables):
                raise ValueError(f"checkpoint {path} does not match this model/config "
                                 f"({prefix}: {len(stored)} arrays stored, {len(variables)} expected)")
            for key, v in zip(stored, variables, strict=True):
                if tuple(data[key].shape) != tuple(v.shape):
                    raise ValueError(f"checkpoint {path}: {v.path} has shape {data[key].shape}, expected {v.shape}")
                v.assign(data[key])
        return int(data["step"]), int(data["phase_start"])
