"""A consumer of order events (billing, stock, email or analytics): one app, four services.

The instance name (`HARNESS_INSTANCE`, such as `billing-1`) gives the consumer its name: the
part before the last dash names its view and its consumer group. An order reaches it in one of
two ways, and both record the order in the consumer's view in Redis with the time seen:

- `POST /consume` with `{"id": ..., "published_at": ...}`: the api calls it directly.
- The order stream, read in the background with the consumer's own group (`stream.py`).

Settings (environment): CONSUMER_DELAY_MS, the work per order in ms; CONSUMER_REDIS_URL, the
Redis of the views and the stream (the link `<consumer>->redis`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import redis.asyncio as aioredis
import structlog
from prometheus_client import Counter, Gauge
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from targets.common import env_float, env_str, health, metrics
from targets.consumers import views
from targets.consumers.stream import BLOCK_MS, StreamConsumer

log = structlog.get_logger(__name__)

STARTED_AT = time.time()
INSTANCE = env_str("HARNESS_INSTANCE", "consumer-1")
CONSUMER = INSTANCE.rpartition("-")[0] or INSTANCE
DELAY_S = env_float("CONSUMER_DELAY_MS", 250.0) / 1000.0
REDIS_URL = env_str("CONSUMER_REDIS_URL", "")
# Orders published longer ago than this should be in every view; younger ones may be in flight.
SETTLE_S = 5.0
COUNT_EVERY_S = 1.0

ORDERS = Counter(
    "consumer_orders_total", "Orders recorded in this consumer's view", ["path", "result"]
)
LAG = Gauge("consumer_last_lag_seconds", "Seconds from publish to record of the last order")
PUBLISHED = Gauge("consumer_published_orders", f"Orders published more than {SETTLE_S:.0f} s ago")
SEEN = Gauge(
    "consumer_seen_orders", f"Orders published more than {SETTLE_S:.0f} s ago in this view"
)
MISSING = Gauge(
    "consumer_missing_orders", f"Orders published more than {SETTLE_S:.0f} s ago not in this view"
)
CATCH_UP = Gauge("consumer_catch_up_seconds", "Seconds from return to a cleared backlog, last time")
CATCH_UPS = Counter("consumer_catch_ups_total", "Backlogs of the stream cleared")

_redis: aioredis.Redis | None = None


def _on_stream_record(published_at: float, seen_at: float) -> None:
    ORDERS.labels("stream", "new").inc()
    LAG.set(seen_at - published_at)


def _on_caught_up(seconds: float) -> None:
    CATCH_UP.set(seconds)
    CATCH_UPS.inc()


async def _count_forever(client: aioredis.Redis) -> None:
    """Export, once a second, the settled orders published and those in this view."""
    while True:
        try:
            result = await views.counts(client, CONSUMER, time.time() - SETTLE_S)
        except (RedisError, OSError) as exc:
            log.warning("view.count_failed", consumer=CONSUMER, error=str(exc))
        else:
            PUBLISHED.set(result.published)
            SEEN.set(result.seen)
            MISSING.set(result.missing)
        await asyncio.sleep(COUNT_EVERY_S)


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    """Start the stream reader and the view counter; stop them on shutdown."""
    global _redis
    if not REDIS_URL:
        log.warning("consumer.no_redis", consumer=CONSUMER, reason="CONSUMER_REDIS_URL unset")
        yield
        return
    # Longer than the blocking read, so a read that waits for entries does not time out.
    _redis = aioredis.Redis.from_url(REDIS_URL, socket_timeout=BLOCK_MS / 1000.0 + 4.0)
    reader = StreamConsumer(
        _redis, CONSUMER, INSTANCE, DELAY_S,
        on_record=_on_stream_record,
        on_duplicate=ORDERS.labels("stream", "duplicate").inc,
        on_caught_up=_on_caught_up,
        started_at=STARTED_AT,
    )  # fmt: skip
    tasks = [asyncio.create_task(reader.run()), asyncio.create_task(_count_forever(_redis))]
    log.info("consumer.started", consumer=CONSUMER, instance=INSTANCE, delay_s=DELAY_S)
    try:
        yield
    finally:
        reader.stop()
        tasks[1].cancel()
        # The reader returns within one blocking read. `asyncio.wait` does not wait for a
        # cancellation to finish, so a Redis call that swallowed one cannot hold up shutdown.
        await asyncio.wait(tasks, timeout=BLOCK_MS / 1000.0 + 2.0)
        await _redis.aclose()


async def consume(request: Request) -> Response:
    """Record an order the api sends directly, after the consumer's work on it."""
    if _redis is None:
        return JSONResponse({"error": "consumer has no Redis"}, status_code=503)
    try:
        body = await request.json()
        order_id = int(body["id"])
        published_at = float(body["published_at"])
    except (ValueError, KeyError, TypeError):
        return JSONResponse({"error": "expected JSON with id and published_at"}, status_code=400)
    await asyncio.sleep(DELAY_S)
    try:
        seen_at = await views.record(_redis, CONSUMER, order_id, published_at)
    except (RedisError, OSError) as exc:
        log.warning("view.record_failed", consumer=CONSUMER, order=order_id, error=str(exc))
        return JSONResponse({"error": f"recording failed: {exc}"}, status_code=503)
    if seen_at is None:
        ORDERS.labels("call", "duplicate").inc()
        return JSONResponse({"consumer": CONSUMER, "duplicate": True})
    ORDERS.labels("call", "new").inc()
    LAG.set(seen_at - published_at)
    return JSONResponse({"consumer": CONSUMER, "seen_at": seen_at})


app = Starlette(
    routes=[
        Route("/consume", consume, methods=["POST"]),
        Route("/health", health),
        Route("/metrics", metrics),
    ],
    lifespan=lifespan,
)
