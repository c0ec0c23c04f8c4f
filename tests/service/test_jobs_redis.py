"""Redis mode against Debian's real redis-server: two API replicas, `deblur-worker` processes, a worker
killed with SIGKILL mid-job, an API restart, and a Redis that cannot be reached."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from fault_models import heavy_model
from jobs_client import SAME_HEADERS, deblur, events, submit, wait_status, wait_tiles
from redis_server import WORKER, Worker, redis_server, start_worker, workers
from service_helpers import photo, png_bytes
from service_server import running, start
from test_service_e2e import REPO, free_port, server_env

LEASE = {"DEBLUR_JOB_LEASE_S": "1"}
# one tile per model call: many progress steps, and a batch is short (cancel and kill land mid-job)
SLOW = {"DEBLUR_TILE_BATCH": "1", "DEBLUR_MAX_UPLOAD_MB": "4"}


@pytest.fixture(scope="module")
def slow_model(models_dir):
    return heavy_model(models_dir / "heavy-redis.onnx", channels=64, layers=4)


@pytest.fixture(scope="module")
def redis(tmp_path_factory):
    with redis_server(tmp_path_factory.mktemp("redis")) as server:
        yield server


def env_for(redis, **extra: str) -> dict[str, str]:
    return {"DEBLUR_REDIS_URL": redis.url, **LEASE, **SLOW, **extra}


@contextmanager
def api_with_a_worker(model, tmp_path, env) -> Iterator[tuple[httpx.Client, list[Worker]]]:
    with (
        running(model, tmp_path / "api", **env) as api,
        workers(model, tmp_path / "w", **env) as ws,
        httpx.Client(base_url=api.base, timeout=60) as client,
    ):
        yield client, ws


def test_any_replica_accepts_any_worker_runs_and_status_survives_an_api_restart(small_model, redis, tmp_path):
    data = png_bytes(photo(300, 200))
    env = env_for(redis)
    with running(small_model, tmp_path / "a", **env) as api_a, running(small_model, tmp_path / "b", **env) as api_b:
        a, b = httpx.Client(base_url=api_a.base, timeout=30), httpx.Client(base_url=api_b.base, timeout=30)
        r = submit(a, data)
        assert r.status_code == 202 and r.headers["location"] == f"/jobs/{r.json()['id']}"
        job = r.json()["id"]
        assert b.get(f"/jobs/{job}").json()["status"] == "queued"  # no worker yet: it waits, nothing is lost
        with workers(small_model, tmp_path / "w", count=2, **env):
            view = wait_status(b, job)
            assert view["status"] == "done" and view["attempts"] == 1
            got = b.get(f"/jobs/{job}/result")
            want = deblur(a, data)
            assert got.status_code == 200 and got.content == want.content
            assert all(got.headers[h] == want.headers[h] for h in SAME_HEADERS)
            assert [e for e, _ in events(a, job)] == ["done"]
        a.close()
    # every API process has been restarted
    with running(small_model, tmp_path / "c", **env) as api_c, httpx.Client(base_url=api_c.base, timeout=30) as c:
        assert c.get(f"/jobs/{job}").json()["status"] == "done"
        assert c.get(f"/jobs/{job}/result").content == want.content
        assert c.delete(f"/jobs/{job}").status_code == 204 and c.get(f"/jobs/{job}").status_code == 404
    b.close()


def test_a_job_whose_worker_is_killed_completes_on_a_restarted_worker_with_the_same_bytes(slow_model, redis, tmp_path):
    data = png_bytes(photo(800, 600, seed=3))
    env = env_for(redis)
    with api_with_a_worker(slow_model, tmp_path, env) as (c, ws):
        job = submit(c, data).json()["id"]
        total = c.get(f"/jobs/{job}").json()["progress"]["tiles_total"]
        seen = wait_tiles(c, job, at_least=10)
        assert seen["progress"]["tiles_done"] < total, "the job finished before the worker could be killed"
        ws[0].kill()  # SIGKILL: no cleanup, the job stays "running" in Redis until its lease runs out
        time.sleep(1.5)
        assert c.get(f"/jobs/{job}").json()["status"] in ("running", "queued")
        ws.append(start_worker(slow_model, tmp_path / "w", "restarted", **env))
        view = wait_status(c, job, timeout=120)
        assert view["status"] == "done" and view["attempts"] == 2, view
        assert view["progress"] == {"tiles_done": total, "tiles_total": total, "fraction": 1.0}
        got = c.get(f"/jobs/{job}/result").content
        assert got == deblur(c, data, timeout=120).content
        assert "running it again" in ws[1].log()


def test_cancel_stops_a_running_job_at_the_next_batch_and_a_queued_one_never_runs(slow_model, redis, tmp_path):
    data = png_bytes(photo(600, 400, seed=4))
    env = env_for(redis)
    with api_with_a_worker(slow_model, tmp_path, env) as (c, ws):
        first, second = submit(c, data).json()["id"], submit(c, data).json()["id"]
        wait_tiles(c, first, at_least=3)
        assert c.delete(f"/jobs/{second}").json()["status"] == "cancelled"  # still queued behind `first`
        r = c.delete(f"/jobs/{first}")
        assert r.status_code == 200 and r.json()["status"] == "cancelled"
        time.sleep(1.0)
        stopped = c.get(f"/jobs/{first}").json()
        assert stopped["status"] == "cancelled"
        assert stopped["progress"]["tiles_done"] < stopped["progress"]["tiles_total"]
        time.sleep(0.5)
        assert c.get(f"/jobs/{first}").json()["progress"] == stopped["progress"]  # the worker stopped
        assert c.get(f"/jobs/{second}").json()["attempts"] == 0
        assert c.get(f"/jobs/{first}/result").json() == {"detail": "job is cancelled", "status": "cancelled"}
        # the worker is free again: a new job runs to the end
        small = submit(c, png_bytes(photo(40, 30))).json()["id"]
        assert wait_status(c, small)["status"] == "done"
        assert "cancelled after" in ws[0].log() and "cancelled before it started" not in ws[0].log()


def test_queue_limit_ttl_and_store_limit_in_redis(small_model, redis, tmp_path):
    env = env_for(redis, DEBLUR_JOB_MAX_QUEUED="2", DEBLUR_JOB_TTL_S="2", DEBLUR_JOB_STORE_MB="0.4")
    big = png_bytes(photo(400, 300, seed=5))  # noise: ~0.27 MiB as PNG, its result too; one fits in 0.4 MiB
    assert 0.2 < len(big) / 2**20 < 0.4
    redis.client().flushall()
    with running(small_model, tmp_path / "api", **env) as api, httpx.Client(base_url=api.base, timeout=30) as c:
        ids = [submit(c, big).json()["id"] for _ in range(2)]
        full = submit(c, big)
        assert full.status_code == 503 and full.headers["retry-after"] == "2"
        assert "job queue full: 2 jobs waiting (DEBLUR_JOB_MAX_QUEUED)" in full.json()["detail"]
        with workers(small_model, tmp_path / "w", **env):
            for job in ids:
                wait_status(c, job)
        assert c.get(f"/jobs/{ids[0]}/result").status_code == 410  # evicted: the store holds one result
        kept = c.get(f"/jobs/{ids[1]}/result")
        assert kept.status_code == 200 and 0.2 < len(kept.content) / 2**20 < 0.4
        time.sleep(2.2)
        gone = c.get(f"/jobs/{ids[1]}/result")
        assert gone.status_code == 410 and "expired" in gone.json()["detail"]
        assert c.get(f"/jobs/{ids[1]}").json()["status"] == "done"  # the record outlives its result
        time.sleep(2.2)
        assert c.get(f"/jobs/{ids[1]}").status_code == 404
        assert redis.client().keys("deblur:job:*") == []  # nothing left behind in Redis


def test_unreachable_redis_is_a_clear_503_and_readyz_says_why(small_model, tmp_path):
    dead = f"redis://127.0.0.1:{free_port()}/0"
    api = start(small_model, tmp_path / "api", wait_ready=False, DEBLUR_REDIS_URL=dead)
    try:
        with httpx.Client(base_url=api.base, timeout=30) as c:
            deadline = time.monotonic() + 30
            while (ready := get_when_listening(c, "/readyz")).json()["detail"] == "model loading":
                assert time.monotonic() < deadline
                time.sleep(0.1)
            assert ready.status_code == 503 and "cannot reach Redis at 127.0.0.1:" in ready.json()["detail"]
            r = submit(c, png_bytes(photo(40, 30)))
            assert r.status_code == 503 and r.headers["retry-after"] and "cannot reach Redis" in r.json()["detail"]
            assert c.get("/jobs/" + "A" * 22).status_code == 503
            assert deblur(c, png_bytes(photo(40, 30))).status_code == 200  # /deblur does not need Redis
    finally:
        assert api.stop() == 0
    assert "Traceback" not in api.log()


def get_when_listening(client: httpx.Client, path: str) -> httpx.Response:
    for _ in range(300):
        try:
            return client.get(path)
        except httpx.ConnectError:
            time.sleep(0.1)
    raise AssertionError("server never listened")


@pytest.mark.parametrize("url", [None, "redis://127.0.0.1:{port}/0"], ids=["unset", "unreachable"])
def test_worker_exits_2_with_one_line_without_a_reachable_redis(small_model, url):
    env = server_env(small_model, free_port())
    if url:
        env["DEBLUR_REDIS_URL"] = url.format(port=free_port())
    done = subprocess.run(WORKER, env=env, capture_output=True, text=True, timeout=60, cwd=REPO)
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1, lines
    assert ("needs DEBLUR_REDIS_URL" if url is None else "cannot reach Redis at 127.0.0.1") in lines[0]


def test_sigterm_lets_a_worker_finish_its_job_then_exit_0(slow_model, redis, tmp_path):
    data = png_bytes(photo(600, 400, seed=6))
    env = env_for(redis)
    with api_with_a_worker(slow_model, tmp_path, env) as (c, ws):
        job = submit(c, data).json()["id"]
        wait_tiles(c, job, at_least=3)
        assert ws[0].stop() == 0  # SIGTERM mid-job: a warm shutdown
        view = c.get(f"/jobs/{job}").json()
        assert view["status"] == "done" and view["attempts"] == 1, view
