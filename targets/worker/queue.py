"""A job queue on a Redis stream read by a consumer group, and the worker that consumes it.

Keys: the stream `jobs`, read by the group `workers`; one hash `job:<id>` per job (status,
attempts, completions, duration, poison flag); the dead-letter stream `jobs:dead`.

Delivery is at least once. A worker holds an entry (a lease) from delivery until it acks it.
While a job runs, its worker renews the lease every visibility_s / 4 by claiming the entry for
itself again (XCLAIM resets the entry's idle time), so a job may run longer than the
visibility timeout. An entry whose worker stopped renewing it for visibility_s, because the
worker died or its run failed, is claimed by the next free slot of any worker (XAUTOCLAIM with
that min idle time) and run again. Attempts are counted in the job's hash when a run starts.
A failed run leaves its entry pending, so the retry waits for the visibility timeout, a backoff
of its own. After max_attempts runs the job goes to the dead-letter stream. A job is marked
done once, by its first completion. A later completion or delivery of a done job counts as a
duplicate.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
import structlog
from prometheus_client import Counter, Gauge
from redis.exceptions import RedisError, ResponseError

STREAM = "jobs"
GROUP = "workers"
DEAD_STREAM = "jobs:dead"
JOB_TTL_S = 3600
# Bounds the stream's memory, far above the jobs of any experiment run.
STREAM_MAXLEN = 100_000

RUNS = Counter("worker_job_runs_total", "Job runs by outcome", ["outcome"])
REDELIVERED = Counter("worker_jobs_redelivered_total", "Entries claimed after their lease expired")
DEAD_LETTERED = Counter("worker_jobs_dead_lettered_total", "Jobs moved to the dead-letter stream")
DUPLICATES = Counter(
    "worker_jobs_duplicates_total", "Completions or deliveries of a job already done"
)
RUNNING = Gauge("worker_jobs_running", "Jobs this instance is running now")

log = structlog.get_logger(__name__)


class JobFailed(Exception):
    """A job's run raised, so the job is retried or dead-lettered."""


class _Stopped(Exception):
    """The worker stopped while a job ran."""


def job_key(job_id: str) -> str:
    """Return the key of a job's hash."""
    return f"job:{job_id}"


async def enqueue(client: aioredis.Redis, job_id: str, duration_ms: float, poison: bool) -> None:
    """Write the job's hash and append its entry to the stream, in one transaction."""
    key = job_key(job_id)
    fields: dict[Any, Any] = {
        "status": "queued",
        "duration_ms": duration_ms,
        "poison": int(poison),
        "attempts": 0,
        "completions": 0,
        "submitted": time.time(),
    }
    async with client.pipeline(transaction=True) as pipe:
        pipe.hset(key, mapping=fields)
        pipe.expire(key, JOB_TTL_S)
        pipe.xadd(STREAM, {"id": job_id}, maxlen=STREAM_MAXLEN, approximate=True)
        await pipe.execute()


async def read_job(client: aioredis.Redis, job_id: str) -> dict[str, str]:
    """Return the job's hash as strings, or an empty dict when the job is unknown."""
    raw = await client.hgetall(job_key(job_id))
    return {_text(k): _text(v) for k, v in raw.items()}


async def ensure_group(client: aioredis.Redis) -> None:
    """Create the consumer group (and the stream) unless it exists."""
    try:
        await client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def run_job(job: dict[str, str]) -> None:
    """Do the job's work: wait its duration, or raise JobFailed for a poison job."""
    if job.get("poison") == "1":
        raise JobFailed("poison job")
    await asyncio.sleep(float(job.get("duration_ms", "0")) / 1000.0)


@dataclass(frozen=True)
class WorkerConfig:
    """A worker instance's consumer name, slots and retry policy."""

    consumer: str
    concurrency: int = 3
    visibility_s: float = 3.0
    max_attempts: int = 3
    # Seconds a free slot blocks on a read, so it looks for expired leases this often.
    poll_s: float = 1.0


