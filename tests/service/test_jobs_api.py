"""The jobs API on the embedded back end, against the real server: submit, poll, SSE, result with
/deblur's bytes and headers, unknown/malformed ids, 409/410, cancel during inference, the queue, TTL and
store limits, and fds and temp files back to the baseline afterwards."""

from __future__ import annotations

import time

import httpx
import pytest
from fault_models import heavy_model
from jobs_client import SAME_HEADERS, deblur, events, submit, wait_status, wait_tiles
from service_helpers import photo, png_bytes
from service_server import running

from service.jobs.progress import ProgressReporter

SLOW = {"DEBLUR_TILE_BATCH": "1", "DEBLUR_MAX_UPLOAD_MB": "4"}


@pytest.fixture(scope="module")
def slow_model(models_dir):
    return heavy_model(models_dir / "heavy-jobs.onnx", channels=64, layers=10)


@pytest.fixture(scope="module")
def api(small_model, tmp_path_factory):
    with running(small_model, tmp_path_factory.mktemp("jobs")) as server, httpx.Client(base_url=server.base,
                                                                                         timeout=30) as c:
        deblur(c, png_bytes(photo(40, 30)))  # warm up every code path once
        time.sleep(0.3)
        server.baseline_fds = server.fds()
        yield server, c


@pytest.fixture(scope="module")
def slow(slow_model, tmp_path_factory):
    env = {**SLOW, "DEBLUR_JOB_MAX_QUEUED": "1"}
    with running(slow_model, tmp_path_factory.mktemp("slow"), **env) as server, httpx.Client(base_url=server.base,
                                                                                               timeout=60) as c:
        yield server, c


def test_submit_poll_stream_and_fetch_the_same_bytes_and_headers_as_deblur(api):
    _, c = api
    data = png_bytes(photo(150, 90))
    r = submit(c, data, name="street photo.png", query="?format=webp&quality=80")
    assert r.status_code == 202
    view = r.json()
    job = view["id"]
    assert r.headers["location"] == f"/jobs/{job}" and len(job) == 22
    assert view["status"] == "queued" and view["progress"] == {"tiles_done": 0, "tiles_total": 6, "fraction": 0.0}
    assert (view["width"], view["height"], view["eta_s"], view["created"].endswith("Z")) == (150, 90, None, True)
    done = wait_status(c, job)
    assert done["status"] == "done" and done["progress"]["fraction"] == 1.0 and done["eta_s"] == 0.0
    assert done["started"] and done["finished"] and done["result_expires"] and done["attempts"] == 1
    got = c.get(f"/jobs/{job}/result")
    want = deblur(c, data, name="street photo.png", query="?format=webp&quality=80")
    assert got.status_code == 200 and got.content == want.content
    assert {h: got.headers[h] for h in SAME_HEADERS} == {h: want.headers[h] for h in SAME_HEADERS}
    assert got.headers["content-disposition"] == 'inline; filename="street_photo-deblurred.webp"'
    assert float(got.headers["x-process-time-ms"]) > 0
    assert events(c, job) == [("done", c.get(f"/jobs/{job}").json())]
    assert c.delete(f"/jobs/{job}").status_code == 204
    for path in ("", "/events", "/result"):
        assert c.get(f"/jobs/{job}{path}").status_code == 404


BAD_IDS = ["nope", "A" * 22, "A" * 21, "A" * 23, "..%2F..%2Fetc%2Fpasswd", "%2E%2E", "x" * 5000, "%00" * 22,
           "aaaaaaaaaaaaaaaaaaaaa%2A", "фото", "deblur:job:*", "1;DROP"]


@pytest.mark.parametrize("bad", BAD_IDS)
@pytest.mark.parametrize("method,suffix", [("GET", ""), ("GET", "/events"), ("GET", "/result"), ("DELETE", "")])
def test_unknown_and_malformed_ids_are_404_json(api, bad, method, suffix):
    server, c = api
    r = c.request(method, f"/jobs/{bad}{suffix}")
    assert r.status_code == 404, r.text
    assert r.json()["detail"].startswith(("no such job", "Not Found"))
    assert len(r.text) < 300 and str(server.tmpdir) not in r.text


def test_events_count_up_through_real_tiles_then_done(slow):
    _, c = slow
    job = submit(c, png_bytes(photo(600, 400, seed=1))).json()["id"]
    stream = events(c, job)
    names = [e for e, _ in stream]
    assert names[-1] == "done" and set(names[:-1]) == {"progress"}
    counts = [d["progress"]["tiles_done"] for _, d in stream]
    total = stream[-1][1]["progress"]["tiles_total"]
    changes = [(d["status"], d["progress"]["tiles_done"]) for _, d in stream]
    assert counts == sorted(counts) and len(set(changes)) == len(changes)  # one event per change, never back
    assert counts[-1] == total and len([n for n in counts if 0 < n < total]) >= 3
    assert len(stream) < total / 2  # throttled: far fewer updates than tiles
    running = [d for _, d in stream if d["status"] == "running" and d["progress"]["tiles_done"]]
    assert running and all(d["eta_s"] is not None and d["eta_s"] >= 0 for d in running)


