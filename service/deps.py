"""What a route takes from its app, as typed dependencies: the engine in use, the settings, the gate, the
metrics and the job back end.

Why dependencies: the app's state is built once in `app.create_app`; the routes name what they need in their
signature, and the 503 for a model that is not loaded yet is raised in one place (`current_engine`).
They are `async def` so FastAPI calls them on the event loop, not in a worker thread.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from .engine import Engine
from .http_contract import RETRY_AFTER
from .jobs.backend import JobBackend
from .middleware import ConcurrencyGate, Metrics
from .settings import Settings

NOT_LOADED = "model not loaded yet"


class EngineHolder:
    """The engine in use. Why a holder: a reload builds a new Engine beside this one and swaps it in;
    requests that already took a reference finish on the old one."""

    def __init__(self, engine: Engine | None = None) -> None:
        self.engine = engine
        self.error: str | None = None

    def swap(self, engine: Engine) -> Engine | None:
        old, self.engine, self.error = self.engine, engine, None
        return old


async def engine_holder(request: Request) -> EngineHolder:
    return request.app.state.holder


async def current_engine(request: Request) -> Engine:
    """The engine in use, else 503 with Retry-After (the model is still loading, or failed to)."""
    engine = request.app.state.holder.engine
    if engine is None:
        raise HTTPException(503, NOT_LOADED, headers={"Retry-After": RETRY_AFTER})
    return engine


async def app_settings(request: Request) -> Settings:
    return request.app.state.settings


async def concurrency_gate(request: Request) -> ConcurrencyGate:
    return request.app.state.gate


async def app_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


async def job_backend(request: Request) -> JobBackend:
    return request.app.state.jobs


Holder = Annotated[EngineHolder, Depends(engine_holder)]
CurrentEngine = Annotated[Engine, Depends(current_engine)]
AppSettings = Annotated[Settings, Depends(app_settings)]
Gate = Annotated[ConcurrencyGate, Depends(concurrency_gate)]
AppMetrics = Annotated[Metrics, Depends(app_metrics)]
Jobs = Annotated[JobBackend, Depends(job_backend)]
