"""Slow jobs: done inline while the client waits, or queued on Redis for the worker service.

Settings (environment), next to the link's address API_REDIS_URL:
- API_JOBS (inline, queue): inline runs the job in the request; queue answers 202 at once and
  leaves the job to the worker (targets/worker/queue.py).
- API_JOB_MS: how long one job takes, in milliseconds.
"""

from __future__ import annotations

import asyncio
import uuid

import redis.asyncio as aioredis
from prometheus_client import Counter
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from targets.common import env_float, env_str
from targets.worker import queue

JOBS = env_str("API_JOBS", "inline")
JOB_MS = env_float("API_JOB_MS", 5000.0)
REDIS_URL = env_str("API_REDIS_URL", "")

if JOBS not in {"inline", "queue"}:
    raise SystemExit(f"invalid API_JOBS={JOBS!r}: expected inline or queue")

SUBMITTED = Counter("api_jobs_submitted_total", "Jobs submitted to the api", ["mode", "outcome"])

_redis: aioredis.Redis | None = None


def _client() -> aioredis.Redis:
    global _redis
    if _redis is None:
        _redis = aioredis.Redis.from_url(REDIS_URL, decode_responses=True, socket_timeout=1.0,
                                         socket_connect_timeout=1.0)  # fmt: skip
    return _redis


async def submit(request: Request) -> Response:
    """Run the job inline and return 200, or queue it and return 202 with its id."""
    body = await request.body()
    poison = False
    if body:
        try:
            poison = bool((await request.json()).get("poison", False))
        except (ValueError, AttributeError):
            return JSONResponse({"error": "expected a JSON object such as {\"poison\": false}"},
                                status_code=400)  # fmt: skip
    job_id = uuid.uuid4().hex

    if JOBS == "inline":
        if poison:
            SUBMITTED.labels("inline", "failed").inc()
            return JSONResponse({"id": job_id, "status": "failed"}, status_code=500)
        await asyncio.sleep(JOB_MS / 1000.0)
        SUBMITTED.labels("inline", "done").inc()
        return JSONResponse({"id": job_id, "status": "done"})

    if not REDIS_URL:
        return JSONResponse({"error": "queue mode needs API_REDIS_URL"}, status_code=503)
    try:
        await queue.enqueue(_client(), job_id, JOB_MS, poison)
    except (RedisError, OSError) as exc:
        SUBMITTED.labels("queue", "error").inc()
        return JSONResponse({"error": f"queue unavailable: {exc}"}, status_code=503)
    SUBMITTED.labels("queue", "queued").inc()
    return JSONResponse({"id": job_id, "status": "queued"}, status_code=202)


async def status(request: Request) -> Response:
    """Return a queued job's status and attempts, or 404 for a job the queue does not know."""
    job_id = request.path_params["job_id"]
    if JOBS != "queue" or not REDIS_URL:
        return JSONResponse({"error": "inline jobs keep no status"}, status_code=404)
    try:
        job = await queue.read_job(_client(), job_id)
    except (RedisError, OSError) as exc:
        return JSONResponse({"error": f"queue unavailable: {exc}"}, status_code=503)
    if not job:
        return JSONResponse({"error": f"unknown job {job_id}"}, status_code=404)
    return JSONResponse({
        "id": job_id,
        "status": job.get("status"),
        "attempts": int(job.get("attempts", "0")),
        "completions": int(job.get("completions", "0")),
        "max_attempts": int(job["max_attempts"]) if "max_attempts" in job else None,
    })  # fmt: skip


ROUTES = [
    Route("/jobs", submit, methods=["POST"]),
    Route("/jobs/{job_id}", status, methods=["GET"]),
]
