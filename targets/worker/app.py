"""The worker service: runs the jobs the api queues on Redis (see targets/worker/queue.py).

Settings (environment):
- WORKER_REDIS_URL: Redis, reached through the link `worker->redis`.
- WORKER_CONCURRENCY: jobs this instance runs at once.
- WORKER_VISIBILITY_S: seconds a lease may go unrenewed before another worker claims its job.
- WORKER_MAX_ATTEMPTS: runs of a job before it goes to the dead-letter stream.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import redis.asyncio as aioredis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from targets.common import env_float, env_str, health, metrics
from targets.worker.queue import Worker, WorkerConfig

REDIS_URL = env_str("WORKER_REDIS_URL", "")
CONCURRENCY = int(env_float("WORKER_CONCURRENCY", 3))
VISIBILITY_S = env_float("WORKER_VISIBILITY_S", 3.0)
MAX_ATTEMPTS = int(env_float("WORKER_MAX_ATTEMPTS", 3))
STOP_TIMEOUT_S = 3.0

if not REDIS_URL:
    raise SystemExit("missing WORKER_REDIS_URL: the worker needs Redis (redis://host:port/0)")
if CONCURRENCY < 1 or MAX_ATTEMPTS < 1 or VISIBILITY_S <= 0:
    raise SystemExit(
        f"invalid worker settings: concurrency {CONCURRENCY} and max_attempts {MAX_ATTEMPTS} "
        f"must be at least 1, visibility_s {VISIBILITY_S} above 0"
    )


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    """Start the consumer slots with the app and stop them when it stops."""
    # A read blocks for up to a second, so the socket timeout must be longer.
    client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True, socket_timeout=5.0,
                                     socket_connect_timeout=2.0)  # fmt: skip
    config = WorkerConfig(
        consumer=env_str("HARNESS_INSTANCE", "worker"),
        concurrency=CONCURRENCY,
        visibility_s=VISIBILITY_S,
        max_attempts=MAX_ATTEMPTS,
    )
    worker = Worker(client, config)
    task = asyncio.create_task(worker.run())
    app.state.worker = task
    try:
        yield
    finally:
        worker.stop()
        # A slot returns within its read's block time. A job still running stays pending for others.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), timeout=STOP_TIMEOUT_S)
        await client.aclose()


async def worker_health(request: Request) -> Response:
    """Report the instance up while its consumer task runs, else 503 with the task's error."""
    task: asyncio.Task[None] = request.app.state.worker
    if task.done():
        error = repr(task.exception()) if not task.cancelled() else "cancelled"
        return JSONResponse({"status": "consumer stopped", "error": error}, status_code=503)
    return await health(request)


app = Starlette(
    routes=[Route("/health", worker_health), Route("/metrics", metrics)], lifespan=lifespan
)
