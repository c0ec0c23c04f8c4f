"""The jobs contract is written down where the issue asks: every setting in docs/settings.md's table, every
jobs route in the API reference (docs/api.md), in docs/jobs.md and in the OpenAPI document, and the curl
examples; the README links the jobs guide."""

from __future__ import annotations

import pytest
from test_service_e2e import REPO

from service.app import create_app
from service.settings import Settings

README = (REPO / "README.md").read_text()
SETTINGS_DOC = (REPO / "docs" / "settings.md").read_text()
API_DOC = (REPO / "docs" / "api.md").read_text()
JOBS_DOC = (REPO / "docs" / "jobs.md").read_text()
ROUTES = [("post", "/jobs"), ("get", "/jobs/{id}"), ("get", "/jobs/{id}/events"), ("get", "/jobs/{id}/result"),
          ("delete", "/jobs/{id}")]


@pytest.mark.parametrize("name", [n for n in Settings.model_fields if n not in ("port", "host")])
def test_every_setting_has_a_row_in_the_settings_page(name):
    assert f"| `DEBLUR_{name.upper()}` |" in SETTINGS_DOC


@pytest.mark.parametrize("method,path", ROUTES)
def test_every_jobs_route_is_in_the_api_reference_the_guide_and_the_schema(method, path):
    row = f"`{method.upper()} {path}`"
    assert row in API_DOC and row in JOBS_DOC
    doc = create_app(Settings(providers="cpu")).openapi()
    assert method in doc["paths"][path.replace("{id}", "{job_id}")]


def test_the_jobs_guide_has_curl_for_submit_poll_events_and_result():
    for example in ("curl -sS -F file=@photo.jpg localhost:8000/jobs", "curl -sS localhost:8000/jobs/$JOB ",
                    "curl -sSN localhost:8000/jobs/$JOB/events", "localhost:8000/jobs/$JOB/result -o"):
        assert example in JOBS_DOC, example
    assert "(docs/jobs.md)" in README
