"""Async jobs: POST /jobs, status, live progress (SSE), result, cancel — for work longer than a request.

`router` holds the routes; `backend.JobBackend` is the one interface of the two back ends: `embedded`
(the default: in-process workers, spooled results) and `redis_jobs` (DEBLUR_REDIS_URL: any replica takes a
job, any `deblur-worker` runs it). The HTTP contract is in docs/jobs.md.
"""

from __future__ import annotations

from collections.abc import Callable

from ..engine import Engine
from ..middleware import ConcurrencyGate
from ..settings import Settings
from .backend import JobBackend


def make_backend(
    settings: Settings,
    engine: Callable[[], Engine | None],
    gate: ConcurrencyGate,
    on_done: Callable[[int, float], None] | None = None,
) -> JobBackend:
    """Redis when DEBLUR_REDIS_URL is set, else embedded on this process's engine and gate."""
    if settings.redis_url:
        from .redis_jobs import RedisJobs  # imported only when used: the embedded default needs no client

        return RedisJobs(settings)
    from .embedded import EmbeddedJobs

    return EmbeddedJobs(settings, engine, gate, on_done)
