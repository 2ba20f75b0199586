"""Locust user classes for the reference target, registered by name for experiment files."""

from __future__ import annotations

import os
import random
import time
from itertools import count, pairwise

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


def _fire(user: HttpUser, name: str, started: float, elapsed_ms: float, error: str | None) -> None:
    """Record a client-side check as a request of its own name, so hypotheses can scope it."""
    user.environment.events.request.fire(
        request_type="CHECK",
        name=name,
        response_time=elapsed_ms,
        response_length=0,
        response=None,
        context={},
        exception=Exception(error) if error else None,
        start_time=started,
        url=name,
    )


class _LoopbackUser(HttpUser):
    abstract = True

    def on_start(self) -> None:
        """Keep every request on loopback: ignore proxy variables of the environment."""
        self.client.trust_env = False


class ProductReader(_LoopbackUser):
    """Reads products of a small hot set, as a catalogue page does."""

    weight = 9
    wait_time = between(0.05, 0.15)

    @task
    def read(self) -> None:
        """Read one product."""
        product = random.randint(1, HOT_PRODUCTS)
        self.client.get(f"/products/{product}", name="/products", timeout=REQUEST_TIMEOUT_S)


class ProductWriter(_LoopbackUser):
    """Changes a price, then reads it back until the new price shows: the staleness window."""

    weight = 1
    wait_time = between(0.5, 1.0)

    @task
    def write_then_read(self) -> None:
        """Write a new price and time how long reads still return the old one."""
        product = random.randint(1, HOT_PRODUCTS)
        price = next(_prices)
        response = self.client.put(f"/products/{product}", json={"price_cents": price},
                                   name="/products write", timeout=REQUEST_TIMEOUT_S)  # fmt: skip
        if response.status_code != 200:
            return
        written = time.time()
        deadline = written + STALENESS_LIMIT_S
        first = True
        while time.time() < deadline:
            read = self.client.get(f"/products/{product}", name="/products",
                                   timeout=REQUEST_TIMEOUT_S)  # fmt: skip
            if read.status_code == 200 and read.json().get("price_cents") == price:
                # A fresh first read means no stale window, however slow that read was.
                elapsed = 0.0 if first else time.time() - written
                _fire(self, "staleness", written, elapsed * 1000, None)
                return
            first = False
            time.sleep(0.05)
        _fire(self, "staleness", written, STALENESS_LIMIT_S * 1000, "new price never read")


class AccountReader(_LoopbackUser):
    """Reads accounts: the read-heavy part of the load."""

    weight = 8
    wait_time = between(0.02, 0.08)

    @task
    def read(self) -> None:
        """Read one account."""
        account = random.randint(1, 10_000)
        self.client.get(f"/accounts/{account}", name="/accounts", timeout=REQUEST_TIMEOUT_S)


class AccountWriter(_LoopbackUser):
    """Writes an account, then reads it at once: a read-after-write that may be stale."""

    weight = 2
    wait_time = between(0.1, 0.3)

    @task
    def write_then_read(self) -> None:
        """Bump a version, read it back with the write's LSN, and check it."""
        account = random.randint(1, 10_000)
        wrote = self.client.post(f"/accounts/{account}", name="/accounts write",
                                 timeout=REQUEST_TIMEOUT_S)  # fmt: skip
        if wrote.status_code != 200:
            return
        version, lsn = wrote.json()["version"], wrote.json()["lsn"]
        # The read follows the write as a page reload would, not within the same millisecond,
        # so a healthy replica has replayed the write by then.
        time.sleep(READ_AFTER_WRITE_S)
        started = time.time()
        read = self.client.get(f"/accounts/{account}", name="/accounts",
                               headers={"X-Min-Lsn": lsn}, timeout=REQUEST_TIMEOUT_S)  # fmt: skip
        elapsed = (time.time() - started) * 1000
        if read.status_code != 200:
            _fire(self, "read-after-write", started, elapsed, f"read failed: {read.status_code}")
            return
        stale = read.json()["version"] < version
        _fire(self, "read-after-write", started, elapsed, "stale read" if stale else None)


class OrderSearcher(_LoopbackUser):
    """Looks up a customer's orders: a query over the whole orders table."""

    wait_time = between(0.1, 0.3)

    @task
    def search(self) -> None:
        """Search one customer."""
        customer = random.randint(1, 100_000)
        self.client.get(f"/orders/search?customer_id={customer}", name="/orders/search",
                        timeout=REQUEST_TIMEOUT_S)  # fmt: skip


