"""Locust user classes for the reference target, registered by name for experiment files."""

from __future__ import annotations

from itertools import count

from locust import HttpUser, between, task

REQUEST_TIMEOUT_S = 60.0

_order_ids = count(1)


class CheckoutUser(HttpUser):
    """A shopper who places orders: `POST /checkout` through the edge."""

    abstract = False
    wait_time = between(0.05, 0.15)

    def on_start(self) -> None:
        """Keep every request on loopback: ignore proxy variables of the environment."""
        self.client.trust_env = False

    @task
    def checkout(self) -> None:
        """Place one order."""
        order = {"order_id": next(_order_ids), "amount_cents": 1999}
        self.client.post("/checkout", json=order, name="/checkout", timeout=REQUEST_TIMEOUT_S)


class BrowseUser(HttpUser):
    """A visitor who reads the catalog and sometimes checks out."""

    abstract = False
    wait_time = between(0.05, 0.15)

    def on_start(self) -> None:
        """Keep every request on loopback: ignore proxy variables of the environment."""
        self.client.trust_env = False

    @task(3)
    def catalog(self) -> None:
        """Read the catalog."""
        self.client.get("/catalog", name="/catalog", timeout=REQUEST_TIMEOUT_S)

    @task(1)
    def checkout(self) -> None:
        """Place one order."""
        order = {"order_id": next(_order_ids), "amount_cents": 999}
        self.client.post("/checkout", json=order, name="/checkout", timeout=REQUEST_TIMEOUT_S)


USER_CLASSES: dict[str, type[HttpUser]] = {
    "CheckoutUser": CheckoutUser,
    "BrowseUser": BrowseUser,
}
