"""How a run executes, apart from what it learns: the learning-rate schedule, the dtype policy and the
optimisers (the device strategy is `distribute.strategy_for_devices`).

Why one module: deblur-train, deblur-train-estimator, the train-step benchmark and the tests build the same
optimisers from the same config fields, so a benchmark times the update that training really runs.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import keras

from training.config import CHOICES, Config

log = logging.getLogger("deblur-train")
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")  # x86 (AVX-512, AMX) and Arm names in /proc/cpuinfo


@keras.saving.register_keras_serializable("deblur")
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up then cosine decay to `floor` over the phase (iterations count from the phase start)."""

    def __init__(self, peak: float, floor: float, warmup: int, total: int) -> None:
        self.peak, self.floor, self.warmup, self.total = peak, floor, warmup, max(total, 1)

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        warm = self.peak * (step + 1) / max(self.warmup, 1)
        progress = keras.ops.clip((step - self.warmup) / max(self.total - self.warmup, 1), 0.0, 1.0)
        cosine = self.floor + 0.5 * (self.peak - self.floor) * (1 + keras.ops.cos(math.pi * progress))
        return keras.ops.where(step < self.warmup, warm, cosine)

    def get_config(self) -> dict:
        return {"peak": self.peak, "floor": self.floor, "warmup": self.warmup, "total": self.total}


PRECISIONS = CHOICES["precision"]


@contextlib.contextmanager
def precision_policy(precision: str) -> Iterator[None]:
    """Keras' global dtype policy for one block only (it is process-wide state), then the previous one."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    if precision == "mixed_bfloat16" and cpu_lacks_bfloat16() and not _accelerated():
        log.warning("precision mixed_bfloat16 on a CPU without native bfloat16 (none of %s in /proc/cpuinfo): "
                    "its products are emulated, about 5x slower per step than float32 on an AVX2 EPYC "
                    "(docs/training.md); set precision=float32", ", ".join(BF16_CPU_FLAGS))
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(precision)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def cpu_lacks_bfloat16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """True where the CPU's flags are known and name no bfloat16 instructions (False where unknown)."""
    try:
        flags = {word for line in cpuinfo.read_text().splitlines()
                 if line.startswith(("flags", "Features")) for word in line.split(":", 1)[1].split()}
    except OSError:
        return False
    return bool(flags) and not flags & set(BF16_CPU_FLAGS)


def _accelerated() -> bool:
    """Whether Keras' backend trains on an accelerator (where bfloat16 is native)."""
    if keras.backend.backend() == "jax":
        import jax
        return jax.default_backend() != "cpu"
    import tensorflow as tf
    return bool(tf.config.list_physical_devices("GPU"))


@dataclass
class Optimizers:
    generator: keras.optimizers.Optimizer
    discriminator: keras.optimizers.Optimizer
    schedule: WarmupCosine  # the generator's; a resumed phase sets its `total` from the checkpoint


def make_optimizers(cfg: Config) -> Optimizers:
    """AdamW on the warm-up cosine schedule for the generator (phase length: steps − init_step), Adam with
    β1 = 0.5 at a constant `disc_lr` for the discriminator (the usual GAN critic setting)."""
    schedule = WarmupCosine(cfg.lr, cfg.lr_min, cfg.warmup_steps, cfg.steps - cfg.init_step)
    return Optimizers(
        keras.optimizers.AdamW(schedule, weight_decay=cfg.weight_decay, beta_2=0.99),
        keras.optimizers.Adam(cfg.disc_lr, beta_1=0.5, beta_2=0.99),
        schedule,
    )
