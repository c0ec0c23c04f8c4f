"""The hostile-input table (hostile_cases.py) against POST /jobs on the real server: every refusal has
/deblur's status and detail before anything is queued, every accepted upload's result passes the same
check as /deblur's answer, and afterwards the server is ready, fds are at the baseline and TMPDIR is empty.

Same limits as test_service_hostile.py: DEBLUR_MAX_UPLOAD_MB=3, DEBLUR_MAX_MEGAPIXELS=4, body timeout 2 s."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from hostile_cases import CASES, Case
from hostile_payloads import noise_png
from jobs_client import wait_status
from service_helpers import photo, png_bytes
from service_server import multipart, post_head, raw_request, running
from test_service_hostile import BODY_TIMEOUT, assert_no_internals


@pytest.fixture(scope="module")
def hostile_jobs(small_model, tmp_path_factory):
    env = {"DEBLUR_MAX_UPLOAD_MB": "3", "DEBLUR_MAX_MEGAPIXELS": "4", "DEBLUR_BODY_TIMEOUT_S": str(BODY_TIMEOUT),
           "DEBLUR_JOB_MAX_QUEUED": "4"}
    with running(small_model, tmp_path_factory.mktemp("hostile-jobs"), **env) as server:
        with httpx.Client(base_url=server.base, timeout=30) as c:  # warm up every code path once
            job = c.post("/jobs", files={"file": ("a.png", noise_png(600, 600), "image/png")}).json()["id"]
            assert wait_status(c, job)["status"] == "done"
            assert c.delete(f"/jobs/{job}").status_code == 204
        time.sleep(0.5)
        server.baseline_fds = server.fds()
        yield server


def as_job(request: dict) -> dict:
    url = request["url"]
    return {**request, "url": "/jobs" + url[len("/deblur"):]} if url.startswith("/deblur") else request


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input_against_jobs(hostile_jobs, case: Case):
    with httpx.Client(base_url=hostile_jobs.base, timeout=60) as c:
        r = c.request(**as_job(case.request()))
        assert r.headers["x-request-id"]
        if case.status != 200:
            assert r.status_code == case.status, r.text[:300]
            body = r.json()
            assert set(body) == {"detail"} and case.detail in body["detail"], body
            assert_no_internals(r.text)
            return
        assert r.status_code == 202, r.text[:300]
        job = r.json()["id"]
        assert wait_status(c, job)["status"] == "done"
        result = c.get(f"/jobs/{job}/result")
        assert result.status_code == 200
        case.check(result)
        assert c.delete(f"/jobs/{job}").status_code == 204


RAW = {  # name: (declared length - real length, chunks, pause s, status, detail)
    "content-length-too-big-then-stall": (+500, 1, 0.0, 408, "not received within 2 s (DEBLUR_BODY_TIMEOUT_S)"),
    "content-length-too-small": (-50, 1, 0.0, 422, "file: Field required"),
    "slow-trickle-past-deadline": (0, 60, 0.1, 408, "not received within 2 s"),
}


@pytest.mark.parametrize("name", RAW)
def test_content_length_lies_and_slow_bodies_against_jobs(hostile_jobs, name):
    delta, pieces, pause, status, detail = RAW[name]
    body, ctype = multipart(png_bytes(photo(40, 30)))
    head = post_head(hostile_jobs.port, ctype, len(body) + delta, path="/jobs")
    head = head.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")
    step = -(-len(body) // pieces)
    start = time.monotonic()
    answer = raw_request(hostile_jobs.port, head, [body[i : i + step] for i in range(0, len(body), step)], pause)
    assert time.monotonic() - start < BODY_TIMEOUT + 5
    status_line, _, payload = answer.partition(b"\r\n\r\n")
    assert int(status_line.split(b" ", 2)[1]) == status and detail in json.loads(payload)["detail"], answer[:300]


def test_after_the_table_nothing_leaked_and_nothing_is_queued(hostile_jobs):
    with httpx.Client(base_url=hostile_jobs.base, timeout=10) as c:
        assert c.get("/readyz").status_code == 200
        ok = c.post("/jobs", files={"file": ("a.png", png_bytes(photo(8, 8)), "image/png")})
        assert ok.status_code == 202  # the queue is empty again: nothing refused was queued
        assert wait_status(c, ok.json()["id"])["status"] == "done"
        assert c.delete(f"/jobs/{ok.json()['id']}").status_code == 204
    deadline = time.monotonic() + 8  # the sweeper removes the empty spool folder within 5 s
    while list(hostile_jobs.tmpdir.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert list(hostile_jobs.tmpdir.iterdir()) == []
    assert hostile_jobs.wait_fds(hostile_jobs.baseline_fds) <= hostile_jobs.baseline_fds
    assert hostile_jobs.proc.poll() is None and "Traceback" not in hostile_jobs.log()
