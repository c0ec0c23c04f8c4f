"""deploy/nginx in front of two real replicas, with Debian's nginx, all on 127.0.0.1.

`nginx -t` on every rendering compose can produce (plain, TLS) and on a broken one (so that passing
means something); then what the proxy promises: X-Request-ID passed through, nginx's own errors as
JSON, a trickling header cut, a dead or busy replica's request retried on the other, a 503 with
Retry-After when all are busy, and TLS with a mounted certificate."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from service_helpers import photo, png_bytes
from service_server import Server, start

from bench.proxy import Nginx, ProxyError, nginx_binary, parse_access

REPLICA = {"DEBLUR_MAX_CONCURRENCY": "1", "DEBLUR_MAX_QUEUE": "0", "DEBLUR_MAX_UPLOAD_MB": "50"}
SMALL = png_bytes(photo(64, 48))


def require_nginx() -> None:
    try:
        nginx_binary()
    except ProxyError as exc:
        if os.geteuid() == 0:  # CI runs as root: `make test` installs nginx, so missing is a failure
            pytest.fail(f"{exc}")
        pytest.skip(f"{exc}; not root, so it cannot be installed here")


@pytest.fixture(scope="module")
def replicas(small_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Server]]:
    require_nginx()
    servers = []
    try:
        for i in range(2):
            servers.append(start(small_model, tmp_path_factory.mktemp(f"replica{i}"), **REPLICA))
        yield servers
    finally:
        for server in servers:
            server.stop()


def wait_running(server: Server, want: float, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while server.metric("deblur_inference_running") != want:
        assert time.monotonic() < deadline, f"replica never reached {want} running inference(s)"
        time.sleep(0.02)


@pytest.fixture(scope="module")
def big() -> bytes:
    return png_bytes(photo(2600, 1800))


def occupy(server: Server, big: bytes) -> threading.Thread:
    """A large upload straight to one replica, so its only slot is taken for a few seconds."""
    thread = threading.Thread(target=lambda: httpx.post(f"{server.base}/deblur", timeout=120,
                                                        files={"file": ("big.png", big, "image/png")}))
    thread.start()
    wait_running(server, 1)
    return thread


def post(url: str, **headers: str) -> httpx.Response:
    return httpx.post(f"{url}/deblur", files={"file": ("a.png", SMALL, "image/png")}, headers=headers, timeout=60)


def test_nginx_t_accepts_the_rendered_config_and_rejects_a_broken_one() -> None:
    require_nginx()
    for settings in ({}, {"DEBLUR_UPSTREAM": "api:8000", "NGINX_LISTEN": "80", "NGINX_RESOLVER": "127.0.0.11"}):
        proxy = Nginx([8001, 8002], **settings)
        try:
            checked = proxy.test()
        finally:
            proxy.cleanup()
        assert checked.returncode == 0 and "test is successful" in checked.stderr, checked.stderr
    broken = Nginx([8001], NGINX_CLIENT_HEADER_TIMEOUT="ten seconds")
    try:
        checked = broken.test()
    finally:
        broken.cleanup()
    assert checked.returncode != 0 and "client_header_timeout" in checked.stderr, checked.stderr


def test_request_id_passes_through_and_is_logged(replicas: list[Server]) -> None:
    with Nginx([s.port for s in replicas]) as proxy:
        given = post(proxy.url, **{"X-Request-ID": "client-id-42"})
        made = post(proxy.url)
        logged = [parse_access(line) for line in proxy.access_lines(2)]
    assert given.status_code == 200 and given.headers["x-request-id"] == "client-id-42"
    assert made.status_code == 200 and len(made.headers["x-request-id"]) == 32  # nginx's $request_id
    assert [entry["rid"] for entry in logged] == ["client-id-42", made.headers["x-request-id"]]
    assert all(entry["upstream"].startswith("127.0.0.1:") for entry in logged)


def test_body_over_the_limit_is_refused_by_nginx_as_json(replicas: list[Server]) -> None:
    with Nginx([s.port for s in replicas], max_upload_mb=1) as proxy:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
            sock.sendall(b"POST /deblur HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                         b"Content-Length: %d\r\n\r\n" % (2 * 1024 * 1024))
            answer = sock.recv(65536).decode()
        (entry,) = [parse_access(line) for line in proxy.access_lines(1)]
    assert answer.startswith("HTTP/1.1 413") and "application/json" in answer, answer
    assert '{"detail": "request body is larger than the 1 MiB limit (DEBLUR_MAX_UPLOAD_MB)"}' in answer
    assert entry["upstream"] == "-"  # no replica saw it


def test_a_client_trickling_its_headers_is_cut(replicas: list[Server]) -> None:
    with Nginx([s.port for s in replicas], NGINX_CLIENT_HEADER_TIMEOUT="1s") as proxy:
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
            sock.sendall(b"POST /deblur HTTP/1.1\r\nHost: x\r\n")
            closed = None
            for _ in range(40):  # one header byte every 0.1 s: never done within 1 s
                try:
                    sock.sendall(b"X")
                    if sock.recv(1, socket.MSG_DONTWAIT) == b"":
                        closed = time.monotonic() - started
                        break
                except BlockingIOError:
                    pass
                except (BrokenPipeError, ConnectionResetError):
                    closed = time.monotonic() - started
                    break
                time.sleep(0.1)
    assert closed is not None and 0.9 < closed < 2.5, closed


def test_dead_and_busy_replicas_are_skipped_and_all_busy_is_a_planned_503(replicas: list[Server], big: bytes) -> None:
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))  # a port nobody listens on: connection refused
    dead_port = dead.getsockname()[1]
    with Nginx([dead_port, *(s.port for s in replicas)]) as proxy:
        first = post(proxy.url)
        busy = occupy(replicas[0], big)
        retried = [post(proxy.url) for _ in range(2)]
        busy.join()
        both = [occupy(r, big) for r in replicas]  # started back to back: each holds its slot for seconds
        refused = post(proxy.url)
        for thread in both:
            thread.join()
        logged = [parse_access(line) for line in proxy.access_lines(4)]
    dead.close()
    assert first.status_code == 200 and f"127.0.0.1:{dead_port}, " in logged[0]["upstream"]
    assert [r.status_code for r in retried] == [200, 200]
    assert any(e["upstream_status"].startswith("503, ") for e in logged[1:3]), logged  # busy one, then the other
    # the last busy replica's own 503, or, once every replica is marked failed, nginx's: both say retry
    assert refused.status_code == 503 and refused.headers["retry-after"] == "2", refused.text
    assert refused.json()["detail"].startswith(("server busy", "no API replica is free")), refused.text


def test_tls_with_a_mounted_certificate(replicas: list[Server], tmp_path: Path) -> None:
    openssl = shutil.which("openssl")
    assert openssl, "openssl (Debian) is needed to make the test certificate"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(tmp_path / "tls.key"),
                    "-out", str(tmp_path / "tls.crt")], check=True, capture_output=True)
    tmp_path.chmod(0o755)
    (tmp_path / "tls.key").chmod(0o644)
    with Nginx([s.port for s in replicas], tls_dir=tmp_path) as proxy:
        trusted = ssl.create_default_context(cafile=str(tmp_path / "tls.crt"))
        answer = httpx.post(f"https://127.0.0.1:{proxy.tls_port}/deblur", verify=trusted,
                            files={"file": ("a.png", SMALL, "image/png")}, timeout=60)
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
