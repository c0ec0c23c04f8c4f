"""API keys for POST /deblur, /jobs* and GET /model (DEBLUR_API_KEYS, DEBLUR_API_KEYS_FILE).

Why digests: the presented key is hashed once and compared with the SHA-256 digest of every configured
key in constant time (`hmac.compare_digest`, no early exit), so the answer time says nothing about how
much of a key was right. A key never reaches a log or Redis: they see its `key_id`, the first 12 hex
digits of the digest, which also names the owner of a job (a job is visible only to its key).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from .http_contract import error_doc

log = logging.getLogger("deblur.auth")
_BEARER = HTTPBearer(auto_error=False, scheme_name="ApiKeyBearer", description="Authorization: Bearer KEY")
_HEADER = APIKeyHeader(name="X-API-Key", auto_error=False, scheme_name="ApiKeyHeader", description="X-API-Key: KEY")
CHALLENGE = {"WWW-Authenticate": "Bearer"}
MISSING = "API key required: send Authorization: Bearer KEY (or X-API-Key: KEY)"
WRONG = "invalid API key"


def key_id(key: str) -> str:
    """The short, one-way name of a key that logs and job records use instead of the key."""
    return hashlib.sha256(key.encode()).hexdigest()[:12]


class ApiKeys:
    """The configured keys, kept only as digests."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._digests = [hashlib.sha256(k.encode()).digest() for k in keys]

    @property
    def enabled(self) -> bool:
        return bool(self._digests)

    def identify(self, presented: str) -> str | None:
        """The key id if `presented` is one of the keys, else None; time independent of which or how close."""
        digest = hashlib.sha256(presented.encode()).digest()
        found = False
        for known in self._digests:  # every digest, always: no early exit
            found |= hmac.compare_digest(known, digest)
        return digest.hex()[:12] if found else None


@dataclass
class Guard:
    """What a protected route adds: the check, and its 401 in the OpenAPI document (nothing when keys are off)."""

    dependencies: list[Any] = field(default_factory=list)
    responses: dict[int | str, dict[str, Any]] = field(default_factory=dict)


def api_key_guard(keys: ApiKeys) -> Guard:
    """Why conditional: with no keys configured the routes and their schema stay exactly as they were."""
    if not keys.enabled:
        return Guard()

    def require_api_key(
        request: Request,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)],
        header: Annotated[str | None, Depends(_HEADER)],
    ) -> str:
        presented = bearer.credentials if bearer is not None else header
        if not presented:
            raise HTTPException(401, MISSING, headers=CHALLENGE)
        who = keys.identify(presented)
        if who is None:
            rid = getattr(request.state, "request_id", "-")
            log.warning("rejected API key %s, request id %s", key_id(presented), rid)
            raise HTTPException(401, WRONG, headers=CHALLENGE)
        request.state.caller = who
        return who

    challenge = {"WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}}
    return Guard([Depends(require_api_key)], {401: error_doc("missing or wrong API key (DEBLUR_API_KEYS)", challenge)})


def caller(request: Request) -> str:
    """The key id behind this request, set by the guard; '' when API keys are off (everyone is one caller)."""
    return getattr(request.state, "caller", "")


Caller = Annotated[str, Depends(caller)]
