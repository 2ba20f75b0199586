"""The api's data routes: cache-aside, read replicas, indexing, pagination, sharding and rate
limiting, over PostgreSQL (asyncpg) and Redis (redis-py), each reached through its link.

Settings (environment), next to the links' addresses API_REDIS_URL, API_PRIMARY_DSN,
API_REPLICA_DSN and API_SHARD2_DSN:
- API_CACHE, API_CACHE_TTL_S, API_CACHE_INVALIDATE: cache-aside of products in Redis.
- API_REDIS_TIMEOUT_MS: deadline of one Redis call; past it the api goes on without Redis.
- API_DB_TIMEOUT_MS: deadline of one query.
- API_READS (primary, replica), API_READ_YOUR_WRITES: where account reads go.
- API_SHARDS (1 or 2): tenants with an even id live on postgres-shard2 when 2.
- API_RATE_LIMIT (requests per second per user, 0 = off), API_RATE_LIMIT_FAIL (open, closed).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from limits import RateLimitItemPerSecond
from limits.aio.storage import RedisStorage
from limits.aio.strategies import FixedWindowRateLimiter
from prometheus_client import Counter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from targets.common import env_bool, env_float, env_str

REDIS_URL = env_str("API_REDIS_URL", "")
PRIMARY_DSN = env_str("API_PRIMARY_DSN", "")
REPLICA_DSN = env_str("API_REPLICA_DSN", "")
SHARD2_DSN = env_str("API_SHARD2_DSN", "")
CACHE = env_bool("API_CACHE", False)
CACHE_TTL_S = env_float("API_CACHE_TTL_S", 5.0)
CACHE_INVALIDATE = env_bool("API_CACHE_INVALIDATE", False)
REDIS_TIMEOUT_S = env_float("API_REDIS_TIMEOUT_MS", 200.0) / 1000.0
DB_TIMEOUT_S = env_float("API_DB_TIMEOUT_MS", 10000.0) / 1000.0
READS = env_str("API_READS", "primary")
READ_YOUR_WRITES = env_bool("API_READ_YOUR_WRITES", False)
SHARDS = int(env_float("API_SHARDS", 1))
RATE_LIMIT = int(env_float("API_RATE_LIMIT", 0))
RATE_LIMIT_FAIL = env_str("API_RATE_LIMIT_FAIL", "open")

CACHE_LOOKUPS = Counter("api_cache_lookups_total", "Cache lookups by result", ["result"])
DB_QUERIES = Counter("api_db_queries_total", "Queries sent by the api", ["database"])
LIMITER = Counter("api_rate_limit_total", "Rate limiter decisions", ["decision"])


class Unavailable(Exception):
    """A database the request needs did not respond in time."""


_pools: dict[str, asyncpg.Pool] = {}
_redis: aioredis.Redis | None = None
_limiter: FixedWindowRateLimiter | None = None


async def _pool(name: str) -> asyncpg.Pool:
    dsn = {"primary": PRIMARY_DSN, "replica": REPLICA_DSN, "shard2": SHARD2_DSN}[name]
    if not dsn:
        raise Unavailable(f"{name} database not configured")
    pool = _pools.get(name)
    if pool is None:
        try:
            async with asyncio.timeout(DB_TIMEOUT_S):
                pool = await asyncpg.create_pool(dsn, min_size=1, max_size=8)
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            raise Unavailable(f"{name}: {type(exc).__name__}") from exc
        _pools[name] = pool
    return pool


async def _query(name: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    """Run a query on one database within the query deadline."""
    pool = await _pool(name)
    DB_QUERIES.labels(name).inc()
    try:
        async with asyncio.timeout(DB_TIMEOUT_S):
            return list(await pool.fetch(sql, *args))
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
        raise Unavailable(f"{name}: {type(exc).__name__}") from exc


def _redis_client() -> aioredis.Redis | None:
    global _redis
    if not REDIS_URL:
        return None
    if _redis is None:
        _redis = aioredis.Redis.from_url(
            REDIS_URL, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S
        )
    return _redis


@contextlib.asynccontextmanager
async def _redis_deadline() -> AsyncIterator[None]:
    async with asyncio.timeout(REDIS_TIMEOUT_S):
        yield


def _unavailable(exc: Unavailable) -> Response:
    return JSONResponse({"error": f"database unavailable: {exc}"}, status_code=503)


# Cache-aside -------------------------------------------------------------------------------


async def get_product(request: Request) -> Response:
    """Read a product: from Redis when cached, else from the primary (then cache it)."""
    product_id = int(request.path_params["product_id"])
    key = f"product:{product_id}"
    client = _redis_client() if CACHE else None
    if client is not None:
        try:
            async with _redis_deadline():
                cached = await client.get(key)
        except (aioredis.RedisError, TimeoutError, OSError):
            CACHE_LOOKUPS.labels("error").inc()
            cached = None
            client = None
        if cached is not None:
            CACHE_LOOKUPS.labels("hit").inc()
            return JSONResponse({**json.loads(cached), "source": "cache"})
        if client is not None:
            CACHE_LOOKUPS.labels("miss").inc()
    try:
        rows = await _query("primary", "SELECT id, price_cents FROM products WHERE id = $1",
                            product_id)  # fmt: skip
    except Unavailable as exc:
        return _unavailable(exc)
    if not rows:
        return JSONResponse({"error": "product not found"}, status_code=404)
    product = {"id": rows[0]["id"], "price_cents": rows[0]["price_cents"]}
    if client is not None:
        with contextlib.suppress(aioredis.RedisError, TimeoutError, OSError):
            async with _redis_deadline():
                await client.set(key, json.dumps(product), ex=max(int(CACHE_TTL_S), 1))
    return JSONResponse({**product, "source": "database"})


async def put_product(request: Request) -> Response:
    """Change a product's price on the primary; drop its cache entry when invalidating."""
    product_id = int(request.path_params["product_id"])
    body = await request.json()
    try:
        await _query("primary", "UPDATE products SET price_cents = $2, updated_at = now() "
                     "WHERE id = $1", product_id, int(body["price_cents"]))  # fmt: skip
    except Unavailable as exc:
        return _unavailable(exc)
    client = _redis_client() if CACHE and CACHE_INVALIDATE else None
    if client is not None:
        with contextlib.suppress(aioredis.RedisError, TimeoutError, OSError):
            async with _redis_deadline():
                await client.delete(f"product:{product_id}")
    return JSONResponse({"id": product_id, "price_cents": int(body["price_cents"])})


