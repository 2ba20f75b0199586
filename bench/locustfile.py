"""A bare locustfile for the load benchmark: the task and wait time of `CheckoutUser`.

`bench/load_bench.py` runs it with the `locust` command line as the yardstick for the harness's
Locust worker. It imports nothing from the harness, so the yardstick carries none of the harness's
code. `--max-requests` stops the run after that many requests, the same bound the worker has.
"""

from __future__ import annotations

from itertools import count
from typing import Any

import gevent
from locust import HttpUser, between, events, task
from locust.argument_parser import LocustArgumentParser
from locust.env import Environment

REQUEST_TIMEOUT_S = 60.0

_order_ids = count(1)


def add_arguments(parser: LocustArgumentParser) -> None:
    """Add `--max-requests` to the command line."""
    parser.add_argument(
        "--max-requests", type=int, default=0, help="stop after this many requests (0: no limit)"
    )


def bound_requests(environment: Environment, **_: Any) -> None:
    """Register a request listener that stops the runner after `--max-requests` requests."""
    options = environment.parsed_options
    limit = options.max_requests if options is not None else 0
    if limit <= 0:
        return
    seen = [0]

    def on_request(**_: Any) -> None:
        seen[0] += 1
        if seen[0] == limit and environment.runner is not None:
            gevent.spawn(environment.runner.quit)

    environment.events.request.add_listener(on_request)  # type: ignore[no-untyped-call]


events.init_command_line_parser.add_listener(add_arguments)  # type: ignore[no-untyped-call]
events.init.add_listener(bound_requests)  # type: ignore[no-untyped-call]


class CheckoutUser(HttpUser):
    """A shopper who places orders: `POST /checkout` through the edge."""

    wait_time = between(0.05, 0.15)

    def on_start(self) -> None:
        """Ignore proxy variables of the environment, so every request stays on loopback."""
        self.client.trust_env = False

    @task
    def checkout(self) -> None:
        """Place one order."""
        order = {"order_id": next(_order_ids), "amount_cents": 1999}
        self.client.post("/checkout", json=order, name="/checkout", timeout=REQUEST_TIMEOUT_S)
