"""`deblur-serve` flags: --help and --version answer at once, flags override the DEBLUR_* variables which
override the defaults, --workers starts that many server processes, bad values exit 2 with one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from redis_server import redis_server
from test_service_e2e import REPO, SERVE, free_port, server_env

from service import __version__
from service.serve import SERVE_FLAGS, apply_flags, parser
from service.settings import Settings

# --help in a fresh interpreter, then which heavy modules that imported and how long it took
HELP_PROBE = """import json, sys, time
start = time.perf_counter()
try:
    from service.serve import main
    main(["--help"])
except SystemExit as exc:
    code = exc.code
heavy = [m for m in ("onnxruntime", "fastapi", "uvicorn", "numpy") if m in sys.modules]
print(json.dumps({"code": code, "heavy": heavy, "seconds": time.perf_counter() - start}), file=sys.stderr)
"""


def test_help_lists_the_flags_and_starts_nothing() -> None:
    done = subprocess.run([*SERVE, "--help"], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.returncode == 0
    for flag in ("--host", "--port", "--model", "--providers", "--threads", "--workers", "--version"):
        assert flag in done.stdout


def test_help_answers_without_importing_onnxruntime() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", HELP_PROBE], capture_output=True, text=True, cwd=REPO, env=env,
                          timeout=60)
    probe = json.loads(done.stderr.strip().splitlines()[-1])
    assert probe["code"] == 0 and "usage: deblur-serve" in done.stdout
    assert probe["heavy"] == [] and probe["seconds"] < 5, probe  # loose: the flags are read before the imports


def test_version_prints_the_package_version() -> None:
    done = subprocess.run([*SERVE, "--version"], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert (done.returncode, done.stdout.strip()) == (0, f"deblur-serve {__version__}")
    assert 'version = { attr = "service.__version__" }' in (REPO / "pyproject.toml").read_text()  # one home


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No serve variable set; whatever `apply_flags` writes is undone after the test."""
    for variables in SERVE_FLAGS.values():
        for variable in variables:
            monkeypatch.setenv(variable, "-")  # recorded, so teardown restores the original state
            monkeypatch.delenv(variable)
    return monkeypatch


def test_a_flag_beats_its_variable_which_beats_the_default(clean_environment: pytest.MonkeyPatch) -> None:
    assert (Settings().threads, Settings().port) == (0, 8000)  # defaults
    clean_environment.setenv("DEBLUR_THREADS", "3")
    clean_environment.setenv("PORT", "9000")
    assert (Settings().threads, Settings().port) == (3, 9000)  # the variables
    apply_flags(parser().parse_args(["--threads", "2", "--port", "9001"]))
    assert (Settings().threads, Settings().port) == (2, 9001)  # the flags, also over the PORT alias
    apply_flags(parser().parse_args(["--workers", "3"]))
    assert Settings(redis_url="redis://127.0.0.1:1/0").workers == 3


def test_flags_override_the_environment(small_model: Path, tmp_path: Path) -> None:
    port = free_port()
    env = server_env(tmp_path / "missing.onnx", free_port())  # the variables point elsewhere
    env["PORT"] = str(free_port())
    log = (tmp_path / "server.log").open("w+")
    proc = subprocess.Popen([*SERVE, "--model", str(small_model), "--port", str(port), "--host", "127.0.0.1"],
                            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            raise AssertionError(f"server did not get ready on the flag's port: {Path(log.name).read_text()}")
        assert httpx.get(f"http://127.0.0.1:{port}/model", timeout=5).json()["sha256"]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0


def test_a_bad_flag_value_exits_2_with_one_line(small_model: Path, tmp_path: Path) -> None:
    env = server_env(small_model, free_port())
    done = subprocess.run([*SERVE, "--port", "0"], env=env, capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.returncode == 2
    assert "invalid settings: port" in done.stderr.lower() and "Traceback" not in done.stderr
    done = subprocess.run([*SERVE, "--model", str(tmp_path / "nope.onnx")], env=env, capture_output=True, text=True,
                          cwd=REPO, timeout=60)
    assert done.returncode == 2 and "cannot start" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("flags,why", [
    (["--workers", "0"], "invalid settings: workers"),
    (["--workers", "two"], "invalid settings: workers"),
    (["--workers", "2"], "DEBLUR_WORKERS > 1 needs DEBLUR_REDIS_URL"),
])
def test_bad_workers_exit_2_with_one_line(small_model: Path, flags: list[str], why: str) -> None:
    done = subprocess.run([*SERVE, *flags], env=server_env(small_model, free_port()), capture_output=True, text=True,
                          cwd=REPO, timeout=60)
    assert done.returncode == 2 and why in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def _workers(pid: int) -> list[int]:
    """uvicorn's worker processes under `pid` (multiprocessing's spawned children, not its resource tracker)."""
    children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return [c for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts worker processes in /proc")
def test_workers_flag_serves_from_that_many_processes(small_model: Path, tmp_path: Path) -> None:
    with redis_server(tmp_path / "redis") as redis:
        port = free_port()
        env = server_env(small_model, port, DEBLUR_REDIS_URL=redis.url, DEBLUR_WORKERS="5")
        log = (tmp_path / "server.log").open("w+")
        proc = subprocess.Popen([*SERVE, "--workers", "2"], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        try:
            deadline = time.monotonic() + 120
            while len(_workers(proc.pid)) < 2 or "Application startup complete" not in Path(log.name).read_text():
                assert proc.poll() is None and time.monotonic() < deadline, Path(log.name).read_text()
                time.sleep(0.2)
            workers = set(_workers(proc.pid))
            assert len(workers) == 2  # the flag, not DEBLUR_WORKERS=5
            while httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code != 200:
                assert time.monotonic() < deadline, Path(log.name).read_text()
                time.sleep(0.2)
            assert httpx.get(f"http://127.0.0.1:{port}/model", timeout=5).json()["sha256"]
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(60)
        assert code == 0 and not any(Path(f"/proc/{w}").exists() for w in workers)
