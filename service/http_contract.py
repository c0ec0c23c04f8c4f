"""What POST /deblur and the jobs routes share on the wire: the upload's form and query parameters, the
result's headers, the JSON error body, and how all of them are declared in the OpenAPI document.

Why one module: a job promises "the same checks and errors as /deblur" and "the image with the same headers";
both routes reading one definition is what keeps that promise.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Annotated, Any, Literal

from fastapi import Depends, File, HTTPException, Query, Request, UploadFile
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute

RETRY_AFTER = "2"


class ErrorBody(BaseModel):
    detail: str


def error_response(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def error_doc(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"model": ErrorBody, "description": description}
    if headers:
        doc["headers"] = headers
    return doc


RETRY_DOC = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "string"}}}
IMAGE_HEADERS = {
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
IMAGE_RESPONSE = {
    "description": "the deblurred image, same size and orientation as the (EXIF-corrected) input",
    "content": {"image/png": {}, "image/jpeg": {}, "image/webp": {}},
    "headers": IMAGE_HEADERS,
}
# The checks an upload goes through, shared by POST /deblur and POST /jobs (before a job is queued).
UPLOAD_ERRORS: dict[int | str, dict[str, Any]] = {
    400: error_doc("malformed request (unparsable multipart body, empty file)"),
    408: error_doc("the request body did not arrive within DEBLUR_BODY_TIMEOUT_S"),
    413: error_doc("request body, image pixel count or image side over the limit"),
    415: error_doc("not a decodable supported image (PNG, JPEG, WebP, BMP, TIFF), or animated"),
    422: error_doc("missing `file` field, more than one file, or bad query parameter"),
}
DEBLUR_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: IMAGE_RESPONSE,
    **UPLOAD_ERRORS,
    500: error_doc("unexpected inference failure; the body names the request id"),
    503: error_doc("busy (concurrency and queue full) or model not loaded yet", RETRY_DOC),
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

ImageFile = Annotated[UploadFile, File(description="one image: PNG, JPEG, WebP, BMP or TIFF")]
OutputFormat = Annotated[
    Literal["png", "jpeg", "jpg", "webp"] | None,
    Query(alias="format", description="output format; default: the input's if png/jpeg/webp, else png"),
]
Quality = Annotated[int | None, Query(ge=1, le=100, description="JPEG/WebP quality")]
ONE_FILE_ONLY = "file: send exactly one image (got several `file` parts)"


async def one_image(request: Request, file: ImageFile) -> UploadFile:
    """The upload's `file`; several `file` parts are a 422 (never guess which one the client meant)."""
    if len((await request.form()).getlist("file")) > 1:
        raise HTTPException(422, ONE_FILE_ONLY)
    return file


OneImage = Annotated[UploadFile, Depends(one_image)]

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def download_name(filename: str | None, fmt: str) -> str:
    stem = (filename or "").replace("\\", "/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
    stem = _SAFE_NAME.sub("_", stem).strip("._")[:64] or "image"
    return f"{stem}-deblurred.{'jpg' if fmt == 'jpeg' else fmt}"


def image_headers(
    version: str, provider: str, seconds: float, tiles: int, name: str, fallback: str | None
) -> dict[str, str]:
    """The headers that travel with a deblurred image, from /deblur and from a job's result alike."""
    headers = {
        "X-Model-Version": version,
        "X-Execution-Provider": provider,
        "X-Process-Time-Ms": f"{seconds * 1000:.1f}",
        "X-Tiles": str(tiles),
        "Content-Disposition": f'inline; filename="{name}"',
    }
    if fallback:
        headers["X-Format-Fallback"] = fallback
    return headers


def api_routes(routes: Iterable[BaseRoute]) -> Iterator[APIRoute]:
    """Every APIRoute, also those of included routers (FastAPI >= 0.165 keeps an included router as one
    entry of `app.routes` whose own routes sit on its `original_router`)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif (included := getattr(route, "original_router", None)) is not None:
            yield from api_routes(included.routes)


async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
    """FastAPI's answer for HTTP errors, except that a 405's `Allow` lists the methods of every route on the
    path (Starlette names only the first route's: /jobs/{id} has GET and DELETE on two routes)."""
    if exc.status_code == 405:
        path = request.url.path
        methods = {m for r in api_routes(request.app.routes) if r.path_regex.match(path) for m in r.methods}
        allow = {**(exc.headers or {}), "Allow": ", ".join(sorted(methods))}
        exc = StarletteHTTPException(405, exc.detail, headers=allow)
    return await http_exception_handler(request, exc)