def test_result_is_409_while_running_and_cancel_stops_inference_at_the_next_batch(slow):
    server, c = slow
    job = submit(c, png_bytes(photo(600, 400, seed=2))).json()["id"]
    wait_tiles(c, job, at_least=2)
    early = c.get(f"/jobs/{job}/result")
    assert early.status_code == 409 and early.json() == {"detail": "job is running", "status": "running"}
    r = c.delete(f"/jobs/{job}")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    time.sleep(0.6)
    stopped = c.get(f"/jobs/{job}").json()
    time.sleep(0.6)
    assert c.get(f"/jobs/{job}").json()["progress"] == stopped["progress"]
    assert stopped["progress"]["tiles_done"] < stopped["progress"]["tiles_total"]
    assert "cancelled after" in server.log()
    # the slot is free again: a small job and a /deblur both get through
    small = submit(c, png_bytes(photo(40, 30))).json()["id"]
    assert wait_status(c, small)["status"] == "done"
    deblur(c, png_bytes(photo(40, 30)))
    assert c.delete(f"/jobs/{job}").status_code == 204


def test_queue_full_is_503_with_retry_after(slow):
    _, c = slow  # DEBLUR_JOB_MAX_QUEUED=1
    data = png_bytes(photo(600, 400, seed=3))
    running_job = submit(c, data).json()["id"]
    wait_tiles(c, running_job, at_least=1)
    waiting = submit(c, data).json()["id"]
    full = submit(c, data)
    assert full.status_code == 503 and full.headers["retry-after"] == "2"
    assert full.json() == {"detail": "job queue full: 1 jobs waiting (DEBLUR_JOB_MAX_QUEUED); retry later"}
    for job in (waiting, running_job):
        assert c.delete(f"/jobs/{job}").json()["status"] == "cancelled"


def test_ttl_and_store_limit_expire_results_oldest_first(small_model, tmp_path):
    env = {"DEBLUR_JOB_TTL_S": "1.5", "DEBLUR_JOB_STORE_MB": "0.4", "DEBLUR_MAX_UPLOAD_MB": "2"}
    big = png_bytes(photo(400, 300, seed=5))  # noise: ~0.27 MiB as PNG, and so is its result
    with running(small_model, tmp_path, **env) as server, httpx.Client(base_url=server.base, timeout=30) as c:
        first = submit(c, big).json()["id"]
        wait_status(c, first)
        assert c.get(f"/jobs/{first}/result").status_code == 200
        second = submit(c, big).json()["id"]
        wait_status(c, second)
        evicted = c.get(f"/jobs/{first}/result")
        assert evicted.status_code == 410 and "DEBLUR_JOB_STORE_MB" in evicted.json()["detail"]
        assert c.get(f"/jobs/{second}/result").status_code == 200
        time.sleep(1.6)
        assert c.get(f"/jobs/{second}/result").status_code == 410  # TTL
        assert c.get(f"/jobs/{second}").json()["status"] == "done"
        time.sleep(1.6)
        assert c.get(f"/jobs/{second}").status_code == 404  # forgotten after 2 x TTL
        deadline = time.monotonic() + 5
        while list(server.tmpdir.rglob("*")) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert list(server.tmpdir.rglob("*")) == []  # the sweeper removed the spool too


def test_after_the_jobs_nothing_leaked(api):
    server, c = api
    ids = [submit(c, png_bytes(photo(90, 60, seed=i))).json()["id"] for i in range(6)]
    for job in ids:
        wait_status(c, job)
        assert c.get(f"/jobs/{job}/result").status_code == 200
        assert c.delete(f"/jobs/{job}").status_code == 204
    assert [p for p in server.tmpdir.rglob("*") if p.is_file()] == []
    assert server.wait_fds(server.baseline_fds) <= server.baseline_fds
    assert server.proc.poll() is None and "Traceback" not in server.log()


def test_progress_reporter_throttles_writes_and_checks_cancel_every_batch():
    now = [0.0]
    writes: list[int] = []
    asked = []

    def cancelled() -> bool:
        asked.append(1)
        return False

    report = ProgressReporter(100, writes.append, cancelled, every_s=0.25, clock=lambda: now[0])
    for _ in range(50):  # 50 batches of 2 tiles, 0.05 s apart: 2.5 s in all
        now[0] += 0.05
        report(2)
    assert len(asked) == 50 and writes[-1] == 100
    assert 9 <= len(writes) <= 11 and writes == sorted(writes)  # every 0.25 s, plus the last


def test_metrics_label_job_routes_by_template_not_by_id(api):
    server, c = api
    tiles_before = server.metric("deblur_tiles_processed_total")
    job = submit(c, png_bytes(photo(150, 90))).json()["id"]
    assert wait_status(c, job)["progress"]["tiles_total"] == 6
    c.get(f"/jobs/{job}/result")
    c.get("/jobs/not-an-id")
    metrics = c.get("/metrics").text
    assert 'deblur_http_requests_total{route="/jobs",status="202"}' in metrics
    assert 'route="/jobs/{id}",status="200"' in metrics and 'route="/jobs/{id}/result",status="200"' in metrics
    assert job not in metrics
    assert server.metric("deblur_tiles_processed_total") == tiles_before + 6  # jobs' tiles count with /deblur's
    c.delete(f"/jobs/{job}")
