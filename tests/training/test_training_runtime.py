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


def test_bfloat16_on_a_cpu_without_it_is_named_in_a_warning(tmp_path, monkeypatch, caplog) -> None:
    from training import runtime
    cpuinfo = tmp_path / "cpuinfo"
    for text, lacks in (("flags\t\t: fpu sse4_2 avx avx2 fma\n", True),
                        ("flags\t\t: fpu avx2 avx512f avx512_bf16 avx512_vnni\n", False),
                        ("Features\t: fp asimd bf16 i8mm\n", False),
                        ("processor\t: 0\n", False)):  # no flags line: unknown, so no warning
        cpuinfo.write_text(text * 2)
        assert runtime.cpu_lacks_bfloat16(cpuinfo) is lacks
    assert runtime.cpu_lacks_bfloat16(tmp_path / "absent") is False
    monkeypatch.setattr(runtime, "cpu_lacks_bfloat16", lambda: True)
    monkeypatch.setattr(runtime, "_accelerated", lambda: False)
    with caplog.at_level("WARNING", "deblur-train"), runtime.precision_policy("mixed_bfloat16"):
        assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
    assert "precision=float32" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", "deblur-train"), runtime.precision_policy("float32"):
        pass
    monkeypatch.setattr(runtime, "_accelerated", lambda: True)  # a GPU has it natively
    with caplog.at_level("WARNING", "deblur-train"), runtime.precision_policy("mixed_bfloat16"):
        pass
    assert not caplog.text
