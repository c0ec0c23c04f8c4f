"""The real server: `deblur-serve`'s entry point in a subprocess on a free 127.0.0.1 port."""

from __future__ import annotations

import http.client
import io
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image
from service_helpers import encoded, photo, png_bytes

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(model: Path, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEBLUR_")}
    env.update(
        DEBLUR_MODEL_PATH=str(model),
        DEBLUR_PROVIDERS="cpu",
        DEBLUR_TILE_SIZE="64",
        DEBLUR_TILE_OVERLAP="16",
        DEBLUR_MAX_UPLOAD_MB="1",
        DEBLUR_THREADS="1",
        PORT=str(port),
        HOST="127.0.0.1",
        PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""),
        **extra,
    )
    return env


SERVE = [sys.executable, "-c", "from service.serve import main; main()"]  # as the console script


@pytest.fixture(scope="module")
def server(small_model: Path, tmp_path_factory: pytest.TempPathFactory):
    port = free_port()
    log = (tmp_path_factory.mktemp("server") / "server.log").open("w+")
    proc = subprocess.Popen(SERVE, env=server_env(small_model, port), stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            log.seek(0)
            pytest.fail(f"server exited {proc.returncode}:\n{log.read()}")
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "server did not become ready"
        time.sleep(0.1)
    yield base, port
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0  # graceful shutdown exits 0
    log.close()


def test_png_and_jpeg_round_trip_with_headers_and_metrics(server):
    base, _ = server
    with httpx.Client(base_url=base, timeout=30) as c:
        r = c.post("/deblur", files={"file": ("a.png", png_bytes(photo(150, 90)), "image/png")})
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        assert Image.open(io.BytesIO(r.content)).size == (150, 90)
        for h in ("x-request-id", "x-model-version", "x-execution-provider", "x-process-time-ms", "x-tiles"):
            assert r.headers[h]
        r = c.post("/deblur", files={"file": ("b.jpg", encoded(photo(33, 71), "JPEG"), "image/jpeg")})
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
        img = Image.open(io.BytesIO(r.content))
        assert (img.format, img.size) == ("JPEG", (33, 71))
        assert c.post("/deblur", files={"file": ("c.txt", b"hello", "text/plain")}).status_code == 415
        assert c.get("/model").json()["execution_provider"] == "CPUExecutionProvider"
        metrics = c.get("/metrics").text
    assert 'deblur_http_requests_total{route="/deblur",status="200"} 2.0' in metrics
    assert 'deblur_http_requests_total{route="/deblur",status="415"} 1.0' in metrics
    tiles = float(re.search(r"^deblur_tiles_processed_total (\S+)$", metrics, re.M).group(1))
    assert tiles >= 2


def _raw(port: int, head: str, chunks: list[bytes]) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.putrequest("POST", "/deblur", skip_accept_encoding=True)
    for line in head.strip().splitlines():
        k, v = line.split(":", 1)
        conn.putheader(k.strip(), v.strip())
    conn.endheaders()
    try:
        for chunk in chunks:
            conn.send(chunk)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server may stop reading once it has answered 413
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp.status, body


def test_oversize_uploads_get_413_chunked_or_declared(server):
    _, port = server
    part = b"--x\r\nContent-Disposition: form-data; name=file; filename=a.png\r\n\r\n" + b"\0" * 65536
    chunk = b"%x\r\n%s\r\n" % (len(part), part)
    status, body = _raw(port, "Content-Type: multipart/form-data; boundary=x\nTransfer-Encoding: chunked", [chunk] * 20)
    assert status == 413 and b"limit" in body
    # a declared length over the limit is refused without waiting for the body
    status, body = _raw(port, "Content-Type: multipart/form-data; boundary=x\nContent-Length: 99999999", [])
    assert status == 413


def test_serve_exits_2_with_one_line_when_the_model_is_missing(tmp_path):
    env = server_env(tmp_path / "missing.onnx", free_port())
    done = subprocess.run(SERVE, env=env, capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 2
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and "model file not found" in lines[0] and "Traceback" not in lines[0]


def test_serve_exits_2_with_one_line_on_bad_settings(small_model):
    env = server_env(small_model, free_port(), DEBLUR_TILE_BATCH="lots")
    done = subprocess.run(SERVE, env=env, capture_output=True, text=True, timeout=60, cwd=REPO)
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1 and "tile_batch" in lines[0]
