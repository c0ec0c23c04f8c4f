"""tf.data input pipeline: sample synthesis runs in parallel and ahead of the train step.

Samples are addressed by a global index (`step × batch + j`), so a resumed run starts the stream
exactly where the killed one stopped. `numpy_function` releases the GIL inside NumPy/SciPy FFTs and
Pillow, so AUTOTUNE parallel calls plus prefetch keep the cores on the network, not on blurring.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf

Sampler = Callable[[int], tuple[np.ndarray, np.ndarray]]


def train_dataset(sampler: Sampler, crop: int, batch: int, start_step: int = 0, workers: int = 1, worker: int = 0,
                  replica_batch: int | None = None, shapes: tuple[tuple[int, ...], ...] | None = None
                  ) -> tf.data.Dataset:
    """Batches of `replica_batch` (default: `batch`) samples. `batch` is the global batch of a step, and
    step k always holds samples k·batch … (k+1)·batch − 1: with several workers, each reads its own
    consecutive slice of them, so N machines train on exactly the samples one machine would. The sampler
    returns float32 arrays of `shapes` (default: the (blurred, sharp) crops)."""
    shapes = shapes or ((crop, crop, 3), (crop, crop, 3))

    def make(index):
        arrays = tf.numpy_function(lambda i: sampler(int(i)), [index], [tf.float32] * len(shapes))
        for array, shape in zip(arrays, shapes, strict=True):
            array.set_shape(shape)
        return tuple(arrays)

    ds = tf.data.Dataset.range(start_step * batch, 2**62)
    if workers > 1:  # worker w takes slice w of every step's indices (before synthesis: no wasted samples)
        ds = ds.batch(batch // workers).shard(workers, worker).unbatch()
    ds = ds.map(make, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(replica_batch or batch, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def fixed_set(sampler: Sampler, count: int) -> tuple[np.ndarray, np.ndarray]:
    """A validation set: the first `count` samples of a sampler with its own seed, stacked."""
    pairs = [sampler(i) for i in range(count)]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
