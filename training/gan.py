"""The deblurring GAN as a `keras.Model` with its own `train_step` (keras-io `wgan_gp.py` idiom).

`fit()`, callbacks and `tf.distribute` then work unchanged. With `adv_weight == 0` the discriminator
is never run: that is the content-only warm-up. Losses are divided by the number of replicas so
gradients summed across a MirroredStrategy equal the single-device gradient of the global batch.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from training import losses


class DeblurGAN(keras.Model):
    def __init__(self, generator: keras.Model, discriminator: keras.Model, cfg, **kwargs) -> None:
        super().__init__(**kwargs)
        self.generator, self.discriminator, self.cfg = generator, discriminator, cfg
        self.perceptual = losses.Perceptual(cfg.perceptual_weights) if cfg.perceptual_weight > 0 else None
        self.trackers = {name: keras.metrics.Mean(name=name) for name in ("g_loss", "content", "adv", "d_loss")}

    def compile(self, g_optimizer: keras.optimizers.Optimizer, d_optimizer: keras.optimizers.Optimizer) -> None:
        super().compile()
        self.g_optimizer, self.d_optimizer = g_optimizer, d_optimizer

    @property
    def metrics(self) -> list:
        return list(self.trackers.values())

    @property
    def input_channels(self) -> int:
        """3, or 6 for a hinted generator (photo ⊕ deconvolution)."""
        return self.generator.inputs[0].shape[-1]

    def call(self, blurry, training: bool = False):
        if blurry.shape[-1] == self.input_channels + 3:  # a stacked (blurry, sharp) batch: Keras builds on one
            blurry = blurry[..., :self.input_channels]
        return self.generator(blurry, training=training)

    def content_loss(self, sharp, restored):
        cfg = self.cfg
        loss = losses.charbonnier(sharp, restored)
        if cfg.fft_weight:
            loss += cfg.fft_weight * losses.fft_l1(sharp, restored)
        if cfg.ssim_weight:
            loss += cfg.ssim_weight * losses.ssim_loss(sharp, restored)
        if self.perceptual is not None:
            loss += cfg.perceptual_weight * self.perceptual(sharp, restored)
        return loss

    def _adversarial(self, real_logits, fake_logits, for_generator: bool):
        real_logits, fake_logits = tf.cast(real_logits, tf.float32), tf.cast(fake_logits, tf.float32)
        if self.cfg.adversarial == "ralsgan":
            return (losses.ralsgan_g if for_generator else losses.ralsgan_d)(real_logits, fake_logits)
        if self.cfg.adversarial == "wgan-gp":
            return (losses.wgan_g if for_generator else losses.wgan_d)(real_logits, fake_logits)
        raise ValueError(f"unknown adversarial loss {self.cfg.adversarial!r}: use ralsgan or wgan-gp")

    def _gradient_penalty(self, real, fake):
        alpha = tf.random.uniform([tf.shape(real)[0], 1, 1, 1])
        mixed = real + alpha * (fake - real)
        with tf.GradientTape() as tape:
            tape.watch(mixed)
            logits = self.discriminator(mixed, training=True)
        grads = tape.gradient(logits, mixed)
        norm = tf.sqrt(tf.reduce_sum(tf.square(grads), axis=[1, 2, 3]) + 1e-12)
        return tf.reduce_mean(tf.square(norm - 1.0))

    def train_step(self, data):
        # a (blurry, sharp) pair, or both stacked on channels (how a multi-worker run feeds them: trainer.py)
        blurry, sharp = data if isinstance(data, (tuple, list)) else tf.split(data, [self.input_channels, 3], axis=-1)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        adversarial = self.cfg.adv_weight > 0
        if adversarial:
            fake = self.generator(blurry, training=True)
            with tf.GradientTape() as tape:
                real_logits = self.discriminator(sharp, training=True)
                fake_logits = self.discriminator(fake, training=True)
                d_loss = self._adversarial(real_logits, fake_logits, for_generator=False)
                if self.cfg.adversarial == "wgan-gp":
                    d_loss += self.cfg.gp_weight * self._gradient_penalty(sharp, fake)
                scaled = d_loss / replicas
            d_vars = self.discriminator.trainable_variables
            self.d_optimizer.apply_gradients(zip(tape.gradient(scaled, d_vars), d_vars, strict=True))
            self.trackers["d_loss"].update_state(d_loss)
        with tf.GradientTape() as tape:
            restored = self.generator(blurry, training=True)
            content = self.content_loss(sharp, restored)
            g_loss = content
            if adversarial:
                adv = self._adversarial(self.discriminator(sharp, training=True),
                                        self.discriminator(restored, training=True), for_generator=True)
                g_loss += self.cfg.adv_weight * adv
                self.trackers["adv"].update_state(adv)
            scaled = g_loss / replicas
        g_vars = self.generator.trainable_variables
        grads = tape.gradient(scaled, g_vars)
        if self.cfg.grad_clip:
            grads = clip_global_batch(grads, self.cfg.grad_clip, replicas)
        self.g_optimizer.apply_gradients(zip(grads, g_vars, strict=True))
        self.trackers["g_loss"].update_state(g_loss)
        self.trackers["content"].update_state(content)
        logs = {name: t.result() for name, t in self.trackers.items() if adversarial or name in ("g_loss", "content")}
        if isinstance(tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy):
            # Keras 3 averages a multi-worker run's logs with strategy.reduce(MEAN, axis=0): give them that axis
            logs = {name: tf.reshape(value, [1]) for name, value in logs.items()}
        return logs


def clip_global_batch(grads: list, clip: float, replicas: int) -> list:
    """Clip by the norm of the global batch's gradient, as one device would: each replica holds only
    its share, and clipping shares would rescale them differently. The optimizer sums the returned
    shares over the replicas, which gives back the clipped global gradient."""
    if replicas == 1:
        return tf.clip_by_global_norm(grads, clip)[0]
    total = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, grads)
    return [g / replicas for g in tf.clip_by_global_norm(total, clip)[0]]
