"""Debian's real `redis-server` on a free 127.0.0.1 port for the Redis-mode job tests, and `deblur-worker`
processes beside it. Every process started here is stopped by the same context manager.

Missing redis-server: the tests skip with the reason, except under CI=true (`make test` installs it)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from test_service_e2e import REPO, free_port, server_env

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
WORKER = [sys.executable, "-c", "import sys; from service.jobs.worker import main; sys.exit(main())"]


def require_redis() -> None:
    if Path(REDIS_SERVER).is_file():
        return
    if os.environ.get("CI"):
        pytest.fail("redis-server missing: apt-get install -y redis-server (make test does)", pytrace=False)
    pytest.skip("redis-server not installed (apt-get install -y redis-server, or make test as root)")


@dataclass
class Redis:
    proc: subprocess.Popen
    port: int

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port)


@contextmanager
def redis_server(workdir: Path) -> Iterator[Redis]:
    """No persistence, no protected mode games: a throwaway server that only the tests reach."""
    require_redis()
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    args = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(workdir), "--logfile", str(workdir / "redis.log")]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    server = Redis(proc, port)
    deadline = time.monotonic() + 20
    while True:
        try:
            if server.client().ping():
                break
        except redis.ConnectionError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(f"redis-server did not start:\n{(workdir / 'redis.log').read_text()}") from None
            time.sleep(0.05)
    try:
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Worker:
    proc: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


def start_worker(model: Path, workdir: Path, name: str, **env: str) -> Worker:
    """`deblur-worker`'s entry point, with the engine settings the test servers use; ready once it logs so."""
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"{name}.log"
    full_env = server_env(model, free_port())
    full_env.update(env)
    with log_path.open("w") as log:
        proc = subprocess.Popen(WORKER, env=full_env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    worker = Worker(proc, log_path)
    deadline = time.monotonic() + 60
    while "worker ready" not in worker.log():
        if proc.poll() is not None or time.monotonic() > deadline:
            worker.stop()
            raise AssertionError(f"worker did not start:\n{worker.log()}")
        time.sleep(0.05)
    return worker


@contextmanager
def workers(model: Path, workdir: Path, count: int = 1, **env: str) -> Iterator[list[Worker]]:
    started: list[Worker] = []
    try:
        for i in range(count):
            started.append(start_worker(model, workdir, f"worker{i}", **env))
        yield started
    finally:
        for w in started:
            w.stop()
