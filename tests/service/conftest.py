"""Fixtures: tiny ONNX models built at test time and an engine on them (CPU, small tiles)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from service_helpers import make_model

from service.engine import Engine


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def small_model(models_dir: Path) -> Path:
    """Receptive radius 2: smaller than a quarter of a 16-px overlap, so tiling is exact."""
    meta = {
        "name": "tiny-test",
        "version": "t1",
        "training": "none: a fixed random conv stack for tests",
        "trained": "false",
        "metrics": json.dumps({"psnr": 12.5, "ssim": 0.5}),
    }
    return make_model(models_dir / "small.onnx", (1, 1), metadata=meta)


@pytest.fixture(scope="session")
def wide_model(models_dir: Path) -> Path:
    """Receptive radius 1+2+4+8 = 15: much larger than the overlap used with it."""
    return make_model(models_dir / "wide.onnx", (1, 2, 4, 8), seed=1)


@pytest.fixture(scope="session")
def engine(small_model: Path) -> Engine:
    return Engine(small_model, providers=["cpu"], tile_size=64, tile_overlap=16, tile_batch=4, threads=1)


def pytest_configure(config: pytest.Config) -> None:
    # Starlette 1.x nags that its TestClient wants `httpx2`; httpx works and is what is pinned.
    config.addinivalue_line("filterwarnings", "ignore:Using `httpx` with `starlette.testclient`")
