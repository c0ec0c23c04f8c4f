"""The app: `create_app` builds the shared state (engine holder, gate, metrics, job back end, reloader),
composes the routers of `routes` and `jobs.router`, and adds the middleware and the error handlers.

The routes take what they need through `deps`; the routes that cost (/deblur, /jobs*, /model) are guarded by
the API keys of `auth` when they are set. Errors map to the statuses promised in docs/api.md. A client's input
never produces a 500: the only 500 is an unexpected failure inside inference, answered with the request id
and logged once with its traceback.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import __version__
from .auth import ApiKeys, api_key_guard
from .deps import EngineHolder
from .engine import Engine, ModelError
from .http_contract import IMAGE_HEADERS, http_error
from .http_contract import error_response as _err
from .jobs import make_backend
from .jobs.router import router as jobs_router
from .middleware import BodyLimitMiddleware, ConcurrencyGate, Metrics, RequestContextMiddleware
from .reload import Reloader
from .routes import admin, health, inference, model, page
from .settings import Settings, get_settings

log = logging.getLogger("deblur.app")


def create_app(settings: Settings | None = None, engine: Engine | None = None) -> FastAPI:
    """Build the app. With no engine given, the model is loaded in the background at startup and
    /readyz answers 503 until it is loaded and warmed up (or says why it could not be)."""
    settings = settings or get_settings()
    holder = EngineHolder(engine)
    gate = ConcurrencyGate(settings.max_concurrency, settings.max_queue)
    metrics = Metrics()
    metrics.watch(gate)
    guard = api_key_guard(ApiKeys(settings.api_key_values()))

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
    app.state.reloader = Reloader(settings, lambda: holder.engine, _loaded, metrics.registry)

    guarded = {"dependencies": guard.dependencies, "responses": guard.responses}
    app.include_router(jobs_router, **guarded)
    if settings.admin_token and settings.admin_token.get_secret_value():  # no token: no route (404)
        app.include_router(admin.router)
    app.include_router(inference.router, **guarded)
    app.include_router(health.router)
    app.include_router(model.router, **guarded)
    app.include_router(page.router)

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
    _add_error_handlers(app)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    """Every error is `{"detail": "..."}`; a validation error names each bad field in one line."""
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


def worker_app() -> FastAPI:
    """The app of one of uvicorn's worker processes (DEBLUR_WORKERS > 1): it loads its own model."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return create_app()


def serve(settings: Settings | None = None) -> None:
    """Load + warm the model, then serve (`deblur-serve`). Exits 2 with one line if the model is bad
    (no traceback: the message says what to fix)."""
    if settings is None:  # a `deblur-serve` script installed before the entry point became service.serve:main
        from .serve import main  # (until `pip install -e .` rewrites it, as `make` does when pyproject changes)

        return main()
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

    where = {"host": settings.host, "port": settings.port, "log_level": "info"}
    if settings.workers > 1:
        # uvicorn's supervisor starts the workers, restarts one that dies, replaces them one by one on
        # SIGHUP (each loads the model file anew: a reload) and stops them on SIGTERM. This process only
        # proved the model loads, so a bad one exits 2 here instead of in every worker.
        del engine
        uvicorn.run("service.app:worker_app", factory=True, workers=settings.workers, **where)
        return
    # uvicorn shuts down gracefully on SIGTERM (stops accepting, finishes in-flight requests) and then
    # re-raises the signal with the handler that was installed before it; make that an exit 0.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app = create_app(settings, engine)
    if hasattr(signal, "SIGHUP"):  # `docker compose kill -s HUP api`: reload the model, keep serving
        signal.signal(signal.SIGHUP, lambda *_: app.state.reloader.trigger("SIGHUP"))
    uvicorn.run(app, workers=1, **where)  # workers=1: uvicorn would otherwise read WEB_CONCURRENCY
