"""Fixtures for the training side: small photo folders and a tiny config that trains in seconds."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def smooth_photo(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A photo-like image: low-frequency colour fields plus a few hard edges (what blur destroys)."""
    yy, xx = np.mgrid[:h, :w] / max(h, w)
    img = np.stack([0.5 + 0.4 * np.sin(rng.uniform(2, 9) * xx + rng.uniform(1, 7) * yy + rng.uniform(0, 6))
                    for _ in range(3)], -1)
    for _ in range(6):
        y, x = rng.integers(0, h - 8), rng.integers(0, w - 8)
        img[y:y + rng.integers(4, h // 3), x:x + rng.integers(4, w // 3)] = rng.random(3)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


@pytest.fixture(scope="session")
def make_photo():
    """`smooth_photo` for tests that need photos of their own size (conftest modules are not importable)."""
    return smooth_photo


@pytest.fixture(scope="session")
def photo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for i in range(12):
        Image.fromarray(smooth_photo(rng, 120, 150)).save(folder / f"photo{i:02d}.png")
    return folder


@pytest.fixture()
def tiny_overrides(photo_dir: Path, tmp_path: Path) -> list[str]:
    """A config small enough that a few steps take seconds on one core."""
    return [f"photos={photo_dir}", f"run_dir={tmp_path / 'run'}", "width=8", "enc_blocks=[1]", "mid_blocks=1",
            "dec_blocks=[1]", "crop=32", "batch=2", "val_images=2", "val_crop=32", "max_blur=9",
            "val_every=2", "ckpt_every=2", "warmup_steps=1", "disc_width=8", "val_fraction=0.2"]


@pytest.fixture(scope="session")
def identity_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A plain model of the contract that returns its input (a guide or a model whose output is known)."""
    x = helper.make_tensor_value_info("blurry", TensorProto.FLOAT, ["N", "H", "W", 3])
    y = helper.make_tensor_value_info("sharp", TensorProto.FLOAT, ["N", "H", "W", 3])
    graph = helper.make_graph([helper.make_node("Identity", ["blurry"], ["sharp"])], "identity", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    helper.set_model_props(model, {"name": "identity", "version": "0", "size_multiple": "1"})
    path = tmp_path_factory.mktemp("identity") / "identity.onnx"
    onnx.save(model, path)
    return path
