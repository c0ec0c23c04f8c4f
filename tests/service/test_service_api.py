"""HTTP API in-process (fastapi TestClient): contract, headers, statuses for bad input, the gate."""

from __future__ import annotations

import asyncio
import io
import logging
import threading
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from service_helpers import encoded, photo, png_bytes

from service.app import create_app
from service.engine import Engine
from service.middleware import BodyLimitMiddleware, Busy, ConcurrencyGate
from service.settings import Settings


def upload(data: bytes, name: str = "photo.png", ctype: str = "image/png") -> dict:
    return {"file": (name, data, ctype)}


@pytest.fixture(scope="module")
def client(engine: Engine):
    with TestClient(create_app(Settings(max_upload_mb=1, providers="cpu"), engine)) as c:
        yield c


class WrappedEngine:
    """The real engine with a hook in deblur (to block it or make it fail)."""

    def __init__(self, inner: Engine, fail: bool = False) -> None:
        self.inner, self.fail = inner, fail
        self.entered, self.release = threading.Event(), threading.Event()

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def deblur(self, rgb, on_progress=None):
        self.entered.set()
        if self.fail:
            raise RuntimeError("simulated ONNX Runtime failure")
        self.release.wait(10)
        return self.inner.deblur(rgb, on_progress)


def test_png_in_png_out_with_headers(client, engine):
    r = client.post("/deblur", files=upload(png_bytes(photo(100, 70))), headers={"X-Request-ID": "abc-123"})
    assert r.status_code == 200
    assert r.headers["content-type"] == "image/png"
    assert r.headers["x-request-id"] == "abc-123"
    assert r.headers["x-model-version"] == "t1"
    assert r.headers["x-execution-provider"] == "CPUExecutionProvider"
    assert int(r.headers["x-tiles"]) == len(engine.plan(70, 100))
    assert float(r.headers["x-process-time-ms"]) >= 0
    assert 'filename="photo-deblurred.png"' in r.headers["content-disposition"]
    out = Image.open(io.BytesIO(r.content))
    assert (out.format, out.size, out.mode) == ("PNG", (100, 70), "RGB")


def test_formats_and_quality(client):
    r = client.post("/deblur", files=upload(encoded(photo(40, 30), "JPEG"), "a.jpg", "image/jpeg"))
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    r = client.post("/deblur?format=webp&quality=50", files=upload(png_bytes(photo(40, 30))))
    assert r.status_code == 200 and r.headers["content-type"] == "image/webp"
    assert Image.open(io.BytesIO(r.content)).size == (40, 30)
    r = client.post("/deblur?format=jpeg", files=upload(png_bytes(photo(40, 30).convert("RGBA"))))
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert "transparency" in r.headers["x-format-fallback"]


def test_exif_rotated_upload_comes_back_upright(client):
    exif = Image.Exif()
    exif[0x0112] = 6
    r = client.post("/deblur", files=upload(encoded(photo(40, 20), "JPEG", exif=exif.tobytes()), "r.jpg"))
    assert r.status_code == 200 and Image.open(io.BytesIO(r.content)).size == (20, 40)


def _bomb() -> bytes:
    from test_service_images import png_header_only

    return png_header_only(100_000, 100_000)


@pytest.mark.parametrize(
    ("kwargs", "status", "detail"),
    [
        ({}, 422, "file: Field required"),
        ({"data": {"file": "not a file"}}, 422, "file"),
        ({"files": {"image": ("a.png", b"x", "image/png")}}, 422, "file: Field required"),
        ({"content": b"", "headers": {"content-type": "multipart/form-data; boundary=x"}}, 422, "file"),
        ({"content": b"abc", "headers": {"content-type": "multipart/form-data"}}, 400, "boundary"),
        ({"files": upload(b"")}, 400, "empty"),
        ({"files": upload(b"just some text\n", "a.txt", "text/plain")}, 415, "not a decodable image"),
        ({"files": upload(b"<html><body>hi</body></html>", "a.png")}, 415, "not a decodable image"),
        ({"files": upload(png_bytes(photo(64, 64))[:300])}, 415, "truncated"),
        ({"files": upload(_bomb())}, 413, "too large"),
        ({"files": upload(b"\0" * (1024 * 1024 + 10))}, 413, "limit"),
    ],
)
def test_bad_requests_get_exact_statuses(client, kwargs, status, detail):
    r = client.post("/deblur", **kwargs)
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"detail"} and isinstance(body["detail"], str) and detail in body["detail"]
    assert r.headers["x-request-id"]


