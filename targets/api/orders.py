"""Order events: each new order must reach four consumers (billing, stock, email, analytics).

`POST /order-events` places an order and publishes it. `GET /order-events/{id}` and
`GET /order-events/views?ids=1,2` return when each consumer recorded it, and
`GET /order-events/stats` counts the published orders each consumer has not recorded. The
paths differ from `/orders` because `POST /orders` is the data tier's insert.

Settings (environment):
- API_PUBLISH: `sequential` calls each consumer's `POST /consume` in turn, through the links
  `api-><consumer>` (API_BILLING_URL, API_STOCK_URL, API_EMAIL_URL, API_ANALYTICS_URL), so
  the order reaches the last one after the sum of their times, and a consumer that is down
  misses it. `stream` appends the order once to a Redis stream that every consumer reads with
  its own consumer group, in parallel and at its own pace.
- API_REDIS_URL: Redis (the link `api->redis`), for order ids, the published orders, the
  stream and the consumers' views.
"""

from __future__ import annotations

import time

import httpx
import redis.asyncio as aioredis
import structlog
from prometheus_client import Counter
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from targets.common import env_str
from targets.consumers import views

log = structlog.get_logger(__name__)

PUBLISH = env_str("API_PUBLISH", "sequential")
REDIS_URL = env_str("API_REDIS_URL", "")
# The consumers this api calls and reads the views of: those whose link address it was given.
CONSUMER_URLS = {
    name: url for name in views.CONSUMERS if (url := env_str(f"API_{name.upper()}_URL", ""))
}
MAX_IDS = 200
# Settled orders: younger ones may still be on their way to a consumer.
SETTLE_S = 5.0

if PUBLISH not in {"sequential", "stream"}:
    raise SystemExit(f"invalid API_PUBLISH={PUBLISH!r}: expected sequential or stream")

PUBLISHED = Counter("api_orders_published_total", "Orders published", ["mode", "outcome"])
CALLS = Counter(
    "api_order_calls_total", "Direct calls to consumers' POST /consume", ["consumer", "outcome"]
)

_redis: aioredis.Redis | None = None
# A new connection per call, so a call after a consumer's restart does not reuse a dead one.
_client = httpx.AsyncClient(
    limits=httpx.Limits(max_keepalive_connections=0),
    timeout=httpx.Timeout(10.0),
    trust_env=False,
)


def _store() -> aioredis.Redis | None:
    global _redis
    if not REDIS_URL:
        return None
    if _redis is None:
        _redis = aioredis.Redis.from_url(REDIS_URL, socket_timeout=2.0)
    return _redis


async def _call(consumer: str, body: dict[str, float | int]) -> bool:
    """Send an order to one consumer; return whether it recorded it."""
    try:
        response = await _client.post(f"{CONSUMER_URLS[consumer]}/consume", json=body)
    except httpx.HTTPError as exc:
        CALLS.labels(consumer, "error").inc()
        log.warning("order.call_failed", consumer=consumer, order=body["id"], error=repr(exc))
        return False
    if response.status_code != 200:
        CALLS.labels(consumer, "error").inc()
        log.warning("order.call_failed", consumer=consumer, order=body["id"],
                    status=response.status_code)  # fmt: skip
        return False
    CALLS.labels(consumer, "ok").inc()
    return True


async def publish(request: Request) -> Response:
    """Place an order and publish it to the consumers in the API_PUBLISH mode."""
    store = _store()
    if store is None:
        return JSONResponse({"error": "api has no Redis (API_REDIS_URL)"}, status_code=503)
    try:
        order_id = int(await store.incr(views.NEXT_ID_KEY))
        published_at = time.time()
        async with store.pipeline(transaction=True) as pipe:
            pipe.zadd(views.PUBLISHED_KEY, {str(order_id): published_at})
            if PUBLISH == "stream":
                # NOTE: the stream is not trimmed: trimming could drop entries a consumer that
                # is down has not read. It grows with the run, about 100 bytes an order.
                pipe.xadd(views.STREAM_KEY, {"id": order_id, "published_at": repr(published_at)})
            await pipe.execute()
    except (RedisError, OSError) as exc:
        PUBLISHED.labels(PUBLISH, "error").inc()
        log.warning("order.publish_failed", mode=PUBLISH, error=str(exc))
        return JSONResponse({"error": f"publishing failed: {exc}"}, status_code=503)

    order = {"id": order_id, "published_at": published_at}
    if PUBLISH == "stream":
        PUBLISHED.labels(PUBLISH, "ok").inc()
        return JSONResponse(order, status_code=202)

    missed = [name for name in CONSUMER_URLS if not await _call(name, order)]
    if missed:
        PUBLISHED.labels(PUBLISH, "partial").inc()
        return JSONResponse({**order, "missed": missed}, status_code=502)
    PUBLISHED.labels(PUBLISH, "ok").inc()
    return JSONResponse(order)


async def _views(order_ids: list[int]) -> Response:
    store = _store()
    if store is None:
        return JSONResponse({"error": "api has no Redis (API_REDIS_URL)"}, status_code=503)
    try:
        seen = await views.seen_times(store, list(CONSUMER_URLS), order_ids)
    except (RedisError, OSError) as exc:
        return JSONResponse({"error": f"reading views failed: {exc}"}, status_code=503)
    return JSONResponse({"orders": {str(order_id): seen[order_id] for order_id in order_ids}})


async def order_views(request: Request) -> Response:
    """Tell when each consumer recorded one order (null: not yet)."""
    return await _views([int(request.path_params["order_id"])])


async def many_views(request: Request) -> Response:
    """Tell when each consumer recorded each of up to MAX_IDS orders (`?ids=1,2,3`)."""
    raw = request.query_params.get("ids", "")
    try:
        order_ids = [int(part) for part in raw.split(",") if part]
    except ValueError:
        return JSONResponse({"error": f"invalid ids {raw[:80]!r}: expected 1,2,3"}, 400)
    if len(order_ids) > MAX_IDS:
        return JSONResponse({"error": f"{len(order_ids)} ids, more than {MAX_IDS}"}, 400)
    return await _views(order_ids)


async def stats(request: Request) -> Response:
    """Count the orders published over SETTLE_S ago and those each consumer recorded."""
    store = _store()
    if store is None:
        return JSONResponse({"error": "api has no Redis (API_REDIS_URL)"}, status_code=503)
    cutoff = time.time() - SETTLE_S
    result: dict[str, dict[str, int]] = {}
    try:
        for consumer in CONSUMER_URLS:
            counts = await views.counts(store, consumer, cutoff)
            result[consumer] = {"published": counts.published, "seen": counts.seen,
                                "missing": counts.missing}  # fmt: skip
    except (RedisError, OSError) as exc:
        return JSONResponse({"error": f"reading views failed: {exc}"}, status_code=503)
    return JSONResponse({"mode": PUBLISH, "settle_s": SETTLE_S, "consumers": result})


ROUTES = [
    Route("/order-events", publish, methods=["POST"]),
    Route("/order-events/views", many_views, methods=["GET"]),
    Route("/order-events/stats", stats, methods=["GET"]),
    Route("/order-events/{order_id:int}", order_views, methods=["GET"]),
]
