"""Logins and sessions: kept in this instance's memory, or in Redis for every instance.

API_SESSIONS (memory, redis) picks the store; Redis is reached through API_REDIS_URL.
"""

from __future__ import annotations

import secrets

import redis.asyncio as aioredis
from prometheus_client import Counter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from targets.common import env_str

SESSIONS = env_str("API_SESSIONS", "memory")
REDIS_URL = env_str("API_REDIS_URL", "")
SESSION_TTL_S = 3600

LOOKUPS = Counter("api_session_lookups_total", "Session lookups by result", ["result"])

_memory: dict[str, str] = {}
_redis: aioredis.Redis | None = None


def _store() -> aioredis.Redis | None:
    global _redis
    if SESSIONS != "redis" or not REDIS_URL:
        return None
    if _redis is None:
        _redis = aioredis.Redis.from_url(REDIS_URL, socket_timeout=1.0)
    return _redis


async def login(request: Request) -> Response:
    """Start a session for the user named in the body and set its cookie."""
    body = await request.json()
    user = str(body.get("user", "anonymous"))
    session = secrets.token_hex(16)
    store = _store()
    if store is None:
        _memory[session] = user
    else:
        await store.set(f"session:{session}", user, ex=SESSION_TTL_S)
    response = JSONResponse({"user": user})
    response.set_cookie("session", session, httponly=True)
    return response


async def profile(request: Request) -> Response:
    """Return the session's user, or 401 when this instance does not know the session."""
    session = request.cookies.get("session", "")
    store = _store()
    if store is None:
        user = _memory.get(session)
    else:
        raw = await store.get(f"session:{session}")
        user = raw.decode() if raw is not None else None
    if user is None:
        LOOKUPS.labels("unknown").inc()
        return JSONResponse({"error": "not logged in"}, status_code=401)
    LOOKUPS.labels("known").inc()
    return JSONResponse({"user": user})


ROUTES = [
    Route("/login", login, methods=["POST"]),
    Route("/profile", profile, methods=["GET"]),
]
