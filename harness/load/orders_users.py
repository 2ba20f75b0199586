"""Locust users of order events: place orders and time when each consumer has seen them.

An `OrderUser` places an order (`POST /order-events`), then polls the views of its orders in
flight in one request (`GET /order-events/views?ids=...`). The api returns the time at which
each consumer recorded each order, so a check's time is that recorded time minus the moment
the user sent the order, however late the poll comes. Checks, counted in the second the order
was sent:

- `view <consumer>`: from sending the order until that consumer recorded it.
- `all views`: from sending the order until the last consumer recorded it.

An order some consumer has not recorded after LOST_AFTER_S fails those checks as lost.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from locust import constant, task

from harness.load.users import REQUEST_TIMEOUT_S, USER_CLASSES, _fire, _LoopbackUser

POLL_S = 0.2
# Each cycle sends one order, then polls for this long.
CYCLE_S = 0.6
LOST_AFTER_S = 30.0
# Orders a user waits for at most; past this it polls without sending new ones.
MAX_IN_FLIGHT = 200


@dataclass
class _Order:
    """An order a user sent and the consumers seen to record it so far."""

    order_id: int
    sent_at: float
    seen: dict[str, float] = field(default_factory=dict)


class OrderUser(_LoopbackUser):
    """Places orders and checks when every consumer has recorded each of them."""

    wait_time = constant(0)

    def on_start(self) -> None:
        """Start with no order in flight."""
        super().on_start()
        self.in_flight: dict[int, _Order] = {}

    @task
    def order_and_watch(self) -> None:
        """Send one order, then poll the views of the orders in flight for CYCLE_S."""
        if len(self.in_flight) < MAX_IN_FLIGHT:
            self._send()
        until = time.time() + CYCLE_S
        while self.in_flight:
            self._poll()
            if time.time() + POLL_S >= until:
                break
            time.sleep(POLL_S)
        time.sleep(max(until - time.time(), 0.0))

    def _send(self) -> None:
        sent_at = time.time()
        response = self.client.post(
            "/order-events", json={}, name="/order-events", timeout=REQUEST_TIMEOUT_S
        )
        try:
            order_id = int(response.json()["id"])
        except (ValueError, KeyError, TypeError):
            # No order was placed (the api or Redis failed); the request counts as failed.
            return
        # A 502 of direct calls still placed the order; the consumers that got it record it.
        self.in_flight[order_id] = _Order(order_id, sent_at)

    def _poll(self) -> None:
        ids = ",".join(str(order_id) for order_id in self.in_flight)
        response = self.client.get(
            f"/order-events/views?ids={ids}", name="/order-events/views", timeout=REQUEST_TIMEOUT_S
        )
        if response.status_code != 200:
            return
        orders: dict[str, dict[str, float | None]] = response.json()["orders"]
        now = time.time()
        for key, views in orders.items():
            order = self.in_flight.get(int(key))
            if order is not None:
                self._check(order, views, now)

    def _check(self, order: _Order, views: dict[str, float | None], now: float) -> None:
        """Fire the checks of the consumers newly seen; drop the order once all or lost."""
        for consumer, seen_at in views.items():
            if seen_at is None or consumer in order.seen:
                continue
            order.seen[consumer] = seen_at
            _fire(self, f"view {consumer}", order.sent_at, _ms(seen_at - order.sent_at), None)
        if views and len(order.seen) == len(views):
            latest = max(order.seen.values())
            _fire(self, "all views", order.sent_at, _ms(latest - order.sent_at), None)
            del self.in_flight[order.order_id]
        elif now - order.sent_at > LOST_AFTER_S:
            limit_ms = LOST_AFTER_S * 1000
            for consumer in views:
                if consumer not in order.seen:
                    _fire(self, f"view {consumer}", order.sent_at, limit_ms, "order lost")
            _fire(self, "all views", order.sent_at, limit_ms, "order lost")
            del self.in_flight[order.order_id]


def _ms(seconds: float) -> float:
    """Return seconds as milliseconds, at least 0 (one host clock for api and consumers)."""
    return max(seconds, 0.0) * 1000.0


USER_CLASSES["OrderUser"] = OrderUser
