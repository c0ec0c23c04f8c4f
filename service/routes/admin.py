"""POST /admin/reload: swap in a re-exported model without downtime (see `reload.Reloader`).

`app.create_app` includes this router only when DEBLUR_ADMIN_TOKEN is set; without a token the route does
not exist (404), so there is no default credential to guess.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from ..reload import ReloadDone, ReloadRejected

_BEARER = HTTPBearer(auto_error=False, description="DEBLUR_ADMIN_TOKEN")


class AdminError(BaseModel):
    detail: str


async def _authorised(
    request: Request, cred: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)]
) -> None:
    if cred is None:
        raise HTTPException(
            401,
            "admin token required: Authorization: Bearer <DEBLUR_ADMIN_TOKEN>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    expected = request.app.state.settings.admin_token.get_secret_value().encode()
    if not secrets.compare_digest(cred.credentials.encode(), expected):
        raise HTTPException(403, "wrong admin token")


RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": AdminError, "description": "no `Authorization: Bearer` token"},
    403: {"model": AdminError, "description": "wrong token"},
    409: {"model": AdminError, "description": "the new model failed to load or warm up; the old one serves on"},
}
router = APIRouter(tags=["admin"])


@router.post(
    "/admin/reload",
    summary="Reload the model without downtime",
    description="Loads and warms up DEBLUR_MODEL_PATH beside the model in use, then swaps it in; requests "
    "in flight finish on the previous model. Same as sending SIGHUP to the server.",
    response_model=ReloadDone,
    responses=RESPONSES,
    dependencies=[Depends(_authorised)],
)
async def admin_reload(request: Request) -> Any:
    try:
        return await anyio.to_thread.run_sync(request.app.state.reloader.reload)
    except ReloadRejected as exc:
        return JSONResponse({"detail": str(exc)}, status_code=409)
