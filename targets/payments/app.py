"""The payments service: the downstream dependency the api calls on checkout.

Settings (environment): PAYMENTS_DELAY_MS, its own processing time per charge.
"""

from __future__ import annotations

import asyncio

from prometheus_client import Counter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from targets.common import env_float, health, metrics

DELAY_S = env_float("PAYMENTS_DELAY_MS", 0.0) / 1000.0

CHARGES = Counter("payments_requests_total", "Charge requests received by payments")


async def charge(request: Request) -> Response:
    """Charge an order after the configured processing time."""
    CHARGES.inc()
    body = await request.body()
    if DELAY_S > 0:
        await asyncio.sleep(DELAY_S)
    return JSONResponse({"status": "charged", "bytes": len(body)})


app = Starlette(
    routes=[
        Route("/charge", charge, methods=["POST"]),
        Route("/health", health),
        Route("/metrics", metrics),
    ]
)
