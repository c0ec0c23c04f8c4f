"""Security defaults the hardening issue asks for, beyond the hostile-input suite: CORS off unless
configured (and then only for the listed origins, exposing the result headers), no credentials."""

from __future__ import annotations

from fastapi.testclient import TestClient
from service_helpers import photo, png_bytes

from service.app import create_app
from service.engine import Engine
from service.settings import Settings

PREFLIGHT = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-request-id"}


def test_cors_off_by_default_sends_no_cors_headers_on_real_requests(engine: Engine):
    with TestClient(create_app(Settings(providers="cpu"), engine)) as c:
        r = c.post("/deblur", files={"file": ("a.png", png_bytes(photo(8, 8)), "image/png")},
                   headers={"Origin": "https://evil.example"})
        assert r.status_code == 200
        assert not [h for h in r.headers if h.startswith("access-control-")]
        assert c.options("/deblur", headers={"Origin": "https://evil.example", **PREFLIGHT}).status_code == 405


def test_cors_allows_only_the_listed_origins_and_exposes_the_result_headers(engine: Engine):
    settings = Settings(providers="cpu", cors_origins="https://app.example, https://other.example")
    with TestClient(create_app(settings, engine)) as c:
        ok = c.options("/deblur", headers={"Origin": "https://other.example", **PREFLIGHT})
        assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "https://other.example"
        assert "access-control-allow-credentials" not in ok.headers
        bad = c.options("/deblur", headers={"Origin": "https://evil.example", **PREFLIGHT})
        assert bad.status_code == 400 and "access-control-allow-origin" not in bad.headers
        r = c.post("/deblur", files={"file": ("a.png", png_bytes(photo(8, 8)), "image/png")},
                   headers={"Origin": "https://app.example"})
        assert r.headers["access-control-allow-origin"] == "https://app.example"
        exposed = {h.strip().lower() for h in r.headers["access-control-expose-headers"].split(",")}
        assert {"x-request-id", "x-model-version", "x-tiles", "x-format-fallback"} <= exposed
        r = c.post("/deblur", files={"file": ("a.png", png_bytes(photo(8, 8)), "image/png")},
                   headers={"Origin": "https://evil.example"})
        assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
