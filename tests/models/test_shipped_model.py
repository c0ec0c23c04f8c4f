"""The model in models/ is what the card says: the contract, its Keras weights, seam-free tiling, a real gain."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
ONNX = REPO / "models" / "deblur-generator.onnx"
WEIGHTS = REPO / "models" / "generator.weights.h5"
CONFIG = REPO / "models" / "train-config.json"

pytestmark = pytest.mark.skipif(not ONNX.exists(), reason="no shipped model in models/ yet")


@pytest.fixture(scope="module")
def engine():
    from service.engine import Engine

    return Engine(ONNX, providers=["cpu"], tile_size=256, tile_overlap=32, tile_batch=4)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    from skimage import data

    return data.astronaut()[:480, :400].astype(np.float32) / 255  # several tiles, not a multiple of 16


def test_metadata_is_complete_and_the_model_is_marked_trained(engine) -> None:
    meta = engine.info.metadata
    assert meta["trained"] == "true" and meta["normalisation"] == "rgb01"
    assert int(meta["size_multiple"]) == 16 and engine.info.version and engine.info.name
    metrics = json.loads(meta["metrics"])
    assert metrics["mean_psnr_out"] > metrics["mean_psnr_in"]


def test_committed_keras_weights_are_exactly_the_served_model(engine) -> None:
    from training.export import check_parity, load_generator

    generator, _ = load_generator(CONFIG, WEIGHTS)
    import onnx

    assert check_parity(lambda x: generator(x, training=False).numpy(), onnx.load(ONNX)) < 1e-4


def test_tiled_output_matches_whole_image_output(engine, photo: np.ndarray) -> None:
    tiled = engine.deblur(photo).image
    whole = engine.deblur_whole(photo)
    assert engine.deblur(photo).tiles > 1
    psnr = 10 * np.log10(1.0 / np.mean((tiled - whole) ** 2))
    assert psnr >= 40.0, psnr


def test_the_model_restores_a_blurred_photo(engine, photo: np.ndarray) -> None:
    from training.data.protocol import protocol_pair

    blurred, sharp, _, _ = protocol_pair(photo, "astronaut-regression", seed=7)
    restored = engine.deblur(blurred).image

    def psnr(a: np.ndarray) -> float:
        return float(10 * np.log10(1.0 / np.mean((a - sharp) ** 2)))

    assert psnr(restored) > psnr(blurred) + 0.3
    # no colour shift: per channel, the output's mean stays at the sharp photo's (blur in linear light
    # brightens the sRGB mean of the input a little; the model must not add a shift of its own)
    assert np.abs(restored.mean((0, 1)) - sharp.mean((0, 1))).max() < 0.01