class Worker:
    """Consumes the job stream with `concurrency` slots and renews the leases it holds.

    The client must decode responses (`decode_responses=True`), so entries read as strings.
    """

    def __init__(self, client: aioredis.Redis, config: WorkerConfig) -> None:
        self.client = client
        self.config = config
        self._leased: set[str] = set()
        self._stopping = asyncio.Event()
        self._log = log.bind(consumer=config.consumer)

    def stop(self) -> None:
        """Ask the slots to stop. A job still running is left pending for another worker.

        NOTE: the worker stops through this flag, not task cancellation, because redis-py
        8.2's asyncio client swallows a CancelledError that arrives during a command, so a
        cancelled slot would go on forever.
        """
        self._stopping.set()

    async def run(self) -> None:
        """Run the slots and the lease renewal until stop() is called."""
        while not self._stopping.is_set():
            try:
                await ensure_group(self.client)
                break
            except (RedisError, OSError) as exc:
                self._log.warning("worker.group_failed", error=str(exc))
                await asyncio.sleep(0.5)
        self._log.info("worker.started", concurrency=self.config.concurrency,
                       visibility_s=self.config.visibility_s,
                       max_attempts=self.config.max_attempts)  # fmt: skip
        async with asyncio.TaskGroup() as group:
            for _ in range(self.config.concurrency):
                group.create_task(self._slot())
            group.create_task(self._renew_leases())
        self._log.info("worker.stopped")

    async def _slot(self) -> None:
        """Take one entry at a time: an expired lease first, else a new entry."""
        while not self._stopping.is_set():
            try:
                entry = await self._next_entry()
                if entry is None:
                    continue
                entry_id, job_id = entry
                self._leased.add(entry_id)
                try:
                    await self.process(entry_id, job_id)
                finally:
                    self._leased.discard(entry_id)
            except (RedisError, OSError) as exc:
                # The entry stays pending and is claimed again after the visibility timeout.
                self._log.warning("worker.redis_failed", error=str(exc))
                await asyncio.sleep(0.5)

    async def _next_entry(self) -> tuple[str, str] | None:
        idle_ms = int(self.config.visibility_s * 1000)
        claimed: list[Any] = await self.client.xautoclaim(
            STREAM, GROUP, self.config.consumer, min_idle_time=idle_ms, count=1
        )
        for entry_id, fields in claimed[1]:
            if not fields:
                continue
            REDELIVERED.inc()
            self._log.info("job.redelivered", entry=entry_id, job=fields["id"])
            return str(entry_id), str(fields["id"])
        read: Any = await self.client.xreadgroup(
            GROUP, self.config.consumer, {STREAM: ">"}, count=1,
            block=int(self.config.poll_s * 1000),
        )  # fmt: skip
        for _, entries in read or []:
            for entry_id, fields in entries:
                return str(entry_id), str(fields["id"])
        return None

    async def process(self, entry_id: str, job_id: str) -> None:
        """Run one delivered entry's job, then ack it, dead-letter it or leave it pending."""
        key = job_key(job_id)
        job = await read_job(self.client, job_id)
        if not job:
            self._log.warning("job.missing", entry=entry_id, job=job_id)
            await self.client.xack(STREAM, GROUP, entry_id)
            return
        if job.get("status") == "done":
            DUPLICATES.inc()
            self._log.info("job.duplicate_delivery", entry=entry_id, job=job_id)
            await self.client.xack(STREAM, GROUP, entry_id)
            return
        if int(job.get("attempts", "0")) >= self.config.max_attempts:
            # Its last attempt ended without an ack, as when a worker died running it.
            await self._dead_letter(entry_id, job_id, int(job["attempts"]))
            return

        attempts = int(await self.client.hincrby(key, "attempts", 1))
        await self.client.hset(key, mapping={"status": "running", "worker": self.config.consumer})
        RUNNING.inc()
        try:
            await self._run_unless_stopped(job)
        except _Stopped:
            self._log.info("job.left_pending", job=job_id, attempt=attempts)
            return
        except Exception as exc:
            RUNS.labels("failed").inc()
            self._log.warning("job.failed", job=job_id, attempt=attempts, error=str(exc))
            if attempts >= self.config.max_attempts:
                await self._dead_letter(entry_id, job_id, attempts)
            else:
                await self.client.hset(key, "status", "retrying")
            return
        finally:
            RUNNING.dec()

        RUNS.labels("done").inc()
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hincrby(key, "completions", 1)
            pipe.hset(key, mapping={"status": "done", "done": time.time()})
            pipe.xack(STREAM, GROUP, entry_id)
            completions, *_ = await pipe.execute()
        if int(completions) > 1:
            DUPLICATES.inc()
            self._log.info("job.duplicate_completion", job=job_id, completions=completions)

    async def _run_unless_stopped(self, job: dict[str, str]) -> None:
        """Run the job, or raise _Stopped and leave it unfinished when stop() comes first."""
        running = asyncio.create_task(run_job(job))
        stopping = asyncio.create_task(self._stopping.wait())
        done, _ = await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if running not in done:
            # The job only sleeps, so cancelling it is safe, unlike a Redis command.
            running.cancel()
            raise _Stopped
        running.result()

    async def _dead_letter(self, entry_id: str, job_id: str, attempts: int) -> None:
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.xadd(DEAD_STREAM, {"id": job_id, "attempts": attempts},
                      maxlen=STREAM_MAXLEN, approximate=True)  # fmt: skip
            pipe.hset(
                job_key(job_id),
                mapping={"status": "dead", "max_attempts": self.config.max_attempts},
            )
            pipe.xack(STREAM, GROUP, entry_id)
            await pipe.execute()
        DEAD_LETTERED.inc()
        self._log.warning("job.dead_lettered", job=job_id, attempts=attempts)

    async def _renew_leases(self) -> None:
        """Reset the idle time of the entries this worker runs, while it still owns them."""
        interval = self.config.visibility_s / 4
        while not self._stopping.is_set():
            await asyncio.sleep(interval)
            leased = set(self._leased)
            if not leased:
                continue
            try:
                pending = await self.client.xpending_range(
                    STREAM, GROUP, min="-", max="+", count=len(leased) + 1000,
                    consumername=self.config.consumer,
                )  # fmt: skip
                owned = [str(p["message_id"]) for p in pending]
                renew: list[Any] = [entry for entry in owned if entry in leased]
                if renew:
                    await self.client.xclaim(STREAM, GROUP, self.config.consumer, 0, renew,
                                             justid=True)  # fmt: skip
            except (RedisError, OSError) as exc:
                self._log.warning("lease.renew_failed", error=str(exc))
                continue
            for entry in leased - set(owned):
                # Another worker claimed it after a stall longer than the visibility timeout.
                if entry in self._leased:
                    self._log.warning("lease.lost", entry=entry)
