"""Job records, uploads and results in Redis, and the RQ queue that hands jobs to `deblur-worker`s.

Used by both sides: API replicas (through `redis_jobs.RedisJobs`) and the workers. Every status change is
one Lua script (compare-and-set on the record's `status`), so a cancel and a worker that finishes at the
same moment cannot both win, and a result is stored, indexed and the store limit enforced in one step.
Keys (`deblur:` prefix): `job:ID` (hash), `job:ID:input`, `job:ID:result`, `results` (finish time per
stored result, oldest first) and `result-sizes`. The scripts touch evicted jobs' keys by name, so this
needs one Redis (or a primary), not Redis Cluster.
"""

from __future__ import annotations

import time
from contextlib import suppress

import redis
from rq import Callback, Queue, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.serializers import JSONSerializer

from ..settings import Settings
from .model import JobRecord, JobsUnavailable, QueueFull

PREFIX = "deblur:job:"
RESULTS, SIZES = "deblur:results", "deblur:result-sizes"
QUEUE = "deblur"
RUN = "service.jobs.worker.run"
ON_FAILURE = "service.jobs.worker.on_failure"
JOB_TIMEOUT_S = 3600  # a job running longer than an hour is stopped and failed
RERUNS = 2  # a job whose worker dies is run again up to twice
REDIS_ERRORS = (redis.RedisError,)  # unreachable, timed out, or refused (e.g. out of memory under noeviction)

_START = """
local s = redis.call('HGET', KEYS[1], 'status')
if s ~= 'queued' and s ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'running', 'started', ARGV[1], 'tiles_done', '0')
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
return 1
"""
_REQUEUE = """
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'queued', 'tiles_done', '0')
redis.call('HDEL', KEYS[1], 'started')
return 1
"""
_FINISH = """
local s = redis.call('HGET', KEYS[1], 'status')
if s ~= 'queued' and s ~= 'running' then return false end
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'finished', ARGV[2])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'error', ARGV[4]) end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('DEL', KEYS[2])
return s
"""
_DONE = """
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 0 end
local now, ttl, limit = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local size = string.len(ARGV[5])
for _, old in ipairs(redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now - ttl / 1000)) do
  redis.call('HDEL', KEYS[5], old)
end
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now - ttl / 1000)
redis.call('SET', KEYS[2], ARGV[5], 'PX', ttl)
redis.call('HSET', KEYS[1], 'status', 'done', 'finished', ARGV[2], 'result_expires', ARGV[9],
  'result_bytes', size, 'media_type', ARGV[6], 'headers', ARGV[7], 'tiles_done', ARGV[8])
redis.call('PEXPIRE', KEYS[1], 2 * ttl)
redis.call('DEL', KEYS[3])
redis.call('ZADD', KEYS[4], now, ARGV[1])
redis.call('HSET', KEYS[5], ARGV[1], size)
local total = 0
for _, v in ipairs(redis.call('HVALS', KEYS[5])) do total = total + tonumber(v) end
while total > limit do
  local oldest = redis.call('ZRANGE', KEYS[4], 0, 0)[1]
  if not oldest then break end
  total = total - tonumber(redis.call('HGET', KEYS[5], oldest) or '0')
  redis.call('ZREM', KEYS[4], oldest)
  redis.call('HDEL', KEYS[5], oldest)
  redis.call('DEL', ARGV[10] .. oldest .. ':result')
  if redis.call('EXISTS', ARGV[10] .. oldest) == 1 then
    redis.call('HSET', ARGV[10] .. oldest, 'result_expires', ARGV[2])
  end
end
return 1
"""


def connect(url: str) -> redis.Redis:
    """Bytes in and out (uploads, results, RQ's own data); short timeouts so an outage is a quick 503."""
    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=10, health_check_interval=15)


def where(client: redis.Redis) -> str:
    """host:port/db for messages: never the URL, which may hold a password."""
    kw = client.connection_pool.connection_kwargs
    return kw.get("path") or f"{kw.get('host', '?')}:{kw.get('port', '?')}/{kw.get('db', 0)}"


