"""Faults against the real server: bad model files, CUDA asked for but absent, SIGTERM with requests in
flight, clients that vanish mid-upload or mid-inference, and a failure inside ONNX Runtime.
(A missing model file and bad settings are covered in test_service_e2e.py.)"""

from __future__ import annotations

import io
import re
import signal
import socket
import subprocess
import threading
import time

import httpx
import pytest
from fault_models import failing_model, heavy_model
from PIL import Image
from service_helpers import make_model, photo, png_bytes
from service_server import REPO, multipart, post_head, running, start
from test_service_e2e import SERVE, free_port, server_env


def smooth_png(size: int) -> bytes:
    """Cheap to upload (compresses well), as slow as any picture of its size to deblur."""
    return png_bytes(photo(size, size).resize((size, size)).convert("RGB"))


@pytest.fixture(scope="module")
def heavy(models_dir):
    return heavy_model(models_dir / "heavy.onnx")


def _junk(path, kind: str, small_model):
    if kind == "truncated":
        path.write_bytes(small_model.read_bytes()[:300])
    elif kind == "text":
        path.write_text("this is not a model\n")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "png":
        path.write_bytes(png_bytes(photo(8, 8)))
    elif kind == "directory":
        path.mkdir()
    elif kind == "wrong-input-name":
        make_model(path, input_name="x")
    elif kind == "fails-warm-up":
        failing_model(path, offset=10)
    return path


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("truncated", "cannot load model"),
        ("text", "cannot load model"),
        ("empty", "cannot load model"),
        ("png", "cannot load model"),
        ("directory", "model file not found"),
        ("wrong-input-name", "expected one input named 'blurry'"),
        ("fails-warm-up", "warm-up failed"),
    ],
)
def test_bad_model_file_exits_2_with_one_clear_line(tmp_path, small_model, kind, message):
    model = _junk(tmp_path / "model.onnx", kind, small_model)
    env = server_env(model, free_port())
    done = subprocess.run(SERVE, env=env, capture_output=True, text=True, timeout=60, cwd=REPO)  # never a hang
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1, lines
    assert "cannot start:" in lines[0] and message in lines[0] and "Traceback" not in lines[0]


def test_cuda_requested_without_a_gpu_runs_on_cpu_with_one_warning(small_model, tmp_path):
    with running(small_model, tmp_path, DEBLUR_PROVIDERS="cuda,cpu") as server:
        provider = httpx.get(f"{server.base}/model", timeout=10).json()["execution_provider"]
        r = httpx.post(f"{server.base}/deblur", files={"file": ("a.png", png_bytes(photo(20, 20)), "image/png")})
        log = server.log()
    assert r.status_code == 200 and r.headers["x-execution-provider"] == provider
    warnings = [line for line in log.splitlines() if "WARNING" in line and "CUDA" in line]
    if provider == "CUDAExecutionProvider":  # a machine with a usable GPU: nothing to warn about
        assert warnings == []
    else:
        assert provider == "CPUExecutionProvider" and len(warnings) == 1, log
        assert "running on CPUExecutionProvider" in warnings[0]


def test_sigterm_finishes_in_flight_requests_refuses_new_ones_and_exits_0(heavy, tmp_path):
    server = start(heavy, tmp_path, DEBLUR_MAX_CONCURRENCY="2", DEBLUR_MAX_UPLOAD_MB="8")
    image = smooth_png(640)
    answers: list[tuple[httpx.Response, float]] = []

    def post() -> None:
        r = httpx.post(f"{server.base}/deblur", files={"file": ("a.png", image, "image/png")}, timeout=120)
        answers.append((r, time.monotonic()))

    clients = [threading.Thread(target=post) for _ in range(2)]
    for c in clients:
        c.start()
    deadline = time.monotonic() + 30
    while server.metric("deblur_requests_in_flight") < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    server.proc.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    refused = False
    while not refused and time.monotonic() < signalled + 10:
        try:
            httpx.get(f"{server.base}/healthz", timeout=2)
            time.sleep(0.05)
        except (httpx.ConnectError, httpx.RemoteProtocolError):
            # the listening socket is closed at once; a connection the kernel accepted just before that
            # is closed unanswered (uvicorn's shutdown) -- either way the new request is not served
            refused = True
    for c in clients:
        c.join(120)
    assert refused and server.proc.wait(60) == 0
    assert len(answers) == 2
    for r, finished in answers:
        assert r.status_code == 200 and Image.open(io.BytesIO(r.content)).size == (640, 640)
        assert finished > signalled  # they really were in flight when the signal came


