"""`GET /work`: a request that holds one of the instance's few worker slots for a while.

It stands for a handler with a fixed pool of workers and a bounded backlog, as a threaded
server has: each instance serves at most API_WORK_SLOTS requests at a time, each for
API_WORK_MS; up to API_WORK_QUEUE more wait for a slot, and any beyond are refused with 503 at
once. One instance's capacity is therefore API_WORK_SLOTS / API_WORK_MS requests per second,
and more instances add capacity without adding CPU work. `api_work_inflight` counts requests
holding or waiting for a slot: the figure an autoscaler watches.
"""

from __future__ import annotations

import asyncio

from prometheus_client import Counter, Gauge
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from targets.common import env_float

WORK_S = env_float("API_WORK_MS", 200.0) / 1000.0
SLOTS = int(env_float("API_WORK_SLOTS", 2))
QUEUE = int(env_float("API_WORK_QUEUE", 6))

INFLIGHT = Gauge("api_work_inflight", "Work requests holding or waiting for a worker slot")
SERVED = Counter("api_work_total", "Work requests by outcome", ["outcome"])
for _outcome in ("done", "refused"):
    # Both series exist from the start, so an increase over any window has a first value.
    SERVED.labels(_outcome)

_slots = asyncio.Semaphore(max(SLOTS, 1))
# Requests holding a slot and requests waiting for one.
_slot_use = {"active": 0, "waiting": 0}


async def work(request: Request) -> Response:
    """Hold a worker slot for WORK_S, or refuse at once when slots and backlog are full."""
    if _slot_use["active"] + _slot_use["waiting"] >= SLOTS + QUEUE:
        SERVED.labels("refused").inc()
        return JSONResponse({"error": "overloaded: every worker slot and backlog place taken"},
                            status_code=503)  # fmt: skip
    INFLIGHT.inc()
    _slot_use["waiting"] += 1
    acquired = False
    try:
        await _slots.acquire()
        acquired = True
        _slot_use["waiting"] -= 1
        _slot_use["active"] += 1
        await asyncio.sleep(WORK_S)
    finally:
        if acquired:
            _slot_use["active"] -= 1
            _slots.release()
        else:
            _slot_use["waiting"] -= 1
        INFLIGHT.dec()
    SERVED.labels("done").inc()
    return JSONResponse({"status": "done"})


ROUTES = [Route("/work", work)]
