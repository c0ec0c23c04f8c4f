"""API keys against the real server: 401 JSON with WWW-Authenticate on /deblur, /jobs* and /model; Bearer
and X-API-Key both work; probes stay open; a job is visible only to its key; keys never reach the log."""

from __future__ import annotations

import hashlib
import subprocess

import httpx
import pytest
from jobs_client import submit, wait_status
from service_helpers import photo, png_bytes
from service_server import running
from test_service_e2e import REPO, SERVE, free_port, server_env

from service.app import create_app
from service.auth import ApiKeys, key_id
from service.settings import Settings

ALICE, BOB, CAROL = "alice-0123456789abcdef", "bob-fedcba9876543210", "carol-from-the-keys-file"


@pytest.fixture(scope="module")
def secured(small_model, tmp_path_factory):
    work = tmp_path_factory.mktemp("auth")
    keys_file = work / "keys.txt"
    keys_file.write_text(f"# one key per line\n\n  {CAROL}  \n")
    env = {"DEBLUR_API_KEYS": f"{ALICE}, {BOB}", "DEBLUR_API_KEYS_FILE": str(keys_file)}
    with running(small_model, work, **env) as server:
        yield server


def as_(key: str, style: str = "bearer") -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if style == "bearer" else {"X-API-Key": key}


PROTECTED = [("POST", "/deblur"), ("GET", "/model"), ("POST", "/jobs"), ("GET", "/jobs/" + "A" * 22),
             ("GET", "/jobs/" + "A" * 22 + "/events"), ("GET", "/jobs/" + "A" * 22 + "/result"),
             ("DELETE", "/jobs/" + "A" * 22)]


@pytest.mark.parametrize("method,path", PROTECTED)
@pytest.mark.parametrize("headers", [{}, as_("wrong-key"), {"Authorization": f"Basic {ALICE}"},
                                     {"Authorization": "Bearer"}, as_(ALICE[:-1]), as_(ALICE + "x", "header")],
                         ids=["none", "wrong", "basic-scheme", "empty-bearer", "prefix-of-a-key", "longer-header"])
def test_protected_routes_answer_401_json_with_a_bearer_challenge(secured, method, path, headers):
    r = httpx.request(method, secured.base + path, headers=headers, timeout=10)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert r.json()["detail"] in ("API key required: send Authorization: Bearer KEY (or X-API-Key: KEY)",
                                  "invalid API key")


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/"])
def test_probes_metrics_and_the_page_stay_open(secured, path):
    assert httpx.get(secured.base + path, timeout=10).status_code == 200


def test_each_key_works_in_either_header_and_jobs_are_private_to_their_key(secured):
    data = png_bytes(photo(60, 40))
    with httpx.Client(base_url=secured.base, timeout=30) as c:
        for key in (ALICE, BOB, CAROL):
            for style in ("bearer", "header"):
                assert c.get("/model", headers=as_(key, style)).status_code == 200
        assert c.post("/deblur", files={"file": ("a.png", data, "image/png")}, headers=as_(CAROL)).status_code == 200
        job = submit(c, data, headers=as_(ALICE)).json()["id"]
        assert wait_status(c, job, headers=as_(ALICE, "header"))["status"] == "done"
        for key in (BOB, CAROL):  # another key: the same 404 as an id that never existed
            for method, suffix in [("GET", ""), ("GET", "/events"), ("GET", "/result"), ("DELETE", "")]:
                r = c.request(method, f"/jobs/{job}{suffix}", headers=as_(key))
                assert r.status_code == 404 and r.json() == {"detail": f"no such job: {job}"}
        assert c.get(f"/jobs/{job}/result", headers=as_(ALICE)).status_code == 200
        assert c.delete(f"/jobs/{job}", headers=as_(ALICE)).status_code == 204
    log = secured.log()
    for key in (ALICE, BOB, CAROL, "wrong-key"):
        assert key not in log
    assert f"key {key_id(ALICE)}" in log and f"rejected API key {key_id('wrong-key')}" in log


def test_openapi_declares_the_schemes_and_the_401(secured):
    doc = httpx.get(secured.base + "/openapi.json", timeout=10).json()
    assert set(doc["components"]["securitySchemes"]) == {"ApiKeyBearer", "ApiKeyHeader"}
    for path, method in [("/deblur", "post"), ("/model", "get"), ("/jobs", "post"), ("/jobs/{job_id}", "delete")]:
        op = doc["paths"][path][method]
        assert "401" in op["responses"] and {"ApiKeyBearer": []} in op["security"]
    assert "security" not in doc["paths"]["/healthz"]["get"]


def test_keys_are_kept_as_digests_and_every_one_is_compared():
    keys = ApiKeys([ALICE, BOB])
    assert keys.identify(BOB) == hashlib.sha256(BOB.encode()).hexdigest()[:12] == key_id(BOB)
    assert keys.identify(ALICE[:-1]) is None and keys.identify("") is None
    assert ALICE.encode() not in repr(vars(keys)).encode()
    assert not ApiKeys([]).enabled


@pytest.mark.parametrize(
    "env,error",
    [
        ({"DEBLUR_API_KEYS_FILE": "/nonexistent/keys"}, "DEBLUR_API_KEYS_FILE /nonexistent/keys: FileNotFoundError"),
        ({"DEBLUR_API_KEYS": "good-key,with space"}, "no whitespace"),
        ({"DEBLUR_REDIS_URL": "http://x"}, "DEBLUR_REDIS_URL must start with redis://"),
    ],
)
def test_bad_key_settings_stop_the_start_with_their_name(env, error, monkeypatch):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=error):
        Settings()


def test_an_empty_keys_file_is_an_error_not_an_open_api(tmp_path, monkeypatch):
    empty = tmp_path / "keys"
    empty.write_text("# nobody yet\n")
    monkeypatch.setenv("DEBLUR_API_KEYS_FILE", str(empty))
    with pytest.raises(ValueError, match="holds no key"):
        Settings()


def test_without_keys_nothing_asks_for_one():
    doc = create_app(Settings(providers="cpu")).openapi()
    assert "securitySchemes" not in doc.get("components", {})
    assert all("401" not in op["responses"] for ops in doc["paths"].values() for op in ops.values())


def test_serve_exits_2_with_one_line_for_a_missing_keys_file(small_model, tmp_path):
    env = server_env(small_model, free_port(), DEBLUR_API_KEYS_FILE=str(tmp_path / "nope"))
    done = subprocess.run(SERVE, env=env, capture_output=True, text=True, timeout=60, cwd=REPO)
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1 and "DEBLUR_API_KEYS_FILE" in lines[0], lines