@pytest.mark.parametrize("query", ["format=gif", "quality=0", "quality=101", "quality=abc"])
def test_bad_parameters_are_422(client, query):
    r = client.post(f"/deblur?{query}", files=upload(png_bytes(photo(8, 8))))
    assert r.status_code == 422 and isinstance(r.json()["detail"], str)


def test_chunked_upload_without_length_is_cut_off(client):
    def body():
        yield b"--x\r\nContent-Disposition: form-data; name=file; filename=a.png\r\n\r\n"
        for _ in range(300):
            yield b"\0" * 8192

    r = client.post("/deblur", content=body(), headers={"content-type": "multipart/form-data; boundary=x"})
    assert r.status_code == 413 and "limit" in r.json()["detail"]


def test_declared_length_over_limit_is_refused_before_reading():
    received = []

    async def app(scope, receive, send):  # pragma: no cover - must not be reached
        raise AssertionError("app called")

    async def receive():
        received.append(1)
        return {"type": "http.request", "body": b"", "more_body": False}

    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "path": "/deblur", "headers": [(b"content-length", b"999999999")]}
    asyncio.run(BodyLimitMiddleware(app, 1000)(scope, receive, send))
    assert sent[0]["status"] == 413 and not received


def test_request_id_is_made_when_missing_or_insane(client):
    for given in (None, "x" * 129, "has space", "tab\there"):
        headers = {"X-Request-ID": given} if given else {}
        rid = client.get("/healthz", headers=headers).headers["x-request-id"]
        assert rid != given and len(rid) == 32


