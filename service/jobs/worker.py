"""`deblur-worker`: runs the jobs queued in Redis (DEBLUR_REDIS_URL) on its own engine. Start as many as
the hardware holds, on any host that reaches Redis; each runs one job at a time.

Why RQ's SimpleWorker: the job runs in this process on the engine loaded once at start (a forked work
horse would inherit ONNX Runtime's thread pools, which do not survive fork). Why a lease: RQ finds a dead
worker's job when the job's entry in its started registry expires, by default a minute after the job's
timeout. Here that entry lives DEBLUR_JOB_LEASE_S and a heartbeat thread renews it while the job runs, and
the registry maintenance (which re-queues abandoned jobs, up to `RERUNS` times) runs every lease, so a
job whose worker was killed runs again on another worker within about three leases.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from contextlib import suppress
from dataclasses import dataclass
from functools import partial
from typing import Any

from rq.exceptions import AbandonedJobError
from rq.job import Job
from rq.serializers import JSONSerializer
from rq.timeouts import JobTimeoutException
from rq.worker import SimpleWorker, WorkerStatus

from ..engine import Engine, ModelError
from ..images import ImageError
from ..settings import Settings, settings_or_explain
from .progress import JobCancelled, ProgressReporter
from .redis_store import JOB_TIMEOUT_S, REDIS_ERRORS, RERUNS, RedisJobStore
from .runner import run_job

log = logging.getLogger("deblur.worker")


@dataclass
class WorkerContext:
    settings: Settings
    engine: Engine
    store: RedisJobStore


_context: WorkerContext | None = None  # this process's engine and store, set by main()


class LeasedWorker(SimpleWorker):
    """SimpleWorker whose started-registry entries last `lease_s` and are renewed while a job runs."""

    def __init__(self, *args: Any, lease_s: int, **kwargs: Any) -> None:
        # worker_ttl - 15 is how long it blocks waiting for a job, so maintenance also runs when idle
        super().__init__(*args, worker_ttl=lease_s + 15, maintenance_interval=lease_s, **kwargs)
        self.lease_s = lease_s

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        return self.lease_s

    def execute_job(self, job: Job, queue: Any) -> None:
        execution = self.prepare_execution(job)
        stop = threading.Event()
        beat = threading.Thread(target=self._renew, args=(job, execution, stop), name="deblur-lease", daemon=True)
        beat.start()
        try:
            self.perform_job(job, queue, execution)
        finally:
            stop.set()
            beat.join()
        self.set_state(WorkerStatus.IDLE)

    def _renew(self, job: Job, execution: Any, stop: threading.Event) -> None:
        while not stop.wait(self.lease_s / 3):
            with suppress(*REDIS_ERRORS):  # a short outage: the next beat tries again
                self.maintain_heartbeats(job, execution)


def run(job_id: str) -> None:
    """The RQ job: one deblurring, with throttled progress and a cancellation check per tile batch."""
    assert _context is not None, "run() executes inside deblur-worker"
    store, engine = _context.store, _context.engine
    if not store.start(job_id):
        log.info("job %s was cancelled before it started", job_id)
        return
    record, data = store.get(job_id), store.read_input(job_id)
    if record is None or data is None:
        store.finish(job_id, "failed", "the upload was not found in Redis")
        return
    def cancelled() -> bool:
        return store.status(job_id) != "running"

    report = ProgressReporter(record.tiles_total, partial(store.progress, job_id), cancelled)
    try:
        done = run_job(engine, data, record, _context.settings, report)
    except JobCancelled:
        log.info("job %s cancelled after %d/%d tiles", job_id, report.done, record.tiles_total)
        return
    except ImageError as exc:
        store.finish(job_id, "failed", str(exc))
        return
    except JobTimeoutException:
        store.finish(job_id, "failed", f"the job ran longer than {JOB_TIMEOUT_S} s")
        return
    except REDIS_ERRORS:
        raise  # RQ runs it again; on_failure marks it queued meanwhile
    except Exception:
        log.exception("job %s failed", job_id)
        store.finish(job_id, "failed", f"internal error while deblurring; job id {job_id}")
        return
    if not store.done(job_id, done.data, done.media_type, json.dumps(done.headers), record.tiles_total):
        log.info("job %s was cancelled during its last tiles; result dropped", job_id)


def on_failure(job: Job, connection: Any, exc_type: type, exc: BaseException, traceback: Any) -> None:
    """RQ's failure callback, also for abandoned jobs (worker killed): queued again while RQ has re-runs
    left, else failed with the reason; never silently stuck at "running"."""
    assert _context is not None
    store = _context.store
    if job.retries_left:
        log.warning("job %s: %s; running it again", job.id, "its worker stopped" if exc_type is AbandonedJobError
                    else exc_type.__name__)
        store.requeue(job.id)
    elif exc_type is AbandonedJobError:
        store.finish(job.id, "failed", f"the worker running it stopped {RERUNS + 1} times")
    else:
        store.finish(job.id, "failed", f"internal error while deblurring; job id {job.id}")


def main() -> int:
    """Console script `deblur-worker`; exit 2 with one line for bad settings, no Redis or a bad model."""
    global _context
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = settings_or_explain(log)
    if settings is None:
        return 2
    if not settings.redis_url:
        log.error("deblur-worker needs DEBLUR_REDIS_URL (the Redis that the API replicas use)")
        return 2
    store = RedisJobStore(settings)
    if problem := store.problem():
        log.error("cannot start: %s", problem)
        return 2
    try:
        engine = Engine.from_settings(settings)
    except ModelError as exc:
        log.error("cannot start: %s", exc)
        return 2
    _context = WorkerContext(settings, engine, store)
    lease = max(1, round(settings.job_lease_s))
    worker = LeasedWorker([store.queue], connection=store.redis, serializer=JSONSerializer, lease_s=lease)
    log.info("worker ready: model %s on %s, lease %d s", engine.info.version, engine.provider, lease)
    worker.work(with_scheduler=False, logging_level="INFO")
    return 0


if __name__ == "__main__":
    sys.exit(main())
