"""`deblur --server URL FILES…`: the same command, deblurred by a running service through its jobs API.

Why jobs and not POST /deblur: a job survives a proxy's request timeout, reports tiles done / total (the
same progress bar as a local run) and a busy server answers 503 with Retry-After, which this client
waits out. The server runs the same `process_bytes`, so with the server's settings the outputs are the
bytes a local run writes; each job is deleted on the server once its result is saved.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx

from .images import EncodedImage
from .pipeline import Processed, TilesCallback

FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/webp": "webp"}


class RemoteError(RuntimeError):
    """One input failed on the server (its detail), or the server could not be reached."""


class ServerUnusable(Exception):
    """The server cannot be used at all (unreachable, wrong key): the command stops with status 2."""


def _detail(r: httpx.Response) -> str:
    try:
        return f"{r.json()['detail']} ({r.status_code})"
    except (ValueError, KeyError, TypeError):
        return f"HTTP {r.status_code}"


class RemoteDeblur:
    """Deblurs one encoded image on the server: submit (retrying 503), follow the SSE stream, fetch, delete."""

    def __init__(self, url: str, api_key: str | None = None, retries: int = 30, client: httpx.Client | None = None):
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.url, self.retries = url.rstrip("/"), retries
        # a read may wait up to the server's SSE keep-alive (15 s) between events
        self.client = client or httpx.Client(base_url=self.url, headers=headers, timeout=httpx.Timeout(60.0))
        self.where = self.url

    def check(self) -> None:
        """GET /model once, so that a wrong URL or key is one clear line before any work."""
        try:
            r = self.client.get("/model")
        except httpx.HTTPError as exc:
            raise ServerUnusable(f"cannot reach {self.url}: {exc}") from None
        if r.status_code == 401:
            raise ServerUnusable(f"{self.url} needs an API key: --api-key KEY or DEBLUR_API_KEY ({_detail(r)})")
        if r.status_code != 200:
            raise ServerUnusable(f"{self.url}/model answered {_detail(r)}")
        self.where = f"{self.url} ({r.json().get('execution_provider', '?')})"

    def __call__(
        self, data: bytes, name: str, fmt: str | None, quality: int | None, on_tiles: TilesCallback
    ) -> Processed:
        try:
            job = self._submit(data, name, fmt, quality)
            final = self._follow(job, on_tiles)
            if final["status"] != "done":
                raise RemoteError(f"job {final['status']} on the server: {final.get('error') or 'no result'}")
            r = self.client.get(f"/jobs/{job['id']}/result")
            if r.status_code != 200:
                raise RemoteError(f"result: {_detail(r)}")
            self.client.delete(f"/jobs/{job['id']}")  # the server need not keep what is saved here
        except httpx.HTTPError as exc:
            raise RemoteError(f"connection to {self.url} failed: {exc}") from None
        media = r.headers.get("content-type", "").split(";")[0]
        encoded = EncodedImage(r.content, FORMATS.get(media, "png"), media, r.headers.get("x-format-fallback"))
        seconds = float(r.headers.get("x-process-time-ms", "0")) / 1000
        return Processed(encoded, final["width"], final["height"], int(r.headers.get("x-tiles", "0")), seconds)

    def _submit(self, data: bytes, name: str, fmt: str | None, quality: int | None) -> dict[str, Any]:
        params = {k: v for k, v in {"format": fmt, "quality": quality}.items() if v is not None}
        for attempt in range(self.retries + 1):
            r = self.client.post("/jobs", params=params, files={"file": (name, data, "application/octet-stream")})
            if r.status_code == 202:
                return r.json()
            if r.status_code != 503 or attempt == self.retries:
                break
            time.sleep(float(r.headers.get("retry-after", "2")))  # a full queue or a loading model
        raise RemoteError(_detail(r) + (f" after {self.retries} retries" if r.status_code == 503 else ""))

    def _follow(self, job: dict[str, Any], on_tiles: TilesCallback) -> dict[str, Any]:
        """The job's final state, reporting tiles as they are done; polls if the stream breaks off."""
        latest = job
        try:
            for event, data in self._events(job["id"]):
                latest = data if "status" in data else latest
                on_tiles(latest["progress"]["tiles_done"], latest["progress"]["tiles_total"])
                if event in ("done", "failed", "cancelled"):
                    return latest
                if event == "error":
                    raise RemoteError(data.get("detail", "the job's event stream failed"))
        except httpx.TransportError:
            pass  # e.g. a proxy cut the stream: ask for the status instead
        while latest["status"] in ("queued", "running"):
            time.sleep(0.5)
            r = self.client.get(f"/jobs/{job['id']}")
            if r.status_code != 200:
                raise RemoteError(f"job status: {_detail(r)}")
            latest = r.json()
            on_tiles(latest["progress"]["tiles_done"], latest["progress"]["tiles_total"])
        return latest

    def _events(self, job_id: str) -> Iterator[tuple[str, dict[str, Any]]]:
        with self.client.stream("GET", f"/jobs/{job_id}/events") as r:
            if r.status_code != 200:
                raise RemoteError(f"job events: {_detail(r)}")
            event = "message"
            for line in r.iter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    yield event, json.loads(line[6:])

    def close(self) -> None:
        self.client.close()
