"""The training loop behind `deblur-train`: data, generator start, strategy, resume, and the fit itself.

One phase per call of `train(cfg)`, resumable: the run folder's ckpt.npz, when there, sets the step and
every weight, so the same call continues where a killed run stopped (training/train.py is its CLI).
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from pathlib import Path

import h5py
import keras
import tensorflow as tf

from service.engine import Engine
from service.kernel_aware import HINT_NAME, estimate_kernel
from service.kernel_correction import KernelCorrector
from training import checkpoint
from training.config import Config
from training.data.folders import DataError, split_photos
from training.data.hinted import HintedPairs
from training.data.paired import PairedCrops, find_pairs
from training.data.pipeline import fixed_set, train_dataset
from training.data.synthesis import SyntheticPairs
from training.distribute import agree_on_step, cluster_size, is_chief, strategy_for_devices
from training.gan import DeblurGAN
from training.monitor import TrainingMonitor
from training.nets import build_discriminator, build_generator, macs_per_megapixel
from training.nets.nafunet import transfer_weights
from training.runtime import make_optimizers, precision_policy

log = logging.getLogger("deblur-train")


def build_data(cfg: Config):
    """(train sampler, validation arrays) from paired folders or from sharp photos + synthetic blur;
    with a `hint`, each sample's input also carries the kernel-aware chain's deconvolution."""
    if cfg.paired:
        train = PairedCrops(find_pairs(cfg.paired, "train"), cfg.crop, cfg.seed)
        try:
            val_pairs = find_pairs(cfg.paired, "test")
        except DataError:
            val_pairs = train.pairs[-max(1, len(train.pairs) // 10):]
        val = PairedCrops(val_pairs, cfg.val_crop, cfg.seed + 1, augment=False)
    else:
        train, val = synthetic_samplers(cfg)
    if cfg.hint:
        guide = Engine(cfg.hint_guide, providers=("cpu",), threads=1)
        kernel_of = KernelCorrector(Path(cfg.hint_corrector), guide=guide.deblurred) if cfg.hint_corrector \
            else estimate_kernel
        train = HintedPairs(train, guide, kernel_of, cfg.hint_true_share, cfg.seed, cfg.hint_wrong_share,
                            cfg.hint_wrong_scaled, hint=cfg.hint, line_true_share=cfg.hint_line_true_share,
                            line_true_when_wrong=cfg.hint_line_true_when_wrong, crop=cfg.crop)
        val = HintedPairs(val, guide, kernel_of, hint=cfg.hint)
    return train, fixed_set(val, cfg.val_images)


def saved_variable_count(weights: str | Path) -> int:
    """How many arrays a Keras .weights.h5 file holds (tells a plain net's file from a hinted net's)."""
    with h5py.File(weights, "r") as f:
        found: list[str] = []
        f.visititems(lambda name, item: found.append(name) if isinstance(item, h5py.Dataset) else None)
        return len(found)


def initialise_generator(generator: keras.Model, cfg: Config) -> None:
    """Load `init_weights`. A hinted net loads a file of the same net as is (a later phase of the same arm),
    or takes a plain net's or a one-hint net's weights by layer name and keeps the stems they lack at zero
    (the arm's start)."""
    count = saved_variable_count(cfg.init_weights)
    if not cfg.hint or count == len(generator.weights):
        generator.load_weights(cfg.init_weights)
        return
    for fewer in ("", HINT_NAME):
        source = build_generator(dataclasses.replace(cfg, hint=fewer))
        if len(source.weights) == count:
            source.load_weights(cfg.init_weights)
            log.info("kept initial weights for %s", ", ".join(transfer_weights(source, generator)))
            return
    raise ValueError(f"init_weights {cfg.init_weights} holds {count} arrays: not this net's ({len(generator.weights)}),"
                     " nor a plain or one-hint net's of the same shape")


def synthetic_samplers(cfg: Config) -> tuple[SyntheticPairs, SyntheticPairs]:
    """(train, validation) synthetic-blur samplers from the config's photo folders (file-hash split). The
    realism steps apply to training samples only: validation stays the plain synthesis, comparable across runs."""
    folders = [f for f in cfg.photos.split(",") if f]
    photos, val_photos, _ = split_photos(folders, cfg.val_fraction, cfg.crop)
    side = cfg.hint_context or cfg.crop  # training samples are contexts the crop is cut from after the hints
    if side > cfg.crop:
        photos = [p for p in photos if min(p.shape[:2]) >= side]
        if not photos:
            raise DataError(f"no training photo has a side of hint_context ({side} px) or more")
    log.info("%d training photos, %d validation photos", len(photos), len(val_photos))
    kw = dict(max_blur=cfg.max_blur, kernel_weights=cfg.kernel_weights, max_noise=cfg.max_noise,
              jpeg_prob=cfg.jpeg_prob)
    train = SyntheticPairs(photos, side, cfg.seed, scale_range=cfg.scale_range, realism=cfg.realism(),
                           max_motion=cfg.max_motion, **kw)
    val_source = val_photos or photos
    if not val_photos:
        log.warning("no validation photos (too few files for val_fraction=%s): validating on training photos",
                    cfg.val_fraction)
    val_photos_ok = [p for p in val_source if min(p.shape[:2]) >= cfg.val_crop + cfg.max_blur] or val_source
    val = SyntheticPairs(val_photos_ok, cfg.val_crop, cfg.seed + 1, augment=False, **kw)
    return train, val


def train(cfg: Config) -> Path:
    """Run (or resume) one phase; the dtype policy applies to this run only."""
    with precision_policy(cfg.precision):
        return _train(cfg)


def _train(cfg: Config) -> Path:
    strategy = strategy_for_devices()  # first: a multi-worker strategy must exist before other TF ops
    chief = is_chief()
    run_dir = Path(cfg.run_dir)
    if chief:  # the other workers read the run folder (resume) but never write it
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(cfg.to_json())
    train_sampler, val = build_data(cfg)
    keras.utils.set_random_seed(cfg.seed)
    with strategy.scope():
        generator = build_generator(cfg)
        discriminator = build_discriminator(cfg.discriminator, cfg.disc_width)
        ckpt_path = run_dir / "ckpt.npz"
        phase_start = cfg.init_step
        optimizers = make_optimizers(cfg)
        g_opt, d_opt, schedule = optimizers.generator, optimizers.discriminator, optimizers.schedule
        g_opt.build(generator.trainable_variables)  # built up front: every checkpoint has the same layout
        d_opt.build(discriminator.trainable_variables)
        step = phase_start
        if ckpt_path.exists():
            parts = checkpoint.gan_parts(generator, discriminator, g_opt, d_opt)
            step, phase_start = checkpoint.restore(ckpt_path, parts)
            schedule.total = max(cfg.steps - phase_start, 1)
            log.info("resumed from %s at step %d", ckpt_path, step)
        elif cfg.init_weights:
            initialise_generator(generator, cfg)
            log.info("generator initialised from %s (step %d)", cfg.init_weights, step)
        agree_on_step(strategy, step)
        keras.utils.set_random_seed(cfg.seed + step)
        gan = DeblurGAN(generator, discriminator, cfg)
        gan.compile(g_opt, d_opt)
    log.info("training on %d replica(s), %d worker(s), with %s%s", strategy.num_replicas_in_sync, cluster_size(),
             type(strategy).__name__, "" if chief else " (not the chief: the chief writes checkpoints and logs)")
    log.info("%s: %.2f M params, %.2f GMAC/MP", generator.name, generator.count_params() / 1e6,
             macs_per_megapixel(generator) / 1e9)
    if step >= cfg.steps:
        log.info("nothing to do: step %d >= steps %d", step, cfg.steps)
        return run_dir
    callbacks = [TrainingMonitor(cfg, run_dir, val, start_step=step, phase_start=phase_start)] if chief else []
    if cluster_size() > 1:  # each worker synthesises only its slice of every global batch
        # One (N, H, W, 6) tensor per batch, not a (blurry, sharp) pair: Keras 3 peeks at the first batch
        # with strategy.reduce, which MultiWorkerMirroredStrategy cannot apply to a tuple.
        dataset = strategy.distribute_datasets_from_function(lambda ctx: train_dataset(
            train_sampler, cfg.crop, cfg.batch, step, ctx.num_input_pipelines, ctx.input_pipeline_id,
            ctx.get_per_replica_batch_size(cfg.batch)).map(lambda blurry, sharp: tf.concat([blurry, sharp], -1)))
    else:
        channels = generator.inputs[0].shape[-1]
        dataset = train_dataset(train_sampler, cfg.crop, cfg.batch, start_step=step,
                                shapes=((cfg.crop, cfg.crop, channels), (cfg.crop, cfg.crop, 3)))
    verbose = (1 if sys.stdout.isatty() else 2) if chief else 0  # a bar on a terminal, no \r spam in log files
    gan.fit(dataset, epochs=1, steps_per_epoch=cfg.steps - step, callbacks=callbacks, verbose=verbose)
    return run_dir