class RedisJobStore:
    """Blocking calls; the API runs them in worker threads, `deblur-worker` directly."""

    def __init__(self, settings: Settings, client: redis.Redis | None = None) -> None:
        assert settings.redis_url, "RedisJobStore needs DEBLUR_REDIS_URL"
        self.settings = settings
        self.redis = client or connect(settings.redis_url)
        self.queue = Queue(QUEUE, connection=self.redis, serializer=JSONSerializer)
        self._start, self._requeue = self.redis.register_script(_START), self.redis.register_script(_REQUEUE)
        self._finish, self._done = self.redis.register_script(_FINISH), self.redis.register_script(_DONE)

    @property
    def _ttl_ms(self) -> int:
        return int(self.settings.job_ttl_s * 1000)

    def unavailable(self, exc: Exception) -> JobsUnavailable:
        unreachable = isinstance(exc, (redis.ConnectionError, redis.TimeoutError))
        problem = "cannot reach Redis at" if unreachable else "Redis refused the request at"
        return JobsUnavailable(f"jobs back end unavailable: {problem} {where(self.redis)} ({exc})")

    def problem(self) -> str | None:
        try:
            self.redis.ping()
        except REDIS_ERRORS as exc:
            return str(self.unavailable(exc))
        return None

    def submit(self, record: JobRecord, data: bytes) -> None:
        """Record + upload + RQ job in one transaction, if fewer than DEBLUR_JOB_MAX_QUEUED are waiting
        (WATCHed, so replicas submitting at once cannot overshoot the limit)."""
        limit = self.settings.job_max_queued
        with self.redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(self.queue.key)
                    waiting = pipe.llen(self.queue.key)
                    if waiting >= limit:
                        raise QueueFull(f"job queue full: {waiting} jobs waiting (DEBLUR_JOB_MAX_QUEUED); retry later")
                    pipe.multi()
                    pipe.hset(PREFIX + record.id, mapping=record.to_fields())
                    pipe.set(PREFIX + record.id + ":input", data)
                    self.queue.enqueue_call(
                        RUN,
                        args=(record.id,),
                        job_id=record.id,
                        timeout=JOB_TIMEOUT_S,
                        result_ttl=0,
                        failure_ttl=int(self.settings.job_ttl_s),
                        retry=Retry(max=RERUNS),
                        on_failure=Callback(ON_FAILURE),
                        pipeline=pipe,
                    )
                    pipe.execute()
                    return
                except redis.WatchError:
                    continue

    def get(self, job_id: str) -> JobRecord | None:
        raw = self.redis.hgetall(PREFIX + job_id)
        return JobRecord.from_fields({k.decode(): v.decode() for k, v in raw.items()}) if raw else None

    def status(self, job_id: str) -> str | None:
        value = self.redis.hget(PREFIX + job_id, "status")
        return value.decode() if value is not None else None

    def read_input(self, job_id: str) -> bytes | None:
        return self.redis.get(PREFIX + job_id + ":input")

    def read_result(self, job_id: str) -> bytes | None:
        return self.redis.get(PREFIX + job_id + ":result")

    def start(self, job_id: str) -> bool:
        """queued (or running: a re-run after its worker died) → running; False if cancelled meanwhile."""
        return bool(self._start(keys=[PREFIX + job_id], args=[time.time()]))

    def progress(self, job_id: str, tiles: int) -> None:
        self.redis.hset(PREFIX + job_id, "tiles_done", tiles)

    def requeue(self, job_id: str) -> None:
        """Its worker died and RQ queues it again: it shows as queued until a worker starts it."""
        self._requeue(keys=[PREFIX + job_id])

    def finish(self, job_id: str, status: str, error: str = "") -> str | None:
        """queued/running → failed or cancelled (kept 2 x TTL); returns the status it had, None if finished."""
        keys = [PREFIX + job_id, PREFIX + job_id + ":input"]
        before = self._finish(keys=keys, args=[status, time.time(), 2 * self._ttl_ms, error])
        return before.decode() if before else None

    def cancel(self, job_id: str) -> JobRecord | None:
        before = self.finish(job_id, "cancelled")
        if before is None:
            return None
        if before == "queued":  # a running one is stopped by its worker at the next tile batch
            with suppress(NoSuchJobError):
                Job.fetch(job_id, connection=self.redis, serializer=JSONSerializer).delete()
        return self.get(job_id)

    def done(self, job_id: str, data: bytes, media_type: str, headers: str, tiles: int) -> bool:
        """Store the result for TTL and evict the oldest results beyond DEBLUR_JOB_STORE_MB; False if the
        job was cancelled meanwhile (the result is then dropped)."""
        now = time.time()
        keys = [PREFIX + job_id, PREFIX + job_id + ":result", PREFIX + job_id + ":input", RESULTS, SIZES]
        expires = now + self.settings.job_ttl_s
        args = [job_id, now, self._ttl_ms, self.settings.job_store_bytes, data, media_type, headers, tiles]
        return bool(self._done(keys=keys, args=[*args, repr(expires), PREFIX]))

    def delete(self, job_id: str) -> None:
        with self.redis.pipeline() as pipe:
            pipe.delete(PREFIX + job_id, PREFIX + job_id + ":input", PREFIX + job_id + ":result")
            pipe.zrem(RESULTS, job_id)
            pipe.hdel(SIZES, job_id)
            pipe.execute()
