"""Which tf.distribute strategy a run uses, and which process of a multi-machine run is the chief.

One worker per host, named by TF_CONFIG (the variable tf.distribute reads; docs/scale-out.md has an
example): when it names several workers, MultiWorkerMirroredStrategy keeps one copy of the model per
worker and sums the gradients over all of them each step. Otherwise the GPUs (or logical CPUs) of
this host are mirrored, as before. The chief (worker 0 unless a `chief` task is named) alone writes
the run folder: checkpoints, weights, logs and TensorBoard events.
"""

from __future__ import annotations

import json
import os

import tensorflow as tf


def tf_config() -> dict:
    """TF_CONFIG as a dict ({} when unset); a malformed one is a clear error, not a TF traceback."""
    raw = os.environ.get("TF_CONFIG", "").strip()
    if not raw:
        return {}
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"TF_CONFIG is not JSON: {exc}") from exc
    if not isinstance(config, dict) or not isinstance(config.get("cluster", {}), dict):
        raise ValueError('TF_CONFIG must look like {"cluster": {"worker": ["host:port", ...]}, "task": {...}}')
    return config


def cluster_size() -> int:
    """Worker processes named by TF_CONFIG (chief included); 1 without it."""
    cluster = tf_config().get("cluster", {})
    return len(cluster.get("chief", [])) + len(cluster.get("worker", [])) or 1


def is_chief() -> bool:
    """True for the one process that writes the run folder (always true outside a cluster)."""
    config = tf_config()
    task = config.get("task", {})
    if cluster_size() == 1:
        return True
    if "chief" in config.get("cluster", {}):
        return task.get("type") == "chief"
    return task.get("type") == "worker" and int(task.get("index", 0)) == 0


def strategy_for_devices() -> tf.distribute.Strategy:
    """Several workers in TF_CONFIG: MultiWorkerMirroredStrategy; else mirror this host's GPUs (or
    logical CPUs, if several were configured); else the default. Call it before any other TF op: the
    multi-worker strategy sets up its collectives at program start."""
    if cluster_size() > 1:
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    cpus = tf.config.list_logical_devices("CPU")
    devices = gpus if gpus else cpus
    if len(devices) > 1:
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    return tf.distribute.get_strategy()


def agree_on_step(strategy: tf.distribute.Strategy, step: int) -> None:
    """Every worker must resume from the same step (they read the chief's checkpoint from a shared run
    folder); a worker that cannot see it would train on other samples with other weights."""
    if strategy.num_replicas_in_sync == 1:
        return
    local = strategy.run(lambda: tf.constant(step, tf.int64))
    total = int(strategy.reduce(tf.distribute.ReduceOp.SUM, local, axis=None))  # = replicas × step iff all agree
    if total != strategy.num_replicas_in_sync * step:
        raise ValueError(f"this worker resumed from step {step}, others did not: run_dir must be one folder shared "
                         "by every worker (e.g. a ReadWriteMany volume), so all read the chief's checkpoint")
