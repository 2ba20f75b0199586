"""The published orders and each consumer's view of them, kept in Redis.

The api writes the published side, each consumer writes its own view, and the api reads the
views back for clients. Keys:

- `orders:next_id`: the counter that numbers orders.
- `orders:published`: a sorted set of order ids scored by publish time (epoch seconds).
- `orders:stream`: the stream the api appends each order to when it publishes through Redis.
- `view:<consumer>:seen`: a hash from order id to the time the consumer recorded it.
- `view:<consumer>:published`: a sorted set of the order ids the consumer recorded, scored by
  publish time, so the orders it misses count in O(log n).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis.asyncio as aioredis

NEXT_ID_KEY = "orders:next_id"
PUBLISHED_KEY = "orders:published"
STREAM_KEY = "orders:stream"
CONSUMERS = ("billing", "stock", "email", "analytics")


def seen_key(consumer: str) -> str:
    """Return the key of the hash of a consumer's seen times."""
    return f"view:{consumer}:seen"


def view_published_key(consumer: str) -> str:
    """Return the key of the sorted set of a consumer's orders by publish time."""
    return f"view:{consumer}:published"


@dataclass(frozen=True)
class ViewCounts:
    """Orders published up to a cut-off time, and how many of them a consumer recorded."""

    published: int
    seen: int

    @property
    def missing(self) -> int:
        """Return the published orders the consumer has not recorded."""
        return self.published - self.seen


async def record(
    client: aioredis.Redis,
    consumer: str,
    order_id: int,
    published_at: float,
    ack: tuple[str, str, str] | None = None,
) -> float | None:
    """Record an order in a consumer's view and acknowledge its stream entry, atomically.

    `ack` is (stream, group, entry id). Returns the time recorded, or None when the order was
    already in the view (a redelivery), whose first time is kept.
    """
    seen_at = time.time()
    async with client.pipeline(transaction=True) as pipe:
        pipe.hsetnx(seen_key(consumer), str(order_id), repr(seen_at))
        pipe.zadd(view_published_key(consumer), {str(order_id): published_at}, nx=True)
        if ack is not None:
            pipe.xack(*ack)
        results = await pipe.execute()
    return seen_at if results[0] else None


async def counts(client: aioredis.Redis, consumer: str, cutoff: float) -> ViewCounts:
    """Count the orders published up to `cutoff` (epoch s) and those the consumer recorded."""
    async with client.pipeline(transaction=False) as pipe:
        pipe.zcount(PUBLISHED_KEY, "-inf", cutoff)
        pipe.zcount(view_published_key(consumer), "-inf", cutoff)
        published, seen = await pipe.execute()
    return ViewCounts(int(published), int(seen))


async def seen_times(
    client: aioredis.Redis, consumers: list[str], order_ids: list[int]
) -> dict[int, dict[str, float | None]]:
    """Return, for each order, the time each consumer recorded it, or None if it has not."""
    if not order_ids:
        return {}
    fields = [str(order_id) for order_id in order_ids]
    async with client.pipeline(transaction=False) as pipe:
        for consumer in consumers:
            pipe.hmget(seen_key(consumer), fields)
        replies = await pipe.execute()
    views: dict[int, dict[str, float | None]] = {order_id: {} for order_id in order_ids}
    for consumer, values in zip(consumers, replies, strict=True):
        for order_id, raw in zip(order_ids, values, strict=True):
            views[order_id][consumer] = float(raw) if raw is not None else None
    return views
