"""Zero-downtime model reload: POST /admin/reload (token) and SIGHUP, on the real server under load."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from service_helpers import make_model, photo, png_bytes
from test_service_e2e import REPO, SERVE, free_port, server_env

from service import reload as reload_mod
from service.app import create_app
from service.engine import Engine
from service.settings import Settings

TOKEN = "test-admin-token-123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def publish(model_path: Path, version: str, seed: int = 0, **kw: object) -> None:
    """Write a model the way deblur-export does: to a temp file, then an atomic rename."""
    tmp = model_path.with_suffix(".tmp")
    make_model(tmp, (1, 1), metadata={"name": "reload-test", "version": version}, seed=seed, **kw)
    os.replace(tmp, model_path)


def wait_for(predicate, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def in_process_app(model: Path, token: str | None):
    settings = Settings(model_path=model, providers="cpu", tile_size=64, tile_overlap=16, threads=1, admin_token=token)
    return create_app(settings, Engine.from_settings(settings))


def test_route_absent_without_token_and_documented_with_one(tmp_path):
    publish(tmp_path / "m.onnx", "v1")
    for token in (None, ""):
        with TestClient(in_process_app(tmp_path / "m.onnx", token)) as c:
            assert c.post("/admin/reload", headers=AUTH).status_code == 404
            assert "/admin/reload" not in c.get("/openapi.json").json()["paths"]
    with TestClient(in_process_app(tmp_path / "m.onnx", TOKEN)) as c:
        doc = c.get("/openapi.json").json()
    op = doc["paths"]["/admin/reload"]["post"]
    assert {"200", "401", "403", "409"} <= set(op["responses"])
    assert op["security"] and "HTTPBearer" in doc["components"]["securitySchemes"]


def test_token_checks_and_rejected_model_keeps_the_old_one(tmp_path):
    model = tmp_path / "m.onnx"
    publish(model, "v1")
    with TestClient(in_process_app(model, TOKEN)) as c:
        r = c.post("/admin/reload")
        assert r.status_code == 401 and "token required" in r.json()["detail"]
        assert r.headers["www-authenticate"] == "Bearer"
        r = c.post("/admin/reload", headers={"Authorization": "Bearer nope"})
        assert r.status_code == 403 and r.json() == {"detail": "wrong admin token"}
        r = c.post("/admin/reload", headers={"Authorization": f"Basic {TOKEN}"})
        assert r.status_code == 401
        # same file again: a reload that changes nothing says so
        r = c.post("/admin/reload", headers=AUTH)
        assert r.status_code == 200 and r.json()["changed"] is False and r.json()["model"]["version"] == "v1"
        for broken, why in [
            (b"definitely not onnx", "cannot load model"),
            (None, "expected one input named 'blurry'"),
        ]:
            if broken is None:
                publish(model, "v-bad", input_name="x")
            else:
                model.write_bytes(broken)
            r = c.post("/admin/reload", headers=AUTH)
            assert r.status_code == 409, r.text
            assert "still serving version v1" in r.json()["detail"] and why in r.json()["detail"]
            assert c.get("/model").json()["version"] == "v1"
            assert c.get("/readyz").status_code == 200
        publish(model, "v2", seed=1)
        r = c.post("/admin/reload", headers=AUTH)
        assert r.status_code == 200
        body = r.json()
        assert body["changed"] is True and body["previous"]["version"] == "v1" and body["model"]["version"] == "v2"
        assert c.get("/model").json()["version"] == "v2"
        metrics = c.get("/metrics").text
    assert 'deblur_model_reloads_total{result="ok"} 2.0' in metrics
    assert 'deblur_model_reloads_total{result="rejected"} 2.0' in metrics
    assert 'version="v2"' in metrics and 'version="v1"' not in metrics  # the info gauge names only v2


def test_reloads_are_serialised(tmp_path, monkeypatch):
    model = tmp_path / "m.onnx"
    publish(model, "v1")
    app = in_process_app(model, TOKEN)
    real, busy, peak, lock = Engine.from_settings, [0], [0], threading.Lock()

    def counting(settings, **kw):
        with lock:
            busy[0] += 1
            peak[0] = max(peak[0], busy[0])
        try:
            time.sleep(0.05)  # widen the window in which a second build could overlap
            return real(settings, **kw)
        finally:
            with lock:
                busy[0] -= 1

    monkeypatch.setattr(reload_mod.Engine, "from_settings", counting)
    threads = [threading.Thread(target=app.state.reloader.reload) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] == 1
    assert app.state.reloader.reloads.labels("ok")._value.get() == 4


class Load:
    """Threads posting /deblur back to back; every outcome recorded as (start, end, status, version)."""

    def __init__(self, base: str, threads: int = 3) -> None:
        self.base, self.stop, self.results = base, threading.Event(), []
        self.body = png_bytes(photo(160, 120))
        self.threads = [threading.Thread(target=self._run) for _ in range(threads)]

    def _run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=30) as c:
            while not self.stop.is_set():
                t0 = time.monotonic()
                try:
                    r = c.post("/deblur", files={"file": ("a.png", self.body, "image/png")})
                    outcome = (r.status_code, r.headers.get("x-model-version"))
                except httpx.HTTPError as exc:
                    outcome = (type(exc).__name__, None)
                self.results.append((t0, time.monotonic(), *outcome))

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        wait_for(lambda: len(self.results) >= 3, what="first responses")
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(30)


def test_reload_under_load_on_the_real_server(tmp_path):
    model, port = tmp_path / "served.onnx", free_port()
    publish(model, "v1")
    log_path = tmp_path / "server.log"
    env = server_env(model, port, DEBLUR_ADMIN_TOKEN=TOKEN)
    with log_path.open("w") as log:
        proc = subprocess.Popen(SERVE, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    base = f"http://127.0.0.1:{port}"
    api = httpx.Client(base_url=base, timeout=30)

    def version() -> str:
        return api.get("/model").json()["version"]

    try:
        wait_for(lambda: _ready(api, proc, log_path), 60, "server ready")
        assert api.post("/admin/reload").status_code == 401
        assert api.post("/admin/reload", headers={"Authorization": "Bearer wrong"}).status_code == 403
        with Load(base) as load:
            publish(model, "v2", seed=1)
            t0 = time.monotonic()
            r = api.post("/admin/reload", headers=AUTH)
            t1 = time.monotonic()
            assert r.status_code == 200 and r.json()["model"]["version"] == "v2", r.text
            assert version() == "v2"
            # a request in flight at t1 records itself when it ends, so wait for it rather than read at once
            wait_for(lambda: any(s < t1 and e > t0 for s, e, *_ in load.results), 10,
                     "a load request that overlapped the reload")
            # v2 must answer some of the load before v3 replaces it (else the test races the next reload)
            wait_for(lambda: any(r[3] == "v2" for r in load.results), what="a load request answered by v2")

            publish(model, "v3", seed=2)
            os.kill(proc.pid, signal.SIGHUP)
            wait_for(lambda: version() == "v3", what="SIGHUP reload to v3")

            model.write_bytes(b"\x00truncated")
            r = api.post("/admin/reload", headers=AUTH)
            assert r.status_code == 409 and "still serving version v3" in r.json()["detail"]
            publish(model, "v-bad", input_name="x")
            os.kill(proc.pid, signal.SIGHUP)
            wait_for(lambda: "SIGHUP: new model rejected" in log_path.read_text(), what="SIGHUP rejection logged")
            n = len(load.results)
            wait_for(lambda: len(load.results) >= n + 3, what="requests after the rejected reloads")
            assert version() == "v3" and api.get("/readyz").status_code == 200
        failed = [r for r in load.results if r[2] != 200]
        assert not failed, f"{len(failed)} of {len(load.results)} requests failed: {failed[:5]}"
        assert {"v1", "v2", "v3"} <= {r[3] for r in load.results}
        assert load.results[-1][3] == "v3"
        rejected = [line for line in log_path.read_text().splitlines() if "SIGHUP: new model rejected" in line]
        assert len(rejected) == 1 and "expected one input named 'blurry'" in rejected[0]
        metrics = api.get("/metrics").text
        assert re.search(r'deblur_model_reloads_total\{result="ok"\} 2\.0', metrics)
        assert re.search(r'deblur_model_reloads_total\{result="rejected"\} 2\.0', metrics)
    finally:
        api.close()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
    assert code == 0, log_path.read_text()


def _ready(api: httpx.Client, proc: subprocess.Popen, log_path: Path) -> bool:
    if proc.poll() is not None:
        pytest.fail(f"server exited {proc.returncode}:\n{log_path.read_text()}")
    try:
        return api.get("/readyz").status_code == 200
    except httpx.HTTPError:
        return False
