"""The jobs routes: POST /jobs, GET /jobs/{id}, its SSE stream and result, DELETE /jobs/{id}.

Why the checks are here and not in a back end: ids, ownership (a job is visible only to the API key that
made it; any other key gets the same 404 as an unknown id) and statuses are answered the same way for the
embedded and the Redis back end. A submitted upload passes /deblur's checks (`runner.inspect_upload`)
before it is queued, so a job that is accepted (202) has an image its worker can deblur.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import anyio
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from ..auth import Caller
from ..deps import AppSettings, CurrentEngine, Jobs
from ..http_contract import (
    IMAGE_RESPONSE,
    RETRY_DOC,
    UPLOAD_ENCODING,
    UPLOAD_ERRORS,
    ErrorBody,
    OneImage,
    OutputFormat,
    Quality,
    error_doc,
    error_response,
)
from ..images import ImageError
from .backend import JobBackend
from .model import JobRecord, JobsError, JobView, new_id, valid_id
from .runner import inspect_upload

log = logging.getLogger("deblur.jobs")
router = APIRouter(tags=["jobs"])
KEEPALIVE_S = 15.0
ID_FROM_BODY = {"job_id": "$response.body#/id"}
LINKS = {  # OpenAPI links: clients and the contract fuzzer follow a submitted job to its other routes
    name: {"operationId": op, "parameters": ID_FROM_BODY}
    for name, op in [("status", "get_job"), ("events", "job_events"), ("result", "job_result"),
                     ("cancel", "delete_job")]
}
NOT_FOUND = error_doc("no such job: unknown, malformed, forgotten after 2 x DEBLUR_JOB_TTL_S, or another key's")
UNAVAILABLE = error_doc("model not loaded yet, job queue full (DEBLUR_JOB_MAX_QUEUED) or Redis unreachable", RETRY_DOC)


class NotDoneBody(ErrorBody):
    status: str


class JobNotFound(JobsError):
    status_code = 404


async def owned(jobs: JobBackend, job_id: str, caller: str) -> JobRecord:
    """The caller's job, else 404 (the same answer whether it is unknown, malformed or someone else's)."""
    if not valid_id(job_id):
        raise JobNotFound("no such job: malformed id")
    record = await jobs.get(job_id)
    if record is None or record.owner != caller:
        raise JobNotFound(f"no such job: {job_id}")
    return record


def answer_error(exc: JobsError) -> JSONResponse:
    return error_response(exc.status_code, str(exc), exc.headers)


@router.post(
    "/jobs",
    operation_id="submit_job",
    status_code=202,
    summary="Queue one image for deblurring",
    description="The same form, query and checks as POST /deblur; the job is queued only if they pass. "
    "Follow it at the Location (GET /jobs/{id}, its /events stream) and fetch /jobs/{id}/result when done.",
    response_model=JobView,
    responses={
        202: {"headers": {"Location": {"description": "/jobs/{id}", "schema": {"type": "string"}}}, "links": LINKS},
        **UPLOAD_ERRORS,
        503: UNAVAILABLE,
    },
    openapi_extra=UPLOAD_ENCODING,
)
async def submit(request: Request, caller: Caller, jobs: Jobs, engine: CurrentEngine, file: OneImage,
                 settings: AppSettings, fmt: OutputFormat = None, quality: Quality = None) -> Any:
    data = await file.read()
    try:
        check = partial(inspect_upload, engine, data, settings)
        shape = await anyio.to_thread.run_sync(check, limiter=request.app.state.upload_checks)
    except ImageError as exc:
        return error_response(exc.status_code, str(exc))
    record = JobRecord(new_id(), caller, shape.tiles, shape.width, shape.height, file.filename, fmt, quality)
    try:
        await jobs.submit(record, data)
    except JobsError as exc:
        return answer_error(exc)
    log.info("job %s queued: %dx%d, %d tiles, key %s", record.id, shape.width, shape.height, shape.tiles, caller or "-")
    return JSONResponse(record.view(), status_code=202, headers={"Location": f"/jobs/{record.id}"})


@router.get("/jobs/{job_id}", operation_id="get_job", summary="A job's status and progress", response_model=JobView,
            responses={404: NOT_FOUND, 503: UNAVAILABLE})
async def status(job_id: str, caller: Caller, jobs: Jobs) -> Any:
    try:
        return (await owned(jobs, job_id, caller)).view()
    except JobsError as exc:
        return answer_error(exc)


SSE_EVENT = {  # one event of the stream: its `data` is a JSON job (as GET /jobs/{id}) or {"detail": ...}
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {"enum": ["progress", "done", "failed", "cancelled", "error"]},
        "data": {"type": "string", "contentMediaType": "application/json"},
    },
}


def sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


async def stream(jobs: JobBackend, record: JobRecord) -> AsyncIterator[bytes]:
    """`progress` on every change of status or tile count, then one `done`, `failed` or `cancelled`."""
    seen: tuple[str, int] | None = None
    quiet_since = time.monotonic()
    while True:
        if (record.status, record.tiles_done) != seen:
            seen = (record.status, record.tiles_done)
            yield sse(record.status if record.is_finished else "progress", record.view())
            quiet_since = time.monotonic()
            if record.is_finished:
                return
        elif time.monotonic() - quiet_since > KEEPALIVE_S:  # proxies close streams that stay silent
            yield b": keep-alive\n\n"
            quiet_since = time.monotonic()
        await asyncio.sleep(jobs.poll_interval_s)
        try:
            latest = await jobs.get(record.id)
        except JobsError as exc:
            yield sse("error", {"detail": str(exc)})
            return
        if latest is None:
            yield sse("error", {"detail": "the job was deleted"})
            return
        record = latest


@router.get(
    "/jobs/{job_id}/events",
    operation_id="job_events",
    summary="Server-Sent Events: progress, then done/failed/cancelled",
    description="`event: progress` with the job (as GET /jobs/{id}) at every change of status or tile count, "
    "then one final `event: done`, `failed` or `cancelled`; `event: error` if the job vanishes or Redis fails.",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {"schema": SSE_EVENT}}}, 404: NOT_FOUND, 503: UNAVAILABLE},
)
async def events(job_id: str, caller: Caller, jobs: Jobs) -> Response:
    try:
        record = await owned(jobs, job_id, caller)
    except JobsError as exc:
        return answer_error(exc)
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # nginx: pass events through at once
    return StreamingResponse(stream(jobs, record), media_type="text/event-stream", headers=headers)


@router.get(
    "/jobs/{job_id}/result",
    operation_id="job_result",
    summary="A done job's image, with /deblur's headers",
    response_class=Response,
    responses={
        200: IMAGE_RESPONSE,
        404: NOT_FOUND,
        409: {"model": NotDoneBody, "description": "not done yet (or failed, cancelled): `status` says which"},
        410: error_doc("the result expired (DEBLUR_JOB_TTL_S) or was evicted by DEBLUR_JOB_STORE_MB"),
        503: UNAVAILABLE,
    },
)
async def result(job_id: str, caller: Caller, jobs: Jobs) -> Response:
    try:
        record = await owned(jobs, job_id, caller)
        if record.status != "done":
            why = f": {record.error}" if record.error else ""
            body = {"detail": f"job is {record.status}{why}", "status": record.status}
            return JSONResponse(body, status_code=409)
        data = await jobs.read_result(record)
    except JobsError as exc:
        return answer_error(exc)
    if data is None:
        return error_response(410, "the result has expired (DEBLUR_JOB_TTL_S, or DEBLUR_JOB_STORE_MB was full)")
    return Response(data, media_type=record.media_type, headers=record.headers)


@router.delete(
    "/jobs/{job_id}",
    operation_id="delete_job",
    summary="Cancel a queued or running job, or delete a finished one",
    description="Queued or running: 200 with the job, now `cancelled` (a running one stops at its next tile "
    "batch). Done, failed or cancelled: 204, and the job and its result are gone (404 after).",
    response_model=JobView,
    responses={204: {"description": "deleted"}, 404: NOT_FOUND, 503: UNAVAILABLE},
)
async def cancel(job_id: str, caller: Caller, jobs: Jobs) -> Any:
    try:
        record = await owned(jobs, job_id, caller)
        cancelled = await jobs.cancel(record.id) if not record.is_finished else None
        if cancelled is not None:
            log.info("job %s cancelled (was %s), key %s", record.id, record.status, caller or "-")
            return cancelled.view()
        await jobs.delete(record.id)
    except JobsError as exc:
        return answer_error(exc)
    return Response(status_code=204)
