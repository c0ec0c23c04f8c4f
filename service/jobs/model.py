"""A job's record and what a client sees of it (GET /jobs/{id}); ids; the errors both back ends raise.

Why one record type for both back ends: the embedded store keeps it in memory, the Redis store as a hash of
strings (`to_fields`/`from_fields`); the routes, the SSE stream and the CLI then see one shape.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel

from ..http_contract import RETRY_AFTER

Status = Literal["queued", "running", "done", "failed", "cancelled"]
FINISHED = ("done", "failed", "cancelled")
_ID = re.compile(r"^[A-Za-z0-9_-]{22}$")  # secrets.token_urlsafe(16): 128 random bits, nothing else


def new_id() -> str:
    return secrets.token_urlsafe(16)


def valid_id(text: str) -> bool:
    """Anything else is answered 404 before it reaches a store (an id is never a path or a key pattern)."""
    return bool(_ID.match(text))


@dataclass
class JobRecord:
    id: str
    owner: str  # key id of the API key that made it ('' with keys off)
    tiles_total: int
    width: int
    height: int
    filename: str | None = None
    fmt: str | None = None
    quality: int | None = None
    status: Status = "queued"
    tiles_done: int = 0
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    error: str | None = None
    attempts: int = 0
    result_expires: float | None = None  # done only: TTL, or earlier when the store limit evicted it
    result_bytes: int = 0
    media_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED

    def result_expired(self, now: float | None = None) -> bool:
        return self.result_expires is not None and (now or time.time()) >= self.result_expires

    def eta_s(self, now: float | None = None) -> float | None:
        """Remaining seconds at the pace so far (None until the first tiles are done)."""
        if self.status != "running" or not self.started or self.tiles_done <= 0 or self.tiles_total <= 0:
            return 0.0 if self.status == "done" else None
        elapsed = (now or time.time()) - self.started
        left = self.tiles_total - self.tiles_done
        return round(max(elapsed * left / self.tiles_done, 0.0), 1)

    def view(self) -> dict[str, Any]:
        """GET /jobs/{id}, and each SSE event's data."""
        total = max(self.tiles_total, 1)
        return {
            "id": self.id,
            "status": self.status,
            "progress": {
                "tiles_done": self.tiles_done,
                "tiles_total": self.tiles_total,
                "fraction": round(min(self.tiles_done / total, 1.0), 4),
            },
            "eta_s": self.eta_s(),
            "created": _iso(self.created),
            "started": _iso(self.started),
            "finished": _iso(self.finished),
            "error": self.error,
            "width": self.width,
            "height": self.height,
            "attempts": self.attempts,
            "result_expires": _iso(self.result_expires),
        }

    def to_fields(self) -> dict[str, str]:
        """Redis hash fields (strings; None is left out)."""
        out = {}
        for key, value in asdict(self).items():
            if value is not None:
                out[key] = json.dumps(value) if key == "headers" else str(value)
        return out

    @classmethod
    def from_fields(cls, raw: dict[str, str]) -> JobRecord:
        kinds = {f.name: f.type for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, text in raw.items():
            kind = kinds.get(key)
            if kind is None:
                continue
            if key == "headers":
                values[key] = json.loads(text)
            elif "float" in kind:
                values[key] = float(text)
            elif "int" in kind:
                values[key] = int(text)
            else:
                values[key] = text
        return cls(**values)


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Progress(BaseModel):
    tiles_done: int
    tiles_total: int
    fraction: float


class JobView(BaseModel):
    """A job as clients see it. Times are ISO 8601 UTC; `eta_s` is null until the first tiles are done."""

    id: str
    status: Status
    progress: Progress
    eta_s: float | None
    created: str
    started: str | None
    finished: str | None
    error: str | None
    width: int
    height: int
    attempts: int
    result_expires: str | None


class JobsError(Exception):
    """A refusal with its HTTP status (the routes answer it as {"detail": ...})."""

    status_code = 500
    headers: dict[str, str] | None = None


class QueueFull(JobsError):
    status_code = 503
    headers = {"Retry-After": RETRY_AFTER}


class JobsUnavailable(JobsError):
    """The Redis back end cannot be reached: 503, and /readyz says the same."""

    status_code = 503
    headers = {"Retry-After": RETRY_AFTER}
