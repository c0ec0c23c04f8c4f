"""`deblur-serve` flags: --help prints help, flags override the DEBLUR_* variables, bad values exit 2."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import httpx
from test_service_e2e import REPO, SERVE, free_port, server_env


def test_help_lists_the_flags_and_starts_nothing() -> None:
    done = subprocess.run([*SERVE, "--help"], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.returncode == 0
    for flag in ("--host", "--port", "--model", "--providers", "--threads"):
        assert flag in done.stdout


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
