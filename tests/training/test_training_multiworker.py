"""Multi-machine training, on one machine: two `deblur-train` worker processes on 127.0.0.1 joined by
TF_CONFIG train with MultiWorkerMirroredStrategy; the loss and the weights they reach match a single
process trained on the same global batch, and only the chief writes a run folder."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np

from training.distribute import cluster_size, is_chief, tf_config

REPO = Path(__file__).resolve().parents[2]
STEPS = 3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(overrides: list[str], tf_config_value: str | None) -> subprocess.Popen:
    """One `python -m training.train` process; TF kept to one thread per pool (a 2-core test machine)."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env.update(TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1", TF_NUM_INTRAOP_THREADS="1",
               TF_NUM_INTEROP_THREADS="1")
    if tf_config_value:
        env["TF_CONFIG"] = tf_config_value
    return subprocess.Popen([sys.executable, "-m", "training.train", "--set", *overrides], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen) -> str:
    try:
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out[-4000:]
    return out


def generator_weights(run_dir: Path) -> list[np.ndarray]:
    with np.load(run_dir / "ckpt.npz") as data:
        assert int(data["step"]) == STEPS
        return [data[k] for k in sorted(data.files) if k.startswith("g/")]


def last_row(run_dir: Path) -> dict:
    with open(run_dir / "log.csv", newline="") as f:
        return list(csv.DictReader(f))[-1]


def test_two_workers_match_one_process_on_the_same_global_batch(tiny_overrides: list[str], tmp_path: Path) -> None:
    common = [*tiny_overrides, f"steps={STEPS}", "batch=4", f"val_every={STEPS}", f"ckpt_every={STEPS}"]
    workers = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    procs = [start([*common, f"run_dir={tmp_path / f'worker{i}'}"],
                   json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}}))
             for i in range(2)]
    reference = start([*common, f"run_dir={tmp_path / 'single'}"], None)  # at the same time: TF imports overlap
    outs = [finish(p) for p in procs]
    single = finish(reference)

    # CollectiveAllReduceStrategy: the class behind tf.distribute.MultiWorkerMirroredStrategy
    assert "training on 2 replica(s), 2 worker(s), with CollectiveAllReduceStrategy" in outs[0]
    assert "not the chief" in outs[1] and "not the chief" not in outs[0]
    assert not (tmp_path / "worker1").exists()  # the non-chief wrote nothing
    assert "training on 1 replica(s), 1 worker(s)" in single
    a, b = generator_weights(tmp_path / "worker0"), generator_weights(tmp_path / "single")
    assert len(a) == len(b)
    moved = max(float(np.max(np.abs(x - y))) for x, y in zip(b, generator_weights_initial(tmp_path), strict=True))
    worst = max(float(np.max(np.abs(x - y))) for x, y in zip(a, b, strict=True))
    assert worst < 1e-4 < moved, (worst, moved)  # same weights, and training did move them
    multi, one = last_row(tmp_path / "worker0"), last_row(tmp_path / "single")
    for key in ("g_loss", "content", "val_psnr"):
        assert abs(float(multi[key]) - float(one[key])) <= 1e-4 * abs(float(one[key])) + 1e-5, (key, multi, one)


def generator_weights_initial(tmp_path: Path) -> list[np.ndarray]:
    """The generator before training (same seed and config), to show the comparison is not trivial."""
    import keras

    from training.config import Config
    from training.nets import build_generator

    cfg = Config.load(tmp_path / "single" / "config.json")
    keras.utils.set_random_seed(cfg.seed)
    return [np.asarray(v) for v in build_generator(cfg).variables]


def test_tf_config_names_the_cluster_and_the_chief(monkeypatch) -> None:
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert cluster_size() == 1 and is_chief()
    two = {"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(two))
    assert cluster_size() == 2 and not is_chief()
    monkeypatch.setenv("TF_CONFIG", json.dumps({**two, "cluster": {**two["cluster"], "chief": ["c:3"]},
                                                "task": {"type": "chief", "index": 0}}))
    assert cluster_size() == 3 and is_chief()
    monkeypatch.setenv("TF_CONFIG", "{not json")
    try:
        tf_config()
    except ValueError as exc:
        assert "TF_CONFIG is not JSON" in str(exc)
    else:
        raise AssertionError("a malformed TF_CONFIG was accepted")
