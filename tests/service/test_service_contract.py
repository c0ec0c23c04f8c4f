"""Contract fuzzing: schemathesis generates requests from the app's own OpenAPI document and runs every
built-in check on each answer (status codes, content types, headers and bodies as declared, no 5xx,
schema-valid data accepted, invalid data rejected), in-process over ASGI. No check is excluded: the
schema says what the `file` part holds (PNG/JPEG/WebP/BMP/TIFF), so schema-valid uploads are real
pictures, generated below, and must be answered 200."""

from __future__ import annotations

import io
import tempfile
from typing import Any

import numpy as np
import pytest
import schemathesis
from hypothesis import settings
from hypothesis import strategies as st
from PIL import Image

from service.app import create_app
from service.engine import Engine
from service.settings import Settings


class Deferred:
    """The ASGI app under test, chosen by a fixture. Why: schemathesis reads the schema when the module is
    imported (to make one test per operation), before the session fixtures have built a model; its lazy
    `schemathesis.pytest.from_fixture` loader fails on pytest 9 (it reads the removed `Function._nodeid`)."""

    def __init__(self) -> None:
        self.app: Any = create_app(Settings(providers="cpu"))  # no model needed to serve /openapi.json

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


PIL_FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WEBP", "image/bmp": "BMP", "image/tiff": "TIFF"}


def images(media_type: str) -> st.SearchStrategy[bytes]:
    """Real pictures of any small size and a mode the format can store: what the schema says `file` holds."""
    fmt = PIL_FORMATS[media_type]
    modes = ["RGB", "L"] + (["RGBA", "LA"] if fmt in ("PNG", "WEBP", "TIFF") else [])

    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        w, h = draw(st.integers(1, 48)), draw(st.integers(1, 48))
        seed = draw(st.integers(0, 2**32 - 1))
        pixels = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
        buf = io.BytesIO()
        Image.fromarray(pixels).convert(draw(st.sampled_from(modes))).save(buf, fmt)
        return buf.getvalue()

    return build()


for _media_type in PIL_FORMATS:
    schemathesis.openapi.media_type(_media_type, images(_media_type))
TARGET = Deferred()
schema = schemathesis.openapi.from_asgi("/openapi.json", TARGET)


@pytest.fixture(scope="module", autouse=True)
def _serve_the_tiny_model(engine: Engine, tmp_path_factory: pytest.TempPathFactory):
    # Jobs may stay queued here (a full queue would be a 503); their spool goes to a pytest folder.
    saved, tempfile.tempdir = tempfile.tempdir, str(tmp_path_factory.mktemp("contract-spool"))
    TARGET.app = create_app(Settings(providers="cpu", max_upload_mb=1, job_max_queued=100_000), engine)
    yield
    tempfile.tempdir = saved


@schema.parametrize()
@settings(max_examples=40, deadline=None)
def test_api_honours_its_openapi_contract(case):
    case.call_and_validate()