# Read replicas -----------------------------------------------------------------------------


async def get_account(request: Request) -> Response:
    """Read an account from the replica or the primary, as configured.

    With read-your-writes, a client that sends the LSN of its last write (`X-Min-Lsn`) reads
    from the replica only once the replica has replayed that far, else from the primary.
    """
    account_id = int(request.path_params["account_id"])
    source = "replica" if READS == "replica" else "primary"
    min_lsn = request.headers.get("x-min-lsn")
    try:
        if source == "replica" and READ_YOUR_WRITES and min_lsn:
            rows = await _query(
                "replica",
                "SELECT coalesce(pg_wal_lsn_diff(pg_last_wal_replay_lsn(), $1::text::pg_lsn) >= 0,"
                " false) AS caught_up",
                min_lsn,
            )
            if not rows[0]["caught_up"]:
                source = "primary"
        rows = await _query(source, "SELECT id, version FROM accounts WHERE id = $1", account_id)
    except Unavailable as exc:
        return _unavailable(exc)
    if not rows:
        return JSONResponse({"error": "account not found"}, status_code=404)
    return JSONResponse({"id": rows[0]["id"], "version": rows[0]["version"], "served_by": source})


async def post_account(request: Request) -> Response:
    """Bump an account's version on the primary; return it with the write's LSN."""
    account_id = int(request.path_params["account_id"])
    try:
        rows = await _query(
            "primary",
            "UPDATE accounts SET version = version + 1 WHERE id = $1 RETURNING version",
            account_id,
        )
        # The insert position after the commit covers the commit record. The write position
        # (pg_current_wal_lsn) may lag it under synchronous_commit = off, and one read inside
        # the UPDATE precedes the commit record; a replica at either would miss the write.
        lsn = await _query("primary", "SELECT pg_current_wal_insert_lsn()::text AS lsn")
    except Unavailable as exc:
        return _unavailable(exc)
    return JSONResponse({"id": account_id, "version": rows[0]["version"], "lsn": lsn[0]["lsn"]})


# Indexing and pagination -------------------------------------------------------------------


async def search_orders(request: Request) -> Response:
    """Sum a customer's orders: a sequential scan without the index, an index scan with it."""
    customer_id = int(request.query_params.get("customer_id", "1"))
    try:
        rows = await _query("primary", "SELECT count(*) AS n, coalesce(sum(amount_cents), 0) AS "
                            "total FROM orders WHERE customer_id = $1", customer_id)  # fmt: skip
    except Unavailable as exc:
        return _unavailable(exc)
    return JSONResponse({"customer_id": customer_id, "orders": rows[0]["n"],
                         "total_cents": rows[0]["total"]})  # fmt: skip


async def post_order(request: Request) -> Response:
    """Insert one order on the primary."""
    body = await request.json()
    try:
        rows = await _query(
            "primary",
            "INSERT INTO orders (customer_id, tenant_id, amount_cents, note) "
            "VALUES ($1, $2, $3, 'new') RETURNING id",
            int(body.get("customer_id", 1)), int(body.get("tenant_id", 1)),
            int(body.get("amount_cents", 100)),
        )  # fmt: skip
    except Unavailable as exc:
        return _unavailable(exc)
    return JSONResponse({"id": rows[0]["id"]}, status_code=201)


