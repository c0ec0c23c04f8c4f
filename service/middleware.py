"""Plumbing around the routes: request ids + metrics, the upload limit, the concurrency gate.

Why pure ASGI middleware (not BaseHTTPMiddleware): the upload limit has to see the body as it streams,
before the multipart parser has spooled 50 MB to disk, and chunked bodies have no Content-Length.
The same wrapper bounds the time a client may take to send its body (a slow trickle, or a
Content-Length larger than what is sent, would otherwise hold a connection forever).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

import anyio
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

Scope = dict[str, Any]
ASGIApp = Any

ROUTES = ("/", "/deblur", "/healthz", "/readyz", "/model", "/metrics", "/docs", "/openapi.json", "/admin/reload")
_JOB_ROUTE = re.compile(r"^/jobs(/[A-Za-z0-9_-]{22}(/events|/result)?)?$")  # label: the template, not the id


def route_label(path: str) -> str:
    if path in ROUTES:
        return path
    job = _JOB_ROUTE.match(path)
    return "other" if job is None else "/jobs" + ("/{id}" + (job[2] or "") if job[1] else "")
_REQUEST_ID = re.compile(r"^[\x21-\x7e]{1,128}$")


class Metrics:
    """Prometheus metrics in a registry of their own (one per app, so tests can build many apps)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("deblur_http_requests", "HTTP requests", ["route", "status"], registry=r)
        self.latency = Histogram(
            "deblur_http_request_duration_seconds",
            "HTTP request latency",
            ["route"],
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=r,
        )
        self.in_flight = Gauge("deblur_requests_in_flight", "POST /deblur requests in progress", registry=r)
        self.rejections = Counter("deblur_queue_rejections", "requests refused with 503 (busy)", registry=r)
        self.tiles = Counter("deblur_tiles_processed", "tiles run through the model", registry=r)
        self.megapixels = Counter("deblur_megapixels_processed", "megapixels deblurred", registry=r)
        self.model = Gauge("deblur_model_info", "loaded model", ["name", "version", "provider"], registry=r)
        # What an autoscaler reads (the queue) and what explains X-Process-Time-Ms (the stages): docs/scale-out.md
        self.queue_waiting = Gauge("deblur_queue_waiting", "requests waiting for an inference slot", registry=r)
        self.inference_running = Gauge("deblur_inference_running", "inferences running now", registry=r)
        self.stages = Histogram(
            "deblur_stage_duration_seconds",
            "POST /deblur time per stage: queue_wait, then decode + inference + encode (= X-Process-Time-Ms)",
            ["stage"],
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=r,
        )

    def watch(self, gate: ConcurrencyGate) -> None:
        """The queue gauges read the gate at scrape time, so they are exact without extra bookkeeping."""
        self.queue_waiting.set_function(lambda: gate.waiting)
        self.inference_running.set_function(lambda: gate.running)


async def send_json(send: Any, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]]) -> None:
    payload = json.dumps(body).encode()
    hdrs = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": hdrs + headers})
    await send({"type": "http.response.body", "body": payload})


class RequestContextMiddleware:
    """X-Request-ID on every response (client's if sane, else a uuid4), request counts and latency."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        rid = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        route = route_label(scope["path"])
        status = 500
        start = time.perf_counter()
        counted = route == "/deblur"
        if counted:
            self.metrics.in_flight.inc()

        async def send_with_id(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                message = {**message, "headers": [*headers, (b"x-request-id", rid.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if counted:
                self.metrics.in_flight.dec()
            self.metrics.requests.labels(route, str(status)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - start)


class BodyRefused(Exception):
    """Raised inside the app's receive() to stop it reading a body that is too large or too slow."""


class BodyLimitMiddleware:
    """413 for request bodies over the limit: at once from Content-Length, else while streaming;
    408 when the whole body has not arrived `timeout_s` seconds after the request started."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout_s: float | None = None) -> None:
        self.app, self.max_bytes, self.timeout_s = app, max_bytes, timeout_s

    def _detail(self) -> dict[str, str]:
        mib = self.max_bytes / (1024 * 1024)
        return {"detail": f"request body is larger than the {mib:g} MiB limit (DEBLUR_MAX_UPLOAD_MB)"}

    def _timeout_detail(self) -> dict[str, str]:
        return {"detail": f"request body not received within {self.timeout_s:g} s (DEBLUR_BODY_TIMEOUT_S)"}

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await send_json(send, 413, self._detail(), [(b"connection", b"close")])
            return
        received = 0
        refused: tuple[int, dict[str, str]] | None = None  # the answer owed once the body is refused
        started = False
        complete = False
        deadline = time.monotonic() + self.timeout_s if self.timeout_s else None

        async def limited_receive() -> dict[str, Any]:
            nonlocal received, refused, complete
            if complete:  # after the body, waiting for a disconnect is not limited
                return await receive()
            message = None
            with anyio.move_on_after(None if deadline is None else max(deadline - time.monotonic(), 0.0)):
                message = await receive()
            if message is None:
                refused = (408, self._timeout_detail())
                raise BodyRefused
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                complete = not message.get("more_body", False)
                if received > self.max_bytes:
                    refused = (413, self._detail())
                    raise BodyRefused
            return message

        async def guarded_send(message: dict[str, Any]) -> None:
            nonlocal started
            if refused:  # whatever the app answers after the refusal, the client gets our 413/408
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        with suppress(BodyRefused):
            await self.app(scope, limited_receive, guarded_send)
        if refused and not started:
            await send_json(send, *refused, [(b"connection", b"close")])


class Busy(Exception):
    """The gate is full: MAX_CONCURRENCY running and MAX_QUEUE waiting."""


class ConcurrencyGate:
    """At most `limit` holders run at once and at most `queue` wait; the rest are refused at once.

    All bookkeeping happens on the event loop thread, so plain integers are race-free.
    """

    def __init__(self, limit: int, queue: int) -> None:
        self.limit, self.queue = limit, queue
        self.running = 0
        self.waiting = 0
        self._sem: asyncio.Semaphore | None = None

    @asynccontextmanager
    async def slot(self, refuse_when_full: bool = True) -> AsyncIterator[None]:
        """A running place; `refuse_when_full=False` waits instead (the jobs worker: its queue is the jobs')."""
        if refuse_when_full and self.running + self.waiting >= self.limit + self.queue:
            raise Busy(f"server busy: {self.running} running, {self.waiting} waiting; retry later")
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.limit)
        self.waiting += 1
        try:
            await self._sem.acquire()
        finally:
            self.waiting -= 1
        self.running += 1
        try:
            yield
        finally:
            self.running -= 1
            self._sem.release()
