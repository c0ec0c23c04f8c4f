"""POST /deblur: one image in, the deblurred image out, through the concurrency gate."""

from __future__ import annotations

import logging
import time
from functools import partial

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..deps import AppMetrics, AppSettings, CurrentEngine, Gate
from ..http_contract import (
    DEBLUR_RESPONSES,
    RETRY_AFTER,
    UPLOAD_ENCODING,
    OneImage,
    OutputFormat,
    Quality,
    download_name,
    error_response,
    image_headers,
)
from ..images import ImageError
from ..middleware import Busy
from ..pipeline import process_bytes

log = logging.getLogger("deblur.app")  # the app's logger: operators filter on it, whichever router logs
router = APIRouter()


@router.post(
    "/deblur",
    responses=DEBLUR_RESPONSES,
    response_class=Response,
    summary="Deblur one image",
    openapi_extra=UPLOAD_ENCODING,
)
async def deblur(request: Request, eng: CurrentEngine, file: OneImage, settings: AppSettings, gate: Gate,
                 metrics: AppMetrics, fmt: OutputFormat = None, quality: Quality = None) -> Response:
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
        return error_response(503, str(exc), {"Retry-After": RETRY_AFTER})
    except ImageError as exc:
        return error_response(exc.status_code, str(exc))
    except Exception:
        rid = request.state.request_id
        log.exception("inference failed, request id %s", rid)
        return error_response(500, f"internal error while deblurring; request id {rid}")
    for stage, seconds in done.stages.items():
        metrics.stages.labels(stage).observe(seconds)
    metrics.tiles.inc(done.tiles)
    metrics.megapixels.inc(done.megapixels)
    name = download_name(file.filename, done.encoded.format)
    headers = image_headers(eng.info.version, eng.provider, done.seconds, done.tiles, name, done.encoded.fallback)
    return Response(done.encoded.data, media_type=done.encoded.media_type, headers=headers)
