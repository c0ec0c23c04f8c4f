"""One dataclass holds every hyperparameter; a JSON file and `--set key=value` override it."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from service.kernel_aware import CORRECTED_HINTS, HINT_NAMES, LINE_HINT_NAME
from training.data.kernels import DEFAULT_KERNEL_WEIGHTS, check_kernel_weights
from training.data.realism import Realism

# the fields that name one of a few implementations; checked when a config loads, not steps into a run
CHOICES = {
    "generator": ("nafunet", "resnet"),
    "discriminator": ("patchgan", "multiscale"),
    "adversarial": ("ralsgan", "wgan-gp"),
    "precision": ("float32", "mixed_bfloat16"),
    "hint": ("", *HINT_NAMES),  # "" = a plain net; else the service's hint the net reads beside the photo
    "estimator_solve": ("fourier", "support"),  # training/kernel_estimator.py: estimator_parts
    "estimator_loss": ("l1", "wiener"),
    "estimator_net": ("guide", "selector"),  # what deblur-train-estimator trains (training/edge_selector.py)
}
PROBABILITIES = ("saturation_prob", "tone_curve_prob", "nonuniform_blur_prob", "offcentre_prob", "hint_true_share",
                 "hint_wrong_share", "hint_wrong_scaled", "hint_line_true_share",
                 "hint_line_true_when_wrong")


@dataclass
class Config:
    # data
    photos: str = "data/photos/train"          # folder(s) of sharp photos (synthetic blur), comma-separated
    paired: str = ""                            # GoPro root or a folder with blur/ and sharp/ (overrides photos)
    val_fraction: float = 0.12                  # share of photos (by file) held out for validation
    val_images: int = 24                        # validation crops scored every `val_every` steps
    val_crop: int = 256
    crop: int = 128
    batch: int = 8
    scale_range: tuple[float, float] = (0.5, 1.0)  # random downscale before cropping (eval runs at 1×)
    max_blur: float = 41.0                      # largest kernel extent (px)
    max_motion: float = 0.0                     # training samples' largest shake/streak extent (px); 0 = min(35,
                                                # max_blur), what validation crops always use (comparable runs)
    kernel_weights: tuple[float, ...] = DEFAULT_KERNEL_WEIGHTS  # shake, line, defocus, blob, gaussian, curve
    max_noise: float = 0.02
    jpeg_prob: float = 0.25
    # realism steps (training/data/realism.py, docs/training.md#blur-synthesis): each fires per training
    # sample with its probability; all 0 = the plain synthesis, bit for bit. Validation crops never use them.
    saturation_prob: float = 0.0                # highlights ×1.5–4 in linear light, clipped after the blur: streaks
    tone_curve_prob: float = 0.0                # a random S-shaped camera response, not gamma 2.2 (both images)
    nonuniform_blur_prob: float = 0.0           # the kernel blended along a ramp with a copy turned ±8°, ×0.9–1.1
    offcentre_prob: float = 0.0                 # kernel centroid off the canvas centre: the blurred image shifts
    offcentre_max_shift: int = 0                # its largest shift per axis (whole px); ≥ 1 when offcentre_prob > 0
    seed: int = 1234
    # model
    generator: str = "nafunet"                  # nafunet (compact default) | resnet (DeblurGAN)
    width: int = 24
    enc_blocks: tuple[int, ...] = (1, 1, 2)
    mid_blocks: int = 4
    dec_blocks: tuple[int, ...] = (1, 1, 1)
    kernel_sizes: tuple[int, ...] = ()          # nafunet depthwise kernel per level + middle; () = all 3
    discriminator: str = "patchgan"             # patchgan | multiscale
    hint: str = ""                              # "" | wiener: the refiner's extra input (docs/kernel-aware.md)
    hint_guide: str = "models/deblur-generator.onnx"  # the ONNX model whose output guides the hint's kernel estimate
    hint_corrector: str = ""                    # wiener-corrected: the kernel corrector (deblur-train-corrector's ONNX)
    hint_true_share: float = 0.0                # share of training samples whose hint uses the TRUE kernel (synthetic
                                                # data only; validation and serving always use the estimate)
    hint_wrong_share: float = 0.0               # share whose hint uses the true kernel TURNED by 30-330 degrees: a
                                                # plausible wrong kernel: the refiner learns to fall back on the photo
    hint_wrong_scaled: float = 0.0              # share of those wrong hints whose true kernel is SCALED x0.3-0.7 or
                                                # x1.3-1.8 instead of turned: the right direction, the wrong length
    hint_line_true_share: float = 0.0           # hint wiener-corrected+line: share whose LINE hint uses the true kernel
    hint_line_true_when_wrong: float = 0.0      # the same share among the samples whose FIRST hint is wrong (where
                                                # only the line hint can win); 0: hint_line_true_share there too
    hint_context: int = 0                       # hint wiener-corrected+line: side of the training sample its streak
                                                # is estimated on, as the service does on a 480² region of the whole
                                                # photo; the crop is cut from it afterwards (0: the crop itself)
    kernel_canvas: int = 45                     # kernel estimator's square canvas (px, odd; holds max_blur + 2)
    guide_content_weight: float = 10.0          # kernel estimator: Charbonnier of the guide vs sharp, beside the kernel
    guide_gradient_weight: float = 0.0          # kernel estimator: Charbonnier of the guide's gradients vs sharp's
    estimator_solve: str = "fourier"            # kernel estimator: the kernel fit it trains through (fourier | support)
    estimator_loss: str = "l1"                  # kernel estimator: l1 (+ |sum - 1|) | wiener (the corrector's loss)
    estimator_net: str = "guide"                # kernel estimator: guide (the net draws the edges) | selector
                                                # (init_weights' guide frozen; a net weighs its edges for the fit)
    selector_width: int = 16                    # kernel estimator: the edge selector's channels
    disc_width: int = 32
    # losses
    adversarial: str = "ralsgan"                # ralsgan (DeblurGAN-v2) | wgan-gp (DeblurGAN)
    adv_weight: float = 0.0                     # 0 = content-only (warm-up phase)
    gp_weight: float = 10.0
    fft_weight: float = 0.05                    # frequency-domain L1 term (sharp edges, MIMO-UNet)
    ssim_weight: float = 0.0
    perceptual_weights: str = ""                # optional VGG19 .h5/.weights.h5 file (never downloaded)
    perceptual_weight: float = 0.0
    # optimisation
    steps: int = 2000                           # total steps of this run (cumulative, resume-aware)
    lr: float = 1e-3
    lr_min: float = 1e-5
    warmup_steps: int = 200
    disc_lr: float = 2e-4
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    precision: str = "float32"                  # float32 | mixed_bfloat16 (1.35× per 256² step here: bench.train_step)
    # bookkeeping
    run_dir: str = "runs/default"
    init_weights: str = ""                      # start the generator from these Keras weights
    init_step: int = 0                          # cumulative steps already in init_weights (learning curve)
    val_every: int = 250
    ckpt_every: int = 250
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
        values: dict[str, Any] = {}
        if path:
            values.update(json.loads(Path(path).read_text()))
        cfg = cls()
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise ValueError(f"unknown config key(s) in {path}: {', '.join(unknown)}")
        for key, value in values.items():
            setattr(cfg, key, _coerce(getattr(cfg, key), value, key))
        for item in overrides or []:
            key, sep, raw = item.partition("=")
            if not sep or key not in names:
                raise ValueError(f"bad override {item!r}: expected KEY=VALUE with KEY one of {', '.join(names)}")
            setattr(cfg, key, _coerce(getattr(cfg, key), _parse(raw), key))
        for key, allowed in CHOICES.items():
            if getattr(cfg, key) not in allowed:
                raise ValueError(f"unknown {key} {getattr(cfg, key)!r} in the config: use one of {', '.join(allowed)}")
        for key in PROBABILITIES:
            if not 0 <= getattr(cfg, key) <= 1:
                raise ValueError(f"config key {key!r} is a probability: {getattr(cfg, key)!r} is outside [0, 1]")
        if cfg.offcentre_max_shift < 0:
            raise ValueError(f"config key 'offcentre_max_shift' is a distance in px: {cfg.offcentre_max_shift} "
                             "is negative")
        if cfg.max_motion != 0 and not cfg.max_motion >= 3:
            raise ValueError(f"config key 'max_motion' is 0 (validation's cap) or an extent of at least 3 px: "
                             f"{cfg.max_motion!r} is neither")
        try:
            check_kernel_weights(cfg.kernel_weights)
        except ValueError as error:
            raise ValueError(f"config key 'kernel_weights': {error}") from None
        if (cfg.hint in CORRECTED_HINTS) != bool(cfg.hint_corrector):
            raise ValueError(f"hints {' and '.join(map(repr, CORRECTED_HINTS))} read a hint_corrector, and only "
                             f"they do: hint is {cfg.hint!r}, hint_corrector is {cfg.hint_corrector!r}")
        for key, needed, hinted in (("hint_true_share", "a hint", bool(cfg.hint)),
                                    ("hint_wrong_share", "a hint", bool(cfg.hint)),
                                    ("hint_line_true_share", f"hint {LINE_HINT_NAME!r}", cfg.hint == LINE_HINT_NAME),
                                    ("hint_line_true_when_wrong", f"hint {LINE_HINT_NAME!r}",
                                     cfg.hint == LINE_HINT_NAME)):
            if getattr(cfg, key) > 0 and (not hinted or cfg.paired):
                raise ValueError(f"{key} {getattr(cfg, key)} needs {needed} and synthetic blur (the true kernels "
                                 f"are known only there): hint is {cfg.hint!r}, paired is {cfg.paired!r}")
        if cfg.hint_wrong_scaled > 0 and cfg.hint_wrong_share == 0:
            raise ValueError(f"hint_wrong_scaled {cfg.hint_wrong_scaled} is a share of the wrong-kernel hints, and "
                             "hint_wrong_share is 0: set it above 0")
        if cfg.hint_line_true_when_wrong > 0 and cfg.hint_wrong_share == 0:
            raise ValueError(f"hint_line_true_when_wrong {cfg.hint_line_true_when_wrong} is a share of the samples "
                             "whose first hint is wrong, and hint_wrong_share is 0: set it above 0")
        if cfg.hint_context and (cfg.hint != LINE_HINT_NAME or cfg.paired or cfg.hint_context < cfg.crop):
            raise ValueError(f"hint_context {cfg.hint_context} is the side of the synthetic sample the line hint's "
                             f"streak is estimated on, before the crop ({cfg.crop}) is cut from it: it needs hint "
                             f"{LINE_HINT_NAME!r}, synthetic blur and a side of at least the crop (hint is "
                             f"{cfg.hint!r}, paired is {cfg.paired!r})")
        if cfg.hint_true_share + cfg.hint_wrong_share > 1:
            raise ValueError(f"hint_true_share {cfg.hint_true_share} and hint_wrong_share {cfg.hint_wrong_share} "
                             "are shares of the same samples: their sum is above 1")
        if cfg.offcentre_prob > 0 and cfg.offcentre_max_shift == 0:
            raise ValueError(f"offcentre_prob {cfg.offcentre_prob} shifts kernels by up to offcentre_max_shift px, "
                             "which is 0: set it to 1 or more")
        return cfg

    def realism(self) -> Realism:
        """The realism steps of training samples (SyntheticPairs)."""
        return Realism(self.saturation_prob, self.tone_curve_prob, self.nonuniform_blur_prob, self.offcentre_prob,
                       self.offcentre_max_shift)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)


def _parse(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _coerce(default: Any, value: Any, key: str) -> Any:
    try:
        if isinstance(default, tuple):
            return tuple(type(default[0])(v) for v in value) if default else tuple(value)
        if isinstance(default, bool):
            return bool(value)
        if isinstance(default, int) and isinstance(value, float) and not value.is_integer():
            raise ValueError("this key takes a whole number")
        if isinstance(default, (int, float, str)):
            return type(default)(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"config key {key!r}: cannot use {value!r} ({exc})") from exc
    return value
