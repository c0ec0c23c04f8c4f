"""The real server for the HTTP benchmarks: `deblur-serve` in a subprocess on a free 127.0.0.1 port.

Why the console script and not an in-process app: the numbers must include uvicorn, the multipart
parser and the process's own memory, exactly as a user runs it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def console_script(name: str) -> str:
    """The venv's console script next to this interpreter (e.g. .venv/bin/deblur-serve)."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        sys.exit(f"bench: {path} not found; install the project (pip install -e .)")
    return str(path)


def proc_status(pid: int, field: str) -> int:
    """A /proc/<pid>/status memory field (VmRSS, VmHWM, ...) in bytes; 0 once the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


class RssSampler(threading.Thread):
    """Samples VmRSS of a process every `interval` s; `.peak` is the highest sample seen."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval, self.peak, self._stop_flag = pid, interval, 0, threading.Event()

    def run(self) -> None:
        while not self._stop_flag.is_set():
            self.peak = max(self.peak, proc_status(self.pid, "VmRSS"))
            time.sleep(self.interval)

    def stop(self) -> int:
        self._stop_flag.set()
        self.join()
        return self.peak


class Server:
    """Context manager: start `deblur-serve` with DEBLUR_* settings, wait for /readyz, SIGTERM on exit."""

    def __init__(self, model: Path, threads: int, timeout: float = 180.0, **settings: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("DEBLUR_")}
        env.update(DEBLUR_MODEL_PATH=str(model), DEBLUR_PROVIDERS="cpu", DEBLUR_THREADS=str(threads),
                   PORT=str(self.port), HOST="127.0.0.1")
        env.update({f"DEBLUR_{k.upper()}": str(v) for k, v in settings.items()})
        self.env, self.timeout = env, timeout
        self.proc: subprocess.Popen[bytes] | None = None
        fd, name = tempfile.mkstemp(prefix="deblur-serve-", suffix=".log")
        os.close(fd)
        self.log = Path(name)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def __enter__(self) -> Server:
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen([console_script("deblur-serve")], env=self.env, stdout=log,
                                         stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"deblur-serve exited with {self.proc.returncode}:\n{self.log.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.__exit__()
        raise RuntimeError(f"deblur-serve not ready after {self.timeout:.0f} s:\n{self.log.read_text()[-2000:]}")

    def __exit__(self, *_: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.unlink(missing_ok=True)


def post_image(client: httpx.Client, url: str, data: bytes, name: str, media: str) -> httpx.Response:
    """One POST /deblur; raises on any non-200 so a benchmark never times error answers."""
    response = client.post(url + "/deblur", files={"file": (name, data, media)})
    if response.status_code != 200:
        raise RuntimeError(f"POST /deblur answered {response.status_code}: {response.text[:300]}")
    return response
