"""The Redis jobs back end as the API replicas see it (DEBLUR_REDIS_URL): submit, look, cancel, delete.

Why threads: `RedisJobStore` is blocking (RQ is); each call here is one short round trip run off the event
loop. Any replica answers for any job because everything lives in Redis, and an outage becomes a clear
503 (`JobsUnavailable`) rather than a hang or a 500; /readyz reports the same reason.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TypeVar

import anyio

from ..settings import Settings
from .model import JobRecord
from .redis_store import REDIS_ERRORS, RedisJobStore

T = TypeVar("T")


class RedisJobs:
    poll_interval_s = 0.25

    def __init__(self, settings: Settings) -> None:
        self.store = RedisJobStore(settings)

    async def _call(self, fn: Callable[..., T], *args: object) -> T:
        try:
            return await anyio.to_thread.run_sync(partial(fn, *args))
        except REDIS_ERRORS as exc:
            raise self.store.unavailable(exc) from None

    async def start(self) -> None:
        """Nothing to start: the workers are separate `deblur-worker` processes."""

    async def close(self) -> None:
        self.store.redis.close()

    async def problem(self) -> str | None:
        return await anyio.to_thread.run_sync(self.store.problem)

    async def submit(self, record: JobRecord, data: bytes) -> None:
        await self._call(self.store.submit, record, data)

    async def get(self, job_id: str) -> JobRecord | None:
        return await self._call(self.store.get, job_id)

    async def read_result(self, record: JobRecord) -> bytes | None:
        if record.result_expired():
            return None
        return await self._call(self.store.read_result, record.id)

    async def cancel(self, job_id: str) -> JobRecord | None:
        return await self._call(self.store.cancel, job_id)

    async def delete(self, job_id: str) -> None:
        await self._call(self.store.delete, job_id)
