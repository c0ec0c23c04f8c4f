"""The real server (`deblur-serve`'s entry point) in a subprocess on 127.0.0.1, with what the hardening
tests measure from outside: open fds and RSS from /proc, the log, raw-socket requests, the exit code.

A module of its own (not a fixture in conftest) because hostile, fault and e2e tests each need servers
with different settings, several per module."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from test_service_e2e import REPO, SERVE, free_port, server_env


@dataclass
class Server:
    proc: subprocess.Popen
    port: int
    log_path: Path
    tmpdir: Path  # the server's TMPDIR: whatever it leaves there is a leak
    baseline_fds: int = 0  # open fds once warmed up, for leak checks

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def metric(self, name: str) -> float:
        for line in httpx.get(f"{self.base}/metrics", timeout=10).text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise AssertionError(f"metric {name} not found")

    def wait_fds(self, want: int, timeout: float = 10.0) -> int:
        """Open fds, polled until they are back to `want` (closing sockets takes the loop a moment)."""
        deadline = time.monotonic() + timeout
        while (now := self.fds()) > want and time.monotonic() < deadline:
            time.sleep(0.1)
        return now

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)


def start(model: Path, workdir: Path, wait_ready: bool = True, **env: str) -> Server:
    """Start a server; with wait_ready, return once /readyz is 200 (fail with the log if it exits)."""
    workdir.mkdir(parents=True, exist_ok=True)
    tmpdir = workdir / "tmp"
    tmpdir.mkdir(exist_ok=True)
    port = free_port()
    log_path = workdir / "server.log"
    full_env = server_env(model, port)
    full_env.update(TMPDIR=str(tmpdir), **env)
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            SERVE,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
    server = Server(proc, port, log_path, tmpdir)
    deadline = time.monotonic() + 60
    while wait_ready:
        if proc.poll() is not None:
            raise AssertionError(f"server exited {proc.returncode}:\n{server.log()}")
        try:
            if httpx.get(f"{server.base}/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise AssertionError(f"server not ready in 60 s:\n{server.log()}")
        time.sleep(0.1)
    return server


@contextmanager
def running(model: Path, workdir: Path, **env: str) -> Iterator[Server]:
    server = start(model, workdir, **env)
    try:
        yield server
    finally:
        try:
            server.stop(30)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait()


def raw_request(port: int, head: bytes, body_parts: list[bytes], pause: float = 0.0, timeout: float = 15.0) -> bytes:
    """Send bytes as given (lies included), optionally pausing between parts; return all the server said."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head)
        try:
            for part in body_parts:
                sock.sendall(part)
                time.sleep(pause)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed early: read what it said
        return read_all(sock)


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except (ConnectionResetError, TimeoutError):
        pass
    return b"".join(chunks)


def multipart(data: bytes, filename: str = "a.png", boundary: str = "hostile") -> tuple[bytes, str]:
    """One `file` part by hand (so the tests control every byte) and its content type."""
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        f"Content-Type: image/png\r\n\r\n"
    ).encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def post_head(port: int, content_type: str, length: int | None, path: str = "/deblur") -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", f"Content-Type: {content_type}"]
    lines.append(f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()
