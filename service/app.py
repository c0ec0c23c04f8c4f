"""HTTP routes: POST /deblur, /healthz, /readyz, /model, /metrics, / (browser page), /docs.

The heavy lifting is elsewhere (images, engine, pipeline); this module validates, gates, times and maps
errors to the statuses promised in DESIGN.md. A client's input never produces a 500: the only 500 is an
unexpected failure inside inference, answered with the request id and logged once with its traceback.
"""

from __future__ import annotations

import asyncio
import logging
import re
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from importlib import resources
from typing import Annotated, Any, Literal

import anyio
from fastapi import FastAPI, File, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ValidationError

from . import __version__
from .engine import Engine, ModelError
from .images import ImageError
from .middleware import BodyLimitMiddleware, Busy, ConcurrencyGate, Metrics, RequestContextMiddleware
from .pipeline import process_bytes
from .reload import Reloader, add_admin_routes
from .settings import Settings, get_settings

log = logging.getLogger("deblur.app")
RETRY_AFTER = "2"


class ErrorBody(BaseModel):
    detail: str


class EngineHolder:
    """The engine in use. Why a holder: a reload builds a new Engine beside this one and swaps it in;
    requests that already took a reference finish on the old one."""

    def __init__(self, engine: Engine | None = None) -> None:
        self.engine = engine
        self.error: str | None = None

    def swap(self, engine: Engine) -> Engine | None:
        old, self.engine, self.error = self.engine, engine, None
        return old


