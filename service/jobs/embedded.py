"""The default jobs back end: records in memory, uploads and results spooled to a temporary folder, and
in-process workers that take the same concurrency gate as POST /deblur and run on the same engine.

Why in-process: no settings and no other service; a job and a /deblur request queue for the same
DEBLUR_MAX_CONCURRENCY slots, so jobs cannot starve the machine. The price (README, "what a restart
loses"): the spool is this process's own and is deleted on shutdown, so a restart forgets every job.
Progress is written by the inference thread as plain attribute stores on the record (atomic under the
GIL); the event loop only reads them.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import time
from collections import OrderedDict
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

import anyio

from ..engine import Engine
from ..images import ImageError
from ..middleware import ConcurrencyGate
from ..settings import Settings
from .model import JobRecord, JobsUnavailable, QueueFull
from .progress import JobCancelled, ProgressReporter
from .runner import Finished, run_job

log = logging.getLogger("deblur.jobs")


class EmbeddedJobs:
    poll_interval_s = 0.1

    def __init__(
        self,
        settings: Settings,
        engine: Callable[[], Engine | None],
        gate: ConcurrencyGate,
        on_done: Callable[[int, float], None] | None = None,
    ) -> None:
        self.settings, self._engine, self._gate, self._on_done = settings, engine, gate, on_done
        self._records: dict[str, JobRecord] = {}
        self._waiting: set[str] = set()  # queued ids: what DEBLUR_JOB_MAX_QUEUED counts
        self._stored: OrderedDict[str, int] = OrderedDict()  # results on disk, oldest first, and their sizes
        self._stored_bytes = 0
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._tasks: list[asyncio.Task] = []
        self._spool: Path | None = None
        self._closing = False

    async def start(self) -> None:
        workers = [self._work() for _ in range(self.settings.max_concurrency)]
        self._tasks = [asyncio.create_task(c) for c in [*workers, self._sweep()]]

    async def close(self) -> None:
        self._closing = True  # a running inference stops at its next tile batch
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._spool is not None:
            shutil.rmtree(self._spool, ignore_errors=True)

    async def problem(self) -> str | None:
        return None

    async def submit(self, record: JobRecord, data: bytes) -> None:
        if len(self._waiting) >= self.settings.job_max_queued:
            raise QueueFull(f"job queue full: {len(self._waiting)} jobs waiting (DEBLUR_JOB_MAX_QUEUED); retry later")
        self._waiting.add(record.id)  # the place is taken before the first await
        try:
            await anyio.to_thread.run_sync(self._path(record.id, "in").write_bytes, data)
        except OSError as exc:
            self._waiting.discard(record.id)
            raise JobsUnavailable(f"cannot store the upload: {exc.strerror or exc}") from None
        self._records[record.id] = record
        self._queue.put_nowait(record.id)

    async def get(self, job_id: str) -> JobRecord | None:
        record = self._records.get(job_id)
        return None if record is None or self._forgotten(record, time.time()) else record

    async def read_result(self, record: JobRecord) -> bytes | None:
        if record.result_expired() or record.id not in self._stored:
            return None
        try:
            return await anyio.to_thread.run_sync(self._path(record.id, "out").read_bytes)
        except FileNotFoundError:
            return None

    async def cancel(self, job_id: str) -> JobRecord | None:
        record = self._records.get(job_id)
        if record is None or record.is_finished:
            return None
        was_queued = record.status == "queued"
        record.status, record.finished = "cancelled", time.time()
        if was_queued:
            self._waiting.discard(job_id)
            self._path(job_id, "in").unlink(missing_ok=True)
        return record

    async def delete(self, job_id: str) -> None:
        self._records.pop(job_id, None)
        self._drop_result(job_id)

    def _path(self, job_id: str, kind: str) -> Path:
        if self._spool is None:  # created on first use: a server that never sees a job leaves no folder
            self._spool = Path(tempfile.mkdtemp(prefix="deblur-jobs-"))
        return self._spool / f"{job_id}.{kind}"

    def _forgotten(self, record: JobRecord, now: float) -> bool:
        """A finished record is answered for 2 x DEBLUR_JOB_TTL_S (the second half: 410 for its result)."""
        return record.finished is not None and now >= record.finished + 2 * self.settings.job_ttl_s

    async def _work(self) -> None:
        while True:
            job_id = await self._queue.get()
            record = self._records.get(job_id)
            if record is None or record.status != "queued":
                continue  # cancelled while it waited
            async with self._gate.slot(refuse_when_full=False):
                if record.status == "queued":
                    await self._run(record)

    async def _run(self, record: JobRecord) -> None:
        self._waiting.discard(record.id)
        record.status, record.started, record.attempts = "running", time.time(), record.attempts + 1
        source = self._path(record.id, "in")

        def publish(tiles: int) -> None:
            record.tiles_done = tiles

        report = ProgressReporter(record.tiles_total, publish, lambda: record.status != "running" or self._closing)
        try:
            engine = self._engine()
            if engine is None:
                raise RuntimeError("no model loaded")
            data = await anyio.to_thread.run_sync(source.read_bytes)
            done = await anyio.to_thread.run_sync(run_job, engine, data, record, self.settings, report)
        except JobCancelled:
            log.info("job %s cancelled after %d/%d tiles", record.id, report.done, record.tiles_total)
        except ImageError as exc:  # inspected before queueing, so only an image that decodes differently
            self._fail(record, str(exc))
        except Exception:
            log.exception("job %s failed", record.id)
            self._fail(record, f"internal error while deblurring; job id {record.id}")
        else:
            await self._keep(record, done)
        finally:
            source.unlink(missing_ok=True)

    def _fail(self, record: JobRecord, error: str) -> None:
        if record.status == "running":
            record.status, record.finished, record.error = "failed", time.time(), error

    async def _keep(self, record: JobRecord, done: Finished) -> None:
        await anyio.to_thread.run_sync(self._path(record.id, "out").write_bytes, done.data)
        if record.status != "running":  # cancelled during the last batch or the write
            self._path(record.id, "out").unlink(missing_ok=True)
            return
        now = time.time()
        record.tiles_done, record.media_type, record.headers = record.tiles_total, done.media_type, done.headers
        record.result_bytes, record.result_expires = len(done.data), now + self.settings.job_ttl_s
        record.status, record.finished = "done", now
        self._stored[record.id] = len(done.data)
        self._stored_bytes += len(done.data)
        while self._stored_bytes > self.settings.job_store_bytes:  # DEBLUR_JOB_STORE_MB: oldest expire first
            oldest = next(iter(self._stored))
            evicted = self._records.get(oldest)
            if evicted is not None:
                evicted.result_expires = now
            self._drop_result(oldest)
        if self._on_done is not None:
            self._on_done(record.tiles_total, record.width * record.height / 1e6)

    def _drop_result(self, job_id: str) -> None:
        size = self._stored.pop(job_id, None)
        if size is not None:
            self._stored_bytes -= size
            self._path(job_id, "out").unlink(missing_ok=True)

    async def _sweep(self) -> None:
        """Frees the disk and memory of expired results and forgotten records (answers never depend on it)."""
        every = min(max(self.settings.job_ttl_s / 4, 0.05), 5.0)
        while True:
            await asyncio.sleep(every)
            now = time.time()
            for job_id, record in list(self._records.items()):
                if self._forgotten(record, now):
                    await self.delete(job_id)
                elif record.result_expired(now):
                    self._drop_result(job_id)
            with suppress(OSError):
                if self._spool and not self._records and not self._waiting and not any(self._spool.iterdir()):
                    self._spool.rmdir()  # nothing kept: leave TMPDIR as it was
                    self._spool = None
