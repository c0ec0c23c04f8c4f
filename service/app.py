"""HTTP routes: POST /deblur, /healthz, /readyz, /model, /metrics, / (browser page), /docs; the /jobs routes
come from `jobs.router`, guarded like /deblur by the API keys of `auth` when they are set.

The heavy lifting is elsewhere (images, engine, pipeline); this module validates, gates, times and maps
errors to the statuses promised in docs/api.md. A client's input never produces a 500: the only 500 is an
unexpected failure inside inference, answered with the request id and logged once with its traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from importlib import resources
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import __version__
from .auth import ApiKeys, api_key_guard
from .engine import Engine, ModelError
from .http_contract import (
    DEBLUR_RESPONSES,
    IMAGE_HEADERS,
    ONE_FILE_ONLY,
    RETRY_AFTER,
    UPLOAD_ENCODING,
    ImageFile,
    OutputFormat,
    Quality,
    download_name,
    error_doc,
    http_error,
    image_headers,
)
from .http_contract import error_response as _err
from .images import ImageError
from .jobs import make_backend
from .jobs.router import router as jobs_router
from .middleware import BodyLimitMiddleware, Busy, ConcurrencyGate, Metrics, RequestContextMiddleware
from .pipeline import process_bytes
from .reload import Reloader, add_admin_routes
from .settings import Settings, get_settings, settings_or_explain

log = logging.getLogger("deblur.app")


class EngineHolder:
    """The engine in use. Why a holder: a reload builds a new Engine beside this one and swaps it in;
    requests that already took a reference finish on the old one."""

    def __init__(self, engine: Engine | None = None) -> None:
        self.engine = engine
        self.error: str | None = None

    def swap(self, engine: Engine) -> Engine | None:
        old, self.engine, self.error = self.engine, engine, None
        return old


def create_app(settings: Settings | None = None, engine: Engine | None = None) -> FastAPI:
    """Build the app. With no engine given, the model is loaded in the background at startup and
    /readyz answers 503 until it is loaded and warmed up (or says why it could not be)."""
    settings = settings or get_settings()
    holder = EngineHolder(engine)
    gate = ConcurrencyGate(settings.max_concurrency, settings.max_queue)
    metrics = Metrics()
    metrics.watch(gate)
    guard = api_key_guard(ApiKeys(settings.api_key_values()))
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

    def _counted(tiles: int, megapixels: float) -> None:
        metrics.tiles.inc(tiles)
        metrics.megapixels.inc(megapixels)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(_load()) if holder.engine is None else None
        if holder.engine is not None:
            _loaded(holder.engine)
        await app.state.jobs.start()
        yield
        await app.state.jobs.close()
        if task is not None and not task.done():
            task.cancel()

    app = FastAPI(
        title="deblur",
        version=__version__,
        description="Motion deblurring on ONNX Runtime with seam-free tiling.",
        lifespan=lifespan,
    )
    app.state.holder, app.state.gate, app.state.metrics, app.state.settings = holder, gate, metrics, settings
    app.state.jobs = make_backend(settings, lambda: holder.engine, gate, _counted)
    app.state.upload_checks = anyio.CapacityLimiter(settings.max_concurrency)  # POST /jobs decodes to check
    app.include_router(jobs_router, dependencies=guard.dependencies, responses=guard.responses)
    app.state.reloader = Reloader(settings, lambda: holder.engine, _loaded, metrics.registry)
    if settings.admin_token and settings.admin_token.get_secret_value():
        add_admin_routes(app, app.state.reloader, settings.admin_token.get_secret_value())

    if settings.cors_origin_list:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origin_list,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["*"],
            expose_headers=[*IMAGE_HEADERS, "Location", "Retry-After"],
        )
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_upload_bytes, timeout_s=settings.body_timeout_s)
    app.add_middleware(RequestContextMiddleware, metrics=metrics)

    app.add_exception_handler(StarletteHTTPException, http_error)

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
        responses={**DEBLUR_RESPONSES, **guard.responses},
        response_class=Response,
        summary="Deblur one image",
        openapi_extra=UPLOAD_ENCODING,
        dependencies=guard.dependencies,
    )
    async def deblur(request: Request, file: ImageFile, fmt: OutputFormat = None, quality: Quality = None) -> Response:
        rid = request.state.request_id
        eng = holder.engine
        if eng is None:
            return _err(503, "model not loaded yet", {"Retry-After": RETRY_AFTER})
        if len((await request.form()).getlist("file")) > 1:  # never guess which one the client meant
            return _err(422, ONE_FILE_ONLY)
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
        name = download_name(file.filename, done.encoded.format)
        headers = image_headers(eng.info.version, eng.provider, done.seconds, done.tiles, name, done.encoded.fallback)
        return Response(done.encoded.data, media_type=done.encoded.media_type, headers=headers)

    @app.get("/healthz", summary="Liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", summary="Readiness", responses={503: error_doc("model not loaded/warmed yet, or Redis down")})
    async def readyz() -> Any:
        eng = holder.engine
        if eng is None or not eng.warmed:
            why = f"model not loaded: {holder.error}" if holder.error else "model loading"
            return _err(503, why, {"Retry-After": RETRY_AFTER})
        if problem := await app.state.jobs.problem():
            return _err(503, problem, {"Retry-After": RETRY_AFTER})
        return {"status": "ready", "model_version": eng.info.version}

    @app.get(
        "/model",
        summary="The served model",
        responses={503: error_doc("model not loaded yet"), **guard.responses},
        dependencies=guard.dependencies,
    )
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


# flag -> the environment variable it overrides (flags win; both go through the same validation)
SERVE_FLAGS = {"host": "DEBLUR_HOST", "port": "DEBLUR_PORT", "model": "DEBLUR_MODEL_PATH",
               "providers": "DEBLUR_PROVIDERS", "threads": "DEBLUR_THREADS"}


def _apply_serve_flags(argv: list[str] | None) -> None:
    parser = argparse.ArgumentParser(
        prog="deblur-serve", description="Serve the deblurring model over HTTP (settings: DEBLUR_* variables; "
        "these flags override them).")
    parser.add_argument("--host", help="address to listen on (DEBLUR_HOST/HOST; default 0.0.0.0)")
    parser.add_argument("--port", help="port (DEBLUR_PORT/PORT; default 8000)")
    parser.add_argument("--model", help="ONNX model file (DEBLUR_MODEL_PATH; default the shipped model)")
    parser.add_argument("--providers", help="cuda,cpu or cpu (DEBLUR_PROVIDERS)")
    parser.add_argument("--threads", help="ONNX Runtime intra-op threads, 0 = its choice (DEBLUR_THREADS)")
    args = parser.parse_args(argv)
    for flag, variable in SERVE_FLAGS.items():
        if (value := getattr(args, flag)) is not None:
            os.environ[variable] = value
            if flag in ("host", "port"):
                os.environ.pop(flag.upper(), None)  # the unprefixed alias would otherwise take precedence
    get_settings.cache_clear()


def serve(argv: list[str] | None = None) -> None:
    """Console script `deblur-serve`: load + warm the model, then serve. Exits 2 with one line if the
    settings or the model are bad (no traceback: the message says what to fix)."""
    _apply_serve_flags(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = settings_or_explain(log)
    if settings is None:
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