def _err(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def _error_doc(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"model": ErrorBody, "description": description}
    if headers:
        doc["headers"] = headers
    return doc


_RETRY_DOC = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "string"}}}
_IMAGE_HEADERS = {
    name: {"description": text, "schema": {"type": "string"}}
    for name, text in [
        ("X-Request-ID", "the client's X-Request-ID if sane (<=128 printable chars), else a new id"),
        ("X-Model-Version", "version of the model that answered"),
        ("X-Execution-Provider", "ONNX Runtime provider that ran it, e.g. CPUExecutionProvider"),
        ("X-Process-Time-Ms", "decode + inference + encode time, milliseconds"),
        ("X-Tiles", "number of tiles run through the model"),
        ("X-Format-Fallback", "present when the requested format could not hold the image (why)"),
    ]
}
DEBLUR_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "the deblurred image, same size and orientation as the (EXIF-corrected) input",
        "content": {"image/png": {}, "image/jpeg": {}, "image/webp": {}},
        "headers": _IMAGE_HEADERS,
    },
    400: _error_doc("malformed request (unparsable multipart body, empty file)"),
    408: _error_doc("the request body did not arrive within DEBLUR_BODY_TIMEOUT_S"),
    413: _error_doc("request body, image pixel count or image side over the limit"),
    415: _error_doc("not a decodable supported image (PNG, JPEG, WebP, BMP, TIFF), or animated"),
    422: _error_doc("missing `file` field, more than one file, or bad query parameter"),
    500: _error_doc("unexpected inference failure; the body names the request id"),
    503: _error_doc("busy (concurrency and queue full) or model not loaded yet", _RETRY_DOC),
}
# What the `file` part may hold, in the schema too (clients and fuzzers then send images, not any bytes).
UPLOAD_ENCODING = {
    "requestBody": {
        "content": {
            "multipart/form-data": {
                "encoding": {"file": {"contentType": "image/png, image/jpeg, image/webp, image/bmp, image/tiff"}}
            }
        }
    }
}
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def _download_name(filename: str | None, fmt: str) -> str:
    stem = (filename or "").replace("\\", "/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
    stem = _SAFE_NAME.sub("_", stem).strip("._")[:64] or "image"
    return f"{stem}-deblurred.{'jpg' if fmt == 'jpeg' else fmt}"


def create_app(settings: Settings | None = None, engine: Engine | None = None) -> FastAPI:
    """Build the app. With no engine given, the model is loaded in the background at startup and
    /readyz answers 503 until it is loaded and warmed up (or says why it could not be)."""
    settings = settings or get_settings()
    holder = EngineHolder(engine)
    gate = ConcurrencyGate(settings.max_concurrency, settings.max_queue)
    metrics = Metrics()
    metrics.watch(gate)
    page = resources.files("service").joinpath("static/index.html").read_text(encoding="utf-8")

    def _loaded(eng: Engine) -> None:
        old = holder.swap(eng)
        if old is not None and old is not eng:  # a reload: the info gauge names only the model in use
            metrics.model.remove(old.info.name, old.info.version, old.provider)
        metrics.model.labels(eng.info.name, eng.info.version, eng.provider).set(1)

    async def _load() -> None:
        try:
            _loaded(await anyio.to_thread.run_sync(Engine.from_settings, settings))
            log.info("model ready: %s", holder.engine.info.version if holder.engine else "?")
        except ModelError as exc:
            holder.error = str(exc)
            log.error("model not loaded: %s", exc)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(_load()) if holder.engine is None else None
        if holder.engine is not None:
            _loaded(holder.engine)
        yield
        if task is not None and not task.done():
            task.cancel()

    app = FastAPI(
        title="deblur",
        version=__version__,
        description="Motion deblurring on ONNX Runtime with seam-free tiling.",
        lifespan=lifespan,
    )
    app.state.holder, app.state.gate, app.state.metrics, app.state.settings = holder, gate, metrics, settings
    app.state.reloader = Reloader(settings, lambda: holder.engine, _loaded, metrics.registry)
    if settings.admin_token and settings.admin_token.get_secret_value():
        add_admin_routes(app, app.state.reloader, settings.admin_token.get_secret_value())

    if settings.cors_origin_list:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origin_list,
            allow_methods=["GET", "POST"],
            allow_headers=["*"],
            expose_headers=[h for h in _IMAGE_HEADERS],
        )
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_upload_bytes, timeout_s=settings.body_timeout_s)
    app.add_middleware(RequestContextMiddleware, metrics=metrics)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for e in exc.errors():
            where = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "request"
            parts.append(f"{where}: {e.get('msg', 'invalid')}")
        return _err(422, "; ".join(parts) or "invalid request")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        rid = getattr(request.state, "request_id", "-")
        log.error("unhandled error, request id %s", rid, exc_info=exc)
        return _err(500, f"internal error; request id {rid}")

    @app.post(
        "/deblur",
        responses=DEBLUR_RESPONSES,
        response_class=Response,
        summary="Deblur one image",
        openapi_extra=UPLOAD_ENCODING,
    )
    async def deblur(
        request: Request,
        file: Annotated[UploadFile, File(description="one image: PNG, JPEG, WebP, BMP or TIFF")],
        fmt: Annotated[
            Literal["png", "jpeg", "jpg", "webp"] | None,
            Query(alias="format", description="output format; default: the input's if png/jpeg/webp, else png"),
        ] = None,
        quality: Annotated[int | None, Query(ge=1, le=100, description="JPEG/WebP quality")] = None,
    ) -> Response:
        rid = request.state.request_id
        eng = holder.engine
        if eng is None:
            return _err(503, "model not loaded yet", {"Retry-After": RETRY_AFTER})
        if len((await request.form()).getlist("file")) > 1:  # never guess which one the client meant
            return _err(422, "file: send exactly one image (got several `file` parts)")
        data = await file.read()
        limits = {"max_megapixels": settings.max_megapixels, "max_side": settings.max_side}
        work = partial(process_bytes, eng, data, fmt=fmt, quality=quality, **limits)
        queued = time.perf_counter()
        try:
            async with gate.slot():
                metrics.stages.labels("queue_wait").observe(time.perf_counter() - queued)
                done = await anyio.to_thread.run_sync(work)
        except Busy as exc:
            metrics.rejections.inc()
            return _err(503, str(exc), {"Retry-After": RETRY_AFTER})
        except ImageError as exc:
            return _err(exc.status_code, str(exc))
        except Exception:
            log.exception("inference failed, request id %s", rid)
            return _err(500, f"internal error while deblurring; request id {rid}")
        for stage, seconds in done.stages.items():
            metrics.stages.labels(stage).observe(seconds)
        metrics.tiles.inc(done.tiles)
        metrics.megapixels.inc(done.megapixels)
        headers = {
            "X-Model-Version": eng.info.version,
            "X-Execution-Provider": eng.provider,
            "X-Process-Time-Ms": f"{done.seconds * 1000:.1f}",
            "X-Tiles": str(done.tiles),
            "Content-Disposition": f'inline; filename="{_download_name(file.filename, done.encoded.format)}"',
        }
        if done.encoded.fallback:
            headers["X-Format-Fallback"] = done.encoded.fallback
        return Response(done.encoded.data, media_type=done.encoded.media_type, headers=headers)

    @app.get("/healthz", summary="Liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", summary="Readiness", responses={503: _error_doc("model not loaded/warmed yet")})
    async def readyz() -> Any:
        eng = holder.engine
        if eng is None or not eng.warmed:
            why = f"model not loaded: {holder.error}" if holder.error else "model loading"
            return _err(503, why, {"Retry-After": RETRY_AFTER})
        return {"status": "ready", "model_version": eng.info.version}

    @app.get("/model", summary="The served model", responses={503: _error_doc("model not loaded yet")})
    async def model() -> Any:
        eng = holder.engine
        if eng is None:
            return _err(503, "model not loaded yet", {"Retry-After": RETRY_AFTER})
        return eng.describe()

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page)

    return app


def serve() -> None:
    """Console script `deblur-serve`: load + warm the model, then serve. Exits 2 with one line if the
    settings or the model are bad (no traceback: the message says what to fix)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = get_settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        log.error("invalid settings: %s: %s", ".".join(map(str, first["loc"])) or "-", first["msg"])
        sys.exit(2)
    try:
        engine = Engine.from_settings(settings)
    except ModelError as exc:
        log.error("cannot start: %s", exc)
        sys.exit(2)
    log.info(
        "model %s (version %s) warmed up on %s; tiles %dpx overlap %d batch %d",
        engine.info.name,
        engine.info.version,
        engine.provider,
        engine.tile_size,
        engine.tile_overlap,
        engine.tile_batch,
    )
    import uvicorn

    # uvicorn shuts down gracefully on SIGTERM (stops accepting, finishes in-flight requests) and then
    # re-raises the signal with the handler that was installed before it; make that an exit 0.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app = create_app(settings, engine)
    if hasattr(signal, "SIGHUP"):  # `docker compose kill -s HUP api`: reload the model, keep serving
        signal.signal(signal.SIGHUP, lambda *_: app.state.reloader.trigger("SIGHUP"))
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info")
