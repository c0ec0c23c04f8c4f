"""GET /model: what is being served (name, version, digest, tiling, the input contract)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ..deps import NOT_LOADED, CurrentEngine
from ..http_contract import error_doc

router = APIRouter()


@router.get("/model", summary="The served model", responses={503: error_doc(NOT_LOADED)})
async def model(eng: CurrentEngine) -> Any:
    return eng.describe()