async def page_orders(request: Request) -> Response:
    """Return a page of order ids, newest first: by OFFSET (`offset=`) or by keyset cursor
    (`after=`, the last id of the previous page)."""
    limit = min(int(request.query_params.get("limit", "20")), 200)
    after = request.query_params.get("after")
    try:
        if after is not None:
            rows = await _query("primary", "SELECT id FROM orders WHERE id < $1 "
                                "ORDER BY id DESC LIMIT $2", int(after), limit)  # fmt: skip
        else:
            offset = int(request.query_params.get("offset", "0"))
            rows = await _query("primary", "SELECT id FROM orders ORDER BY id DESC "
                                "OFFSET $1 LIMIT $2", offset, limit)  # fmt: skip
    except Unavailable as exc:
        return _unavailable(exc)
    ids = [row["id"] for row in rows]
    return JSONResponse({"ids": ids, "next": ids[-1] if ids else None})


# Sharding ----------------------------------------------------------------------------------


def _shard_of(tenant_id: int) -> str:
    return "shard2" if SHARDS >= 2 and tenant_id % 2 == 0 else "primary"


async def tenant_orders(request: Request) -> Response:
    """Read a tenant's latest orders from the shard that contains the tenant."""
    tenant_id = int(request.path_params["tenant_id"])
    shard = _shard_of(tenant_id)
    try:
        rows = await _query(shard, "SELECT id, amount_cents FROM orders WHERE tenant_id = $1 "
                            "ORDER BY id DESC LIMIT 10", tenant_id)  # fmt: skip
    except Unavailable as exc:
        return _unavailable(exc)
    return JSONResponse({"tenant_id": tenant_id, "shard": shard, "orders": len(rows)})


async def orders_total(request: Request) -> Response:
    """Count orders across every shard: a cross-shard query that needs all of them."""
    shards = ["primary", "shard2"] if SHARDS >= 2 else ["primary"]
    try:
        counts = await asyncio.gather(*(
            _query(s, "SELECT count(*) AS n FROM orders WHERE tenant_id = ANY($1::int[])",
                   [t for t in range(1, 9) if _shard_of(t) == s])
            for s in shards
        ))  # fmt: skip
    except Unavailable as exc:
        return _unavailable(exc)
    return JSONResponse({"orders": sum(rows[0]["n"] for rows in counts), "shards": len(shards)})


# Rate limiting -----------------------------------------------------------------------------

Handler = Callable[[Request], Awaitable[Response]]


def _get_limiter() -> FixedWindowRateLimiter | None:
    global _limiter
    if RATE_LIMIT <= 0 or not REDIS_URL:
        return None
    if _limiter is None:
        uri = "async+" + REDIS_URL
        storage = RedisStorage(uri, implementation="redispy", socket_timeout=REDIS_TIMEOUT_S,
                               socket_connect_timeout=REDIS_TIMEOUT_S)  # fmt: skip
        _limiter = FixedWindowRateLimiter(storage)
    return _limiter


def rate_limited(handler: Handler) -> Handler:
    """Wrap a route with a per-user limit kept in Redis (X-User names the user)."""

    async def wrapped(request: Request) -> Response:
        limiter = _get_limiter()
        if limiter is None:
            return await handler(request)
        user = request.headers.get("x-user", "anonymous")
        started = time.monotonic()
        try:
            async with _redis_deadline():
                allowed = await limiter.hit(RateLimitItemPerSecond(RATE_LIMIT), user)
        except Exception:
            decision = RATE_LIMIT_FAIL
            LIMITER.labels(f"redis-error-fail-{decision}").inc()
            if decision == "closed":
                waited = (time.monotonic() - started) * 1000
                return JSONResponse({"error": f"rate limiter unavailable after {waited:.0f} ms"},
                                    status_code=503)  # fmt: skip
            return await handler(request)
        if not allowed:
            LIMITER.labels("rejected").inc()
            return JSONResponse({"error": "rate limit exceeded"}, status_code=429)
        LIMITER.labels("allowed").inc()
        return await handler(request)

    return wrapped


ROUTES = [
    Route("/products/{product_id:int}", get_product, methods=["GET"]),
    Route("/products/{product_id:int}", put_product, methods=["PUT"]),
    Route("/accounts/{account_id:int}", get_account, methods=["GET"]),
    Route("/accounts/{account_id:int}", post_account, methods=["POST"]),
    Route("/orders/search", rate_limited(search_orders), methods=["GET"]),
    Route("/orders", post_order, methods=["POST"]),
    Route("/orders/page", page_orders, methods=["GET"]),
    Route("/orders/total", orders_total, methods=["GET"]),
    Route("/tenants/{tenant_id:int}/orders", tenant_orders, methods=["GET"]),
]