def _wait_gauge_zero(server, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while server.metric("deblur_requests_in_flight") != 0:
        assert time.monotonic() < deadline, "in-flight gauge never went back to 0"
        time.sleep(0.1)


def test_client_vanishing_mid_upload_or_mid_inference_frees_the_slot(heavy, tmp_path):
    env = {"DEBLUR_MAX_CONCURRENCY": "1", "DEBLUR_MAX_QUEUE": "0", "DEBLUR_MAX_UPLOAD_MB": "8"}
    with running(heavy, tmp_path, **env) as server:
        small = {"file": ("a.png", png_bytes(photo(32, 32)), "image/png")}
        assert httpx.post(f"{server.base}/deblur", files=small, timeout=60).status_code == 200
        time.sleep(0.3)
        baseline = server.fds()
        body, ctype = multipart(smooth_png(640))
        # 1) gone mid-upload: headers promise the whole body, half of it comes, then the socket closes
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(post_head(server.port, ctype, len(body)) + body[: len(body) // 2])
            time.sleep(0.3)
        _wait_gauge_zero(server)
        assert httpx.post(f"{server.base}/deblur", files=small, timeout=60).status_code == 200
        # 2) gone mid-inference: the whole request is sent, the client leaves while the model runs
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(post_head(server.port, ctype, len(body)) + body)
            deadline = time.monotonic() + 30
            while server.metric("deblur_requests_in_flight") < 1:
                assert time.monotonic() < deadline
                time.sleep(0.02)
            time.sleep(0.3)
        _wait_gauge_zero(server)
        r = httpx.post(f"{server.base}/deblur", files=small, timeout=60)
        assert r.status_code == 200  # MAX_CONCURRENCY=1, MAX_QUEUE=0: only possible if the slot was freed
        assert server.wait_fds(baseline) <= baseline
        assert list(server.tmpdir.iterdir()) == [] and "Traceback" not in server.log()


def test_onnx_runtime_failure_is_a_500_with_request_id_logged_once_and_the_service_stays_ready(models_dir, tmp_path):
    model = failing_model(models_dir / "failing.onnx")
    with running(model, tmp_path) as server:
        bright = png_bytes(Image.new("RGB", (40, 30), (255, 255, 255)))
        r = httpx.post(f"{server.base}/deblur", files={"file": ("a.png", bright, "image/png")},
                       headers={"X-Request-ID": "fault-42"}, timeout=60)
        assert r.status_code == 500 and r.json() == {"detail": "internal error while deblurring; request id fault-42"}
        assert r.headers["x-request-id"] == "fault-42"
        assert httpx.get(f"{server.base}/readyz", timeout=10).status_code == 200
        dark = png_bytes(Image.new("RGB", (40, 30)))
        assert httpx.post(f"{server.base}/deblur", files={"file": ("a.png", dark, "image/png")}).status_code == 200
        log = server.log()
    ours = [line for line in log.splitlines() if "deblur.app" in line and "fault-42" in line]
    assert len(ours) == 1 and "inference failed, request id fault-42" in ours[0], log
    assert len(re.findall(r" ERROR ", log)) == 1  # one record: the traceback (ORT's error chained to ours)
    assert "[E:onnxruntime" not in log  # ORT's own error line would report the same failure a second time
    assert "The above exception was the direct cause" in log and "InferenceError: ONNX Runtime failed" in log
