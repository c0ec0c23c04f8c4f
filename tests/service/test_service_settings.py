"""Settings: environment names, defaults, validation and the model path search."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

import service
from service.settings import DEFAULT_MODEL, Settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for key in list(os.environ):
        if key.startswith("DEBLUR_") or key in ("PORT", "HOST"):
            monkeypatch.delenv(key)


def test_defaults_serve_a_laptop():
    s = Settings()
    assert (s.providers, s.tile_size, s.tile_overlap, s.tile_batch) == ("cuda,cpu", 256, 32, 4)
    assert (s.max_upload_mb, s.max_megapixels, s.max_concurrency, s.max_queue) == (50, 40, 1, 8)
    assert (s.threads, s.cors_origin_list, s.port, s.host) == (0, [], 8000, "0.0.0.0")
    assert s.max_megapixels * 1e6 >= 6000 * 4000  # a 24 MP photo is allowed


def test_environment_is_read(monkeypatch, tmp_path):
    monkeypatch.setenv("DEBLUR_PROVIDERS", "CPU")
    monkeypatch.setenv("DEBLUR_TILE_SIZE", "128")
    monkeypatch.setenv("DEBLUR_MAX_UPLOAD_MB", "2.5")
    monkeypatch.setenv("DEBLUR_CORS_ORIGINS", "http://a.example, http://b.example")
    monkeypatch.setenv("DEBLUR_MODEL_PATH", str(tmp_path / "m.onnx"))
    monkeypatch.setenv("PORT", "9001")
    s = Settings()
    assert s.provider_list == ["cpu"] and s.tile_size == 128 and s.port == 9001
    assert s.max_upload_bytes == int(2.5 * 1024 * 1024)
    assert s.cors_origin_list == ["http://a.example", "http://b.example"]
    assert s.resolved_model_path() == tmp_path / "m.onnx"


@pytest.mark.parametrize(
    "env",
    [
        {"DEBLUR_PROVIDERS": "tpu"},
        {"DEBLUR_TILE_SIZE": "64", "DEBLUR_TILE_OVERLAP": "40"},
        {"DEBLUR_TILE_BATCH": "0"},
        {"DEBLUR_MAX_CONCURRENCY": "abc"},
    ],
)
def test_bad_values_are_refused(monkeypatch, env):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ValidationError):
        Settings()


def test_model_path_search_order(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    package_default = Path(service.__file__).resolve().parent.parent / DEFAULT_MODEL
    expected = package_default if package_default.is_file() else tmp_path / DEFAULT_MODEL
    assert Settings().resolved_model_path() == expected
    (tmp_path / "models").mkdir()
    (tmp_path / DEFAULT_MODEL).write_bytes(b"x")
    assert Settings().resolved_model_path() == tmp_path / DEFAULT_MODEL