class _Pager(_LoopbackUser):
    abstract = True
    wait_time = between(0.05, 0.15)
    mode = "offset"

    def _page(self, position: int, limit: int, name: str) -> list[int]:
        rows = data_rows()
        if self.mode == "offset":
            url = f"/orders/page?offset={position}&limit={limit}"
        else:
            # Seeded ids run 1..rows, newest first, so the row at a position has this id.
            url = f"/orders/page?after={rows - position + 1}&limit={limit}"
        response = self.client.get(url, name=name, timeout=REQUEST_TIMEOUT_S)
        if response.status_code != 200:
            return []
        ids: list[int] = response.json()["ids"]
        return ids

    @task(3)
    def deep_page(self) -> None:
        """Read one page at a shallow or a deep position."""
        depth = random.choice(PAGE_DEPTHS)
        position = int(data_rows() * depth)
        self._page(position, 20, f"page at {int(depth * 100)}%")

    @task(1)
    def walk(self) -> None:
        """Walk 10 pages from the newest order and count rows seen twice or skipped."""
        seen: list[int] = []
        cursor: int | None = None
        started = time.time()
        for page in range(10):
            if self.mode == "offset" or cursor is None:
                ids = self._page(page * 50, 50, "page walk step")
            else:
                response = self.client.get(
                    f"/orders/page?after={cursor}&limit=50",
                    name="page walk step",
                    timeout=REQUEST_TIMEOUT_S,
                )
                ids = response.json()["ids"] if response.status_code == 200 else []
            if not ids:
                return
            seen.extend(ids)
            cursor = ids[-1]
            time.sleep(0.02)
        duplicates = len(seen) - len(set(seen))
        ordered = sorted(set(seen), reverse=True)
        skipped = sum(a - b - 1 for a, b in pairwise(ordered) if a - b > 1)
        elapsed = (time.time() - started) * 1000
        _fire(
            self,
            "page walk",
            started,
            elapsed,
            f"{duplicates} duplicated, {skipped} skipped" if duplicates or skipped else None,
        )
        for _ in range(duplicates):
            _fire(self, "duplicated row", started, 0.0, "row seen twice")


class OffsetPager(_Pager):
    """Pages newest-first orders with LIMIT/OFFSET."""

    mode = "offset"


class CursorPager(_Pager):
    """Pages newest-first orders with a keyset cursor (the last id seen)."""

    mode = "cursor"


class TenantUser(_LoopbackUser):
    """Reads the orders of one of 8 tenants, and sometimes the total over all tenants."""

    wait_time = between(0.05, 0.15)

    @task(10)
    def tenant(self) -> None:
        """Read one tenant's orders. The request name separates even tenants from odd ones."""
        tenant = random.randint(1, 8)
        parity = "even" if tenant % 2 == 0 else "odd"
        self.client.get(f"/tenants/{tenant}/orders", name=f"tenant {parity}",
                        timeout=REQUEST_TIMEOUT_S)  # fmt: skip

    @task(1)
    def total(self) -> None:
        """Count orders over every tenant: a cross-shard query."""
        self.client.get("/orders/total", name="/orders/total", timeout=REQUEST_TIMEOUT_S)


class NormalSearcher(_LoopbackUser):
    """One of many well-behaved users searching orders now and then."""

    wait_time = between(0.3, 0.6)

    def on_start(self) -> None:
        """Pick a user name."""
        super().on_start()
        self.user_name = f"user-{next(_user_ids)}"

    @task
    def search(self) -> None:
        """Search as this user."""
        customer = random.randint(1, 100_000)
        self.client.get(f"/orders/search?customer_id={customer}", name="normal search",
                        headers={"X-User": self.user_name}, timeout=REQUEST_TIMEOUT_S)  # fmt: skip


class AbusiveSearcher(_LoopbackUser):
    """The abuser: many connections, each with a short pause, all under one user name."""

    wait_time = between(0.1, 0.2)

    @task
    def search(self) -> None:
        """Search as the abuser."""
        customer = random.randint(1, 100_000)
        self.client.get(f"/orders/search?customer_id={customer}", name="abuser search",
                        headers={"X-User": "abuser"}, timeout=REQUEST_TIMEOUT_S)  # fmt: skip


class SessionUser(_LoopbackUser):
    """A logged-in user who keeps reading their profile; a 401 means the session was lost."""

    wait_time = between(0.05, 0.15)

    def on_start(self) -> None:
        """Log in."""
        super().on_start()
        self.user_name = f"user-{next(_user_ids)}"
        # The client id cookie the edge routes sticky sessions by, set before the login.
        self.client.cookies.set("uid", self.user_name)
        self._login()

    def _login(self) -> None:
        self.client.post("/login", json={"user": self.user_name}, name="/login",
                         timeout=REQUEST_TIMEOUT_S)  # fmt: skip

    @task
    def profile(self) -> None:
        """Read the profile; on 401 count a bounced user and log in again."""
        with self.client.get("/profile", name="/profile", timeout=REQUEST_TIMEOUT_S,
                             catch_response=True) as response:  # fmt: skip
            if response.status_code == 401:
                # The request itself worked: the instance responded, it only lost the session.
                response.success()
                _fire(self, "bounced", time.time(), 0.0, "session lost")
                self._login()


def data_rows() -> int:
    """Return the seed rows of the orders table, which the runner passes to the worker."""
    return int(os.environ.get("HARNESS_DATA_ROWS", "10000"))


class WorkUser(_LoopbackUser):
    """A user who requests work that occupies one of an api instance's few worker slots."""

    wait_time = between(0.4, 0.6)

    @task
    def work(self) -> None:
        """Ask for one unit of work."""
        self.client.get("/work", name="/work", timeout=REQUEST_TIMEOUT_S)


HOT_PRODUCTS = 50
READ_AFTER_WRITE_S = 0.2
STALENESS_LIMIT_S = 15.0
PAGE_DEPTHS = (0.0, 0.9)
_prices = count(100_000)
_user_ids = count(1)

USER_CLASSES.update(
    {
        cls.__name__: cls
        for cls in (
            ProductReader, ProductWriter, AccountReader, AccountWriter, OrderSearcher,
            OffsetPager, CursorPager, TenantUser, NormalSearcher, AbusiveSearcher, SessionUser,
            WorkUser,
        )
    }
)  # fmt: skip

# The users of the blobs service and of the job queue live in modules of their own, which
# register them on import.
import harness.load.blob_users  # noqa: E402
import harness.load.jobs_users  # noqa: E402
import harness.load.orders_users  # noqa: E402, F401
