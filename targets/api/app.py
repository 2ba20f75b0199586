"""The api service: the public HTTP API behind the edge.

`POST /checkout` charges the order through payments, reached only through the fault proxy
link `api->payments`. The resilience policies are settings, so that the control arm runs the
same code with a pattern off:

- API_PAYMENTS_URL: base URL of payments (the proxy's listen address for the link).
- API_TIMEOUT_MS: deadline of one call to payments; 0 means no deadline.
- API_BREAKER, API_BREAKER_THRESHOLD, API_BREAKER_OPEN_S: circuit breaker (purgatory).
- API_RETRY (none, backoff, immediate), API_RETRY_ATTEMPTS, API_RETRY_BASE_MS,
  API_RETRY_MAX_MS: retries (tenacity); backoff is exponential with full jitter.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
from prometheus_client import Counter, Gauge
from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.model import OpenedState
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
    wait_none,
)

from targets.api import data, jobs, orders, sessions, work
from targets.common import env_bool, env_float, env_str, health, metrics

PAYMENTS_URL = env_str("API_PAYMENTS_URL", "http://127.0.0.1:8081")
TIMEOUT_S = env_float("API_TIMEOUT_MS", 0.0) / 1000.0
BREAKER = env_bool("API_BREAKER", False)
BREAKER_THRESHOLD = int(env_float("API_BREAKER_THRESHOLD", 5))
BREAKER_OPEN_S = env_float("API_BREAKER_OPEN_S", 30.0)
RETRY = env_str("API_RETRY", "none")
RETRY_ATTEMPTS = int(env_float("API_RETRY_ATTEMPTS", 4))
RETRY_BASE_S = env_float("API_RETRY_BASE_MS", 100.0) / 1000.0
RETRY_MAX_S = env_float("API_RETRY_MAX_MS", 2000.0) / 1000.0

if RETRY not in {"none", "backoff", "immediate"}:
    raise SystemExit(f"invalid API_RETRY={RETRY!r}: expected none, backoff or immediate")

REQUESTS = Counter("api_requests_total", "Requests served by the api", ["route", "status"])
INFLIGHT = Gauge("api_inflight_requests", "Requests the api is serving now")
ATTEMPTS = Counter("api_payments_attempts_total", "Calls from the api to payments", ["outcome"])
BREAKER_OPEN = Gauge("api_breaker_open", "1 while the payments circuit breaker is open")


class PaymentsFailed(Exception):
    """Payments returned a server error or the connection failed."""


breakers = AsyncCircuitBreakerFactory(
    default_threshold=BREAKER_THRESHOLD, default_ttl=BREAKER_OPEN_S
)


def _on_breaker_event(name: str, event_name: str, event: Any) -> None:
    if event_name == "state_changed":
        BREAKER_OPEN.set(1 if getattr(event, "state", "") == "opened" else 0)


breakers.add_listener(_on_breaker_event)


def _retrying() -> AsyncRetrying:
    attempts = 1 if RETRY == "none" else RETRY_ATTEMPTS
    wait = (
        wait_exponential_jitter(initial=RETRY_BASE_S, max=RETRY_MAX_S, jitter=RETRY_BASE_S)
        if RETRY == "backoff"
        else wait_none()
    )
    return AsyncRetrying(
        stop=stop_after_attempt(attempts),
        wait=wait,
        retry=retry_if_exception_type((PaymentsFailed, TimeoutError)),
        reraise=True,
    )


@contextlib.asynccontextmanager
async def _deadline() -> AsyncIterator[None]:
    if TIMEOUT_S > 0:
        async with asyncio.timeout(TIMEOUT_S):
            yield
    else:
        yield


async def _charge_once(client: httpx.AsyncClient, body: bytes) -> None:
    try:
        async with _deadline():
            response = await client.post(f"{PAYMENTS_URL}/charge", content=body)
    except TimeoutError:
        ATTEMPTS.labels("timeout").inc()
        raise
    except httpx.HTTPError as exc:
        ATTEMPTS.labels("error").inc()
        raise PaymentsFailed(type(exc).__name__) from exc
    if response.status_code >= 500:
        ATTEMPTS.labels("error").inc()
        raise PaymentsFailed(f"status {response.status_code}")
    ATTEMPTS.labels("ok").inc()


async def _charge_guarded(client: httpx.AsyncClient, body: bytes) -> None:
    if not BREAKER:
        await _charge_once(client, body)
        return
    async with await breakers.get_breaker("payments"):
        await _charge_once(client, body)


# One client for the process, but a new connection per call (no keep-alive), so a toxic's
# toxicity, which the fault proxy draws per connection, applies to each call.
_client = httpx.AsyncClient(
    limits=httpx.Limits(max_keepalive_connections=0),
    timeout=httpx.Timeout(None),
    trust_env=False,
)


async def _charge(body: bytes) -> None:
    async for attempt in _retrying():
        with attempt:
            await _charge_guarded(_client, body)


async def checkout(request: Request) -> Response:
    """Charge the order through payments and map each failure to a status code."""
    body = await request.body()
    INFLIGHT.inc()
    try:
        await _charge(body)
        status, payload = 200, {"status": "ordered"}
    except OpenedState:
        status, payload = 503, {"error": "payments circuit open"}
    except TimeoutError:
        status, payload = 504, {"error": f"payments timed out after {TIMEOUT_S * 1000:.0f} ms"}
    except PaymentsFailed as exc:
        status, payload = 502, {"error": f"payments failed: {exc}"}
    finally:
        INFLIGHT.dec()
    REQUESTS.labels("/checkout", str(status)).inc()
    return JSONResponse(payload, status_code=status)


async def catalog(request: Request) -> Response:
    """Serve a small static listing that does not touch payments."""
    REQUESTS.labels("/catalog", "200").inc()
    return JSONResponse({"items": [{"id": i, "name": f"item-{i}"} for i in range(10)]})


app = Starlette(
    routes=[
        Route("/checkout", checkout, methods=["POST"]),
        Route("/catalog", catalog),
        Route("/health", health),
        Route("/metrics", metrics),
        *data.ROUTES,
        *sessions.ROUTES,
        *jobs.ROUTES,
        *work.ROUTES,
        *orders.ROUTES,
    ]
)