def test_health_ready_model_and_page(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200
    m = client.get("/model").json()
    assert m["name"] == "tiny-test" and m["version"] == "t1" and m["trained"] is False
    assert m["execution_provider"] == "CPUExecutionProvider" and len(m["sha256"]) == 64
    assert m["tiling"] == {"tile_size": 64, "overlap": 16, "batch": 4}
    assert m["input"]["size_multiple"] == 8 and m["input"]["name"] == "blurry"
    assert m["metrics"] == {"psnr": 12.5, "ssim": 0.5}
    page = client.get("/")
    assert page.status_code == 200 and "<form" in page.text and "/jobs" in page.text  # the page submits jobs
    assert "http" not in page.text.split("<script>")[1]  # no CDN: the script loads nothing external


def test_openapi_documents_every_error(client):
    spec = client.get("/openapi.json").json()
    responses = spec["paths"]["/deblur"]["post"]["responses"]
    assert {"200", "400", "413", "415", "422", "500", "503"} <= set(responses)
    assert "Retry-After" in responses["503"]["headers"]
    assert set(responses["200"]["content"]) == {"image/png", "image/jpeg", "image/webp"}
    assert responses["422"]["content"]["application/json"]["schema"]["$ref"].endswith("ErrorBody")
    assert "503" in spec["paths"]["/readyz"]["get"]["responses"]


def test_metrics_count_requests_tiles_and_pixels(engine):
    with TestClient(create_app(Settings(providers="cpu"), engine)) as c:
        c.post("/deblur", files=upload(png_bytes(photo(100, 50))))
        c.post("/deblur", files=upload(b"text"))
        text = c.get("/metrics").text
    assert 'deblur_http_requests_total{route="/deblur",status="200"} 1.0' in text
    assert 'deblur_http_requests_total{route="/deblur",status="415"} 1.0' in text
    assert f"deblur_tiles_processed_total {float(len(engine.plan(50, 100)))}" in text
    assert "deblur_megapixels_processed_total 0.005" in text
    assert 'deblur_http_request_duration_seconds_count{route="/deblur"} 2.0' in text
    assert "deblur_requests_in_flight 0.0" in text


def test_busy_gate_answers_503_with_retry_after(engine):
    slow = WrappedEngine(engine)
    app = create_app(Settings(providers="cpu", max_concurrency=1, max_queue=0), slow)  # type: ignore[arg-type]
    with TestClient(app) as c:
        first: dict = {}
        t = threading.Thread(target=lambda: first.update(r=c.post("/deblur", files=upload(png_bytes(photo())))))
        t.start()
        assert slow.entered.wait(10)
        r = c.post("/deblur", files=upload(png_bytes(photo())))
        slow.release.set()
        t.join(10)
        assert r.status_code == 503 and r.headers["retry-after"] and "busy" in r.json()["detail"]
        assert first["r"].status_code == 200
        assert "deblur_queue_rejections_total 1.0" in c.get("/metrics").text


def test_inference_failure_is_a_500_with_request_id_and_stays_ready(engine, caplog):
    app = create_app(Settings(providers="cpu"), WrappedEngine(engine, fail=True))  # type: ignore[arg-type]
    with TestClient(app, raise_server_exceptions=False) as c:
        caplog.set_level(logging.ERROR, logger="deblur.app")
        r = c.post("/deblur", files=upload(png_bytes(photo())), headers={"X-Request-ID": "req-42"})
        assert r.status_code == 500 and "req-42" in r.json()["detail"]
        assert "simulated" not in r.text  # no internals in the answer
        logged = [rec for rec in caplog.records if rec.name == "deblur.app"]
        assert len(logged) == 1 and logged[0].exc_info is not None
        assert c.get("/readyz").status_code == 200


def _wait_ready(c: TestClient, want: int, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        r = c.get("/readyz")
        if r.status_code == want and (want == 200 or "not loaded:" in r.json()["detail"]):
            return r
        assert time.monotonic() < deadline, r.text
        time.sleep(0.05)


def test_model_loads_in_the_background(small_model):
    app = create_app(Settings(model_path=small_model, providers="cpu", tile_size=32, tile_overlap=8))
    with TestClient(app) as c:
        _wait_ready(c, 200)
        assert c.post("/deblur", files=upload(png_bytes(photo(20, 20)))).status_code == 200


def test_missing_model_keeps_the_app_not_ready(tmp_path):
    with TestClient(create_app(Settings(model_path=tmp_path / "missing.onnx", providers="cpu"))) as c:
        r = _wait_ready(c, 503)
        assert "not found" in r.json()["detail"] and r.headers["retry-after"]
        assert c.get("/healthz").status_code == 200
        r = c.post("/deblur", files=upload(png_bytes(photo(8, 8))))
        assert r.status_code == 503 and c.get("/model").status_code == 503


def test_cors_is_off_by_default_and_configurable(engine, client):
    pre = {"Origin": "http://example.com", "Access-Control-Request-Method": "POST"}
    assert "access-control-allow-origin" not in client.options("/deblur", headers=pre).headers
    with TestClient(create_app(Settings(providers="cpu", cors_origins="http://example.com"), engine)) as c:
        r = c.options("/deblur", headers=pre)
        assert r.headers["access-control-allow-origin"] == "http://example.com"


def test_gate_counts_running_and_waiting():
    async def scenario() -> None:
        gate = ConcurrencyGate(limit=1, queue=1)
        release = asyncio.Event()

        async def hold() -> None:
            async with gate.slot():
                await release.wait()

        first, second = asyncio.create_task(hold()), asyncio.create_task(hold())
        await asyncio.sleep(0.01)
        assert (gate.running, gate.waiting) == (1, 1)
        with pytest.raises(Busy):
            async with gate.slot():
                pass
        second.cancel()  # a client that gives up while queued frees its place
        await asyncio.sleep(0.01)
        assert gate.waiting == 0
        release.set()
        await first
        assert (gate.running, gate.waiting) == (0, 0)

    asyncio.run(scenario())


def test_output_pixels_are_the_engine_output(client, engine):
    src = photo(50, 40)
    r = client.post("/deblur", files=upload(png_bytes(src)))
    expected = engine.deblur(np.asarray(src, np.float32) / 255).image
    got = np.asarray(Image.open(io.BytesIO(r.content)), np.float32) / 255
    assert np.abs(got - expected).max() <= 0.5 / 255 + 1e-6


def test_unexpected_errors_outside_inference_are_json_500(engine):
    app = create_app(Settings(providers="cpu"), engine)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("internal detail")

    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.get("/boom", headers={"X-Request-ID": "rid-7"})
    assert r.status_code == 500 and r.json() == {"detail": "internal error; request id rid-7"}


def test_a_model_not_loaded_is_the_same_503_on_every_route_that_needs_it(tmp_path):
    with TestClient(create_app(Settings(model_path=tmp_path / "missing.onnx", providers="cpu"))) as c:
        _wait_ready(c, 503)
        answers = [c.post("/deblur", files=upload(png_bytes(photo(8, 8)))), c.get("/model"),
                   c.post("/jobs", files=upload(png_bytes(photo(8, 8))))]
    for r in answers:
        assert (r.status_code, r.json(), r.headers["retry-after"]) == (503, {"detail": "model not loaded yet"}, "2")


def test_405_allow_names_every_method_on_the_path(client):
    assert client.get("/deblur").headers["allow"] == "POST"
    assert client.put("/jobs/" + "A" * 22).headers["allow"] == "DELETE, GET"  # two routes, one path
