"""Small helpers the job tests share: submit, wait for a status, read an SSE stream, and the reference
bytes /deblur answers for the same upload."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx


def submit(client: httpx.Client, data: bytes, name: str = "a.png", query: str = "", **kw: Any) -> httpx.Response:
    return client.post(f"/jobs{query}", files={"file": (name, data, "image/png")}, **kw)


def wait_status(client: httpx.Client, job_id: str, want: tuple[str, ...] = ("done", "failed", "cancelled"),
                timeout: float = 60, **kw: Any) -> dict[str, Any]:
    """Poll GET /jobs/{id} until its status is one of `want` (fails with the last view after `timeout`)."""
    deadline = time.monotonic() + timeout
    while True:
        view = client.get(f"/jobs/{job_id}", **kw).json()
        if view.get("status") in want:
            return view
        assert time.monotonic() < deadline, f"job still {view} after {timeout} s"
        time.sleep(0.05)


def wait_tiles(client: httpx.Client, job_id: str, at_least: int, timeout: float = 60, **kw: Any) -> dict[str, Any]:
    """Poll until the job is running with at least `at_least` tiles done."""
    deadline = time.monotonic() + timeout
    while True:
        view = client.get(f"/jobs/{job_id}", **kw).json()
        if view["status"] == "running" and view["progress"]["tiles_done"] >= at_least:
            return view
        assert view["status"] in ("queued", "running") and time.monotonic() < deadline, view
        time.sleep(0.02)


def events(client: httpx.Client, job_id: str, **kw: Any) -> list[tuple[str, dict[str, Any]]]:
    """Every (event, data) of GET /jobs/{id}/events until the server closes the stream."""
    out: list[tuple[str, dict[str, Any]]] = []
    with client.stream("GET", f"/jobs/{job_id}/events", **kw) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        event = None
        for line in r.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                out.append((event or "message", json.loads(line[6:])))
    return out


def deblur(client: httpx.Client, data: bytes, name: str = "a.png", query: str = "", **kw: Any) -> httpx.Response:
    r = client.post(f"/deblur{query}", files={"file": (name, data, "image/png")}, **kw)
    assert r.status_code == 200, r.text
    return r


SAME_HEADERS = ("content-type", "content-disposition", "x-model-version", "x-execution-provider", "x-tiles")
