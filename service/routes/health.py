"""What probes and scrapers read: /healthz (the process answers), /readyz (it can serve), /metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..deps import AppMetrics, Holder, Jobs
from ..http_contract import RETRY_AFTER, error_doc, error_response

router = APIRouter()


@router.get("/healthz", summary="Liveness")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness", responses={503: error_doc("model not loaded/warmed yet, or Redis down")})
async def readyz(holder: Holder, jobs: Jobs) -> Any:
    eng = holder.engine
    if eng is None or not eng.warmed:
        why = f"model not loaded: {holder.error}" if holder.error else "model loading"
        return error_response(503, why, {"Retry-After": RETRY_AFTER})
    if problem := await jobs.problem():
        return error_response(503, problem, {"Retry-After": RETRY_AFTER})
    return {"status": "ready", "model_version": eng.info.version}


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def prometheus(metrics: AppMetrics) -> Response:
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
