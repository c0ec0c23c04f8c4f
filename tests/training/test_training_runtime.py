"""One optimiser builder for training and the train-step benchmark: same classes, betas and schedule."""

from __future__ import annotations

import keras
import numpy as np

from bench.train_step import _gan
from training.config import Config
from training.runtime import WarmupCosine, make_optimizers

TINY = ["width=8", "enc_blocks=[1]", "mid_blocks=1", "dec_blocks=[1]", "kernel_sizes=[]", "adv_weight=0"]


def _betas(opt: keras.optimizers.Optimizer) -> tuple[str, float, float]:
    return type(opt).__name__, float(opt.beta_1), float(opt.beta_2)


def test_the_generator_gets_adamw_on_the_phase_schedule_and_the_critic_adam_with_beta1_half() -> None:
    cfg = Config.load(None, [*TINY, "steps=1000", "init_step=200", "warmup_steps=100", "lr=1e-3", "lr_min=1e-5"])
    opts = make_optimizers(cfg)
    assert _betas(opts.generator) == ("AdamW", 0.9, 0.99) and _betas(opts.discriminator) == ("Adam", 0.5, 0.99)
    assert isinstance(opts.schedule, WarmupCosine) and opts.schedule.total == 800  # steps − init_step
    lr = [float(opts.schedule(s)) for s in (0, 99, 100, 800)]
    np.testing.assert_allclose(lr, [1e-5, 1e-3, 1e-3, 1e-5], rtol=1e-4)  # warm-up, peak, cosine to the floor


def test_the_train_step_benchmark_times_the_optimisers_training_uses() -> None:
    cfg = Config.load(None, TINY)
    gan, opts = _gan(cfg, "float32", None), make_optimizers(cfg)
    assert _betas(gan.g_optimizer) == _betas(opts.generator)
    assert _betas(gan.d_optimizer) == _betas(opts.discriminator)
