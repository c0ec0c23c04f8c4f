"""The one interface the routes use; `embedded.EmbeddedJobs` and `redis_jobs.RedisJobs` implement it.

Ownership, ids and HTTP statuses are the routes' business (one place to audit); a back end stores
records, inputs and results, runs or hands out the work, and enforces the queue and store limits.
"""

from __future__ import annotations

from typing import Protocol

from .model import JobRecord


class JobBackend(Protocol):
    poll_interval_s: float  # how often the SSE stream looks for news

    async def start(self) -> None:
        """Begin serving (embedded: start the in-process workers)."""

    async def close(self) -> None:
        """Stop; the embedded back end also deletes its spool (what a restart loses, README)."""

    async def problem(self) -> str | None:
        """Why jobs cannot be served now (for /readyz), or None."""

    async def submit(self, record: JobRecord, data: bytes) -> None:
        """Store the record and the upload and queue the job; raises QueueFull or JobsUnavailable."""

    async def get(self, job_id: str) -> JobRecord | None:
        """The record, or None once it is forgotten (or never was)."""

    async def read_result(self, record: JobRecord) -> bytes | None:
        """A done job's image, or None when it has expired."""

    async def cancel(self, job_id: str) -> JobRecord | None:
        """Queued or running → cancelled (a running one stops at its next tile batch); None if finished."""

    async def delete(self, job_id: str) -> None:
        """Forget a finished job and its result."""
