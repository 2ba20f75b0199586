"""A consumer's reader of the order stream: one consumer group per consumer service.

Each consumer service has a group of its own on `orders:stream`, so every service gets every
order, and its instance reads as the group's consumer of the instance's name. Delivery is at
least once: after a restart the consumer first reads the entries delivered to it and never
acknowledged (its pending entries), then new ones. An entry is acknowledged in the same
transaction that records it in the consumer's view, and a redelivered order keeps the time it
was first recorded.

The consumer keeps reading while it works: each order is a task of its own, up to
MAX_IN_FLIGHT at once, because the per-order work is a wait (I/O such as a call to an email
provider). So an order does not queue behind the one before it, and a consumer that returns to
a backlog clears it in about one order's time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError, ResponseError

from targets.consumers import views

log = structlog.get_logger(__name__)

# An entry older than this when read means the consumer is behind.
BEHIND_S = 1.0
BATCH = 100
MAX_IN_FLIGHT = 200
# Records at once. Each uses a Redis connection, and redis-py's asyncio pool allows 100.
MAX_RECORDING = 16
BLOCK_MS = 1000
RETRY_MAX_S = 2.0

Entry = tuple[bytes, dict[bytes, bytes] | None]


@dataclass
class StreamConsumer:
    """Reads the order stream for one consumer group and records each order in its view.

    `on_record(published_at, seen_at)` runs for each order recorded for the first time and
    `on_duplicate()` for a redelivered one. `on_caught_up(seconds)` runs once the consumer has
    cleared a backlog. Its seconds run from the consumer's return until the last order of the
    backlog was recorded. Its return is its start, or else its first read of old entries.
    """

    client: aioredis.Redis
    group: str
    name: str
    delay_s: float
    on_record: Callable[[float, float], None] = lambda published_at, seen_at: None
    on_duplicate: Callable[[], None] = lambda: None
    on_caught_up: Callable[[float], None] = lambda seconds: None
    started_at: float = field(default_factory=time.time)
    _reads: int = 0
    _behind_since: float | None = None
    _behind_left: int = 0
    _behind_done: float = 0.0
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _error: BaseException | None = None
    _slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(MAX_IN_FLIGHT))
    _recording: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(MAX_RECORDING))
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)

    def stop(self) -> None:
        """Ask `run` to return after its current read (at most BLOCK_MS).

        NOTE: stop through this flag rather than by cancelling `run`: redis-py 8.2's asyncio
        client can swallow a CancelledError that arrives during a command, and the cancelled
        task then reads on forever.
        """
        self._stopping.set()

    async def ensure_group(self) -> None:
        """Create the group at the start of the stream, so no order before it is skipped."""
        try:
            await self.client.xgroup_create(views.STREAM_KEY, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def run(self) -> None:
        """Read and record orders until stopped; after a Redis error, retry from the
        pending entries, so an order whose recording failed is not skipped."""
        failures = 0
        try:
            while not self._stopping.is_set():
                try:
                    await self.ensure_group()
                    await self.drain_pending()
                    while not self._stopping.is_set():
                        await self.read_new()
                        failures = 0
                except (RedisError, OSError) as exc:
                    failures += 1
                    delay = min(0.25 * 2 ** min(failures, 4), RETRY_MAX_S)
                    log.warning("stream.read_failed", group=self.group, consumer=self.name,
                                error=str(exc), failures=failures, retry_in_s=delay)  # fmt: skip
                    await asyncio.sleep(delay)
        finally:
            for task in self._tasks:
                task.cancel()

    async def drain_pending(self) -> None:
        """Process the entries delivered to this consumer before and never acknowledged."""
        await self.settle()
        while True:
            reply = await self.client.xreadgroup(
                self.group, self.name, {views.STREAM_KEY: "0"}, count=BATCH
            )
            entries = _entries(reply)
            if not entries:
                return
            log.info("stream.pending", group=self.group, consumer=self.name, entries=len(entries))
            await self.handle(entries)
            # Pending entries stay pending until acknowledged, so the next read must wait.
            await self.settle()

    async def read_new(self) -> None:
        """Wait up to BLOCK_MS for entries no consumer of the group has read, and start them."""
        self._raise_failure()
        reply = await self.client.xreadgroup(
            self.group, self.name, {views.STREAM_KEY: ">"}, count=BATCH, block=BLOCK_MS
        )
        await self.handle(_entries(reply))

    async def settle(self) -> None:
        """Wait for every order in flight; raise the first failure of one."""
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._raise_failure()

    async def handle(self, entries: list[Entry]) -> None:
        """Start a task per entry, and track whether the consumer is behind."""
        now = time.time()
        first_read = self._reads == 0
        self._reads += 1
        behind = any(now - _published_at(fields, now) > BEHIND_S for _, fields in entries)
        if behind:
            if self._behind_since is None:
                # A backlog found on the first read was there when the process started.
                self._behind_since = self.started_at if first_read else now
                log.info("stream.behind", group=self.group, consumer=self.name)
            self._behind_left += len(entries)
        elif self._behind_since is not None and self._behind_left == 0:
            seconds = self._behind_done - self._behind_since
            self._behind_since = None
            log.info("stream.caught_up", group=self.group, consumer=self.name, seconds=seconds)
            self.on_caught_up(seconds)

        for entry_id, fields in entries:
            await self._slots.acquire()
            task = asyncio.create_task(self._process(entry_id, fields, behind))
            self._tasks.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slots.release()
        if not task.cancelled() and task.exception() is not None and self._error is None:
            self._error = task.exception()

    def _raise_failure(self) -> None:
        error, self._error = self._error, None
        if error is not None:
            raise error

    async def _process(
        self, entry_id: bytes, fields: dict[bytes, bytes] | None, behind: bool
    ) -> None:
        ack = (views.STREAM_KEY, self.group, entry_id.decode())
        try:
            if not fields or b"id" not in fields:
                # An entry without an order cannot be recorded; acknowledging it ends redelivery.
                log.warning("stream.entry_invalid", group=self.group, entry=ack[2])
                await self.client.xack(*ack)
                return
            await asyncio.sleep(self.delay_s)
            order_id = int(fields[b"id"])
            published_at = _published_at(fields, time.time())
            async with self._recording:
                seen_at = await views.record(
                    self.client, self.group, order_id, published_at, ack=ack
                )
        finally:
            if behind:
                self._behind_left -= 1
                self._behind_done = time.time()
        if seen_at is None:
            self.on_duplicate()
        else:
            self.on_record(published_at, seen_at)


def _entries(reply: object) -> list[Entry]:
    """Return the entries of an XREADGROUP reply on one stream."""
    if not reply:
        return []
    assert isinstance(reply, list)
    _stream, entries = reply[0]
    return list(entries)


def _published_at(fields: dict[bytes, bytes] | None, default: float) -> float:
    raw = (fields or {}).get(b"published_at")
    return float(raw) if raw is not None else default
