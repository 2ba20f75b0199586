"""The pub-sub experiment and its consumers: the stream and view logic on a real redis-server,
a consumer app frozen with SIGSTOP, and whole runs through the command line (marked slow)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
import requests

from harness.platforms.processes import LOOPBACK, free_port
from targets.consumers import views
from targets.consumers.stream import BEHIND_S, BLOCK_MS, StreamConsumer
from tests.experiments.test_experiment_runs import (
    _assert_nothing_left,
    _failed,
    _run,
    _write_variant,
)

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parent.parent.parent
WAIT_S = 15.0


@contextlib.asynccontextmanager
async def _client(port: int) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis(host=LOOPBACK, port=port, socket_timeout=5)
    await client.flushall()
    try:
        yield client
    finally:
        await client.aclose()


async def _publish(client: aioredis.Redis, order_id: int, published_at: float) -> None:
    """Publish an order the way the api does in stream mode."""
    async with client.pipeline(transaction=True) as pipe:
        pipe.zadd(views.PUBLISHED_KEY, {str(order_id): published_at})
        pipe.xadd(views.STREAM_KEY, {"id": order_id, "published_at": repr(published_at)})
        await pipe.execute()


@contextlib.asynccontextmanager
async def _running(consumer: StreamConsumer) -> AsyncIterator[StreamConsumer]:
    task = asyncio.create_task(consumer.run())
    try:
        yield consumer
    finally:
        consumer.stop()
        await asyncio.wait([task], timeout=BLOCK_MS / 1000.0 + 5.0)
        assert task.done(), "the consumer did not stop within one blocking read"


async def _wait_for_view(client: aioredis.Redis, consumer: str, orders: int) -> None:
    """Wait until the consumer's view contains `orders` orders, or fail after WAIT_S."""
    deadline = time.monotonic() + WAIT_S
    while await client.hlen(views.seen_key(consumer)) < orders:
        assert time.monotonic() < deadline, f"{consumer} recorded too few orders"
        await asyncio.sleep(0.02)


async def _pending(client: aioredis.Redis, group: str) -> int:
    summary = await client.xpending(views.STREAM_KEY, group)
    return int(summary["pending"])


def test_record_keeps_first_time(redis_port: int) -> None:
    """Recording an order twice keeps the first time and reports the second as a duplicate."""

    async def scenario() -> None:
        async with _client(redis_port) as client:
            first = await views.record(client, "billing", 7, 100.0)
            second = await views.record(client, "billing", 7, 100.0)
            stored = await client.hget(views.seen_key("billing"), "7")
            assert first is not None
            assert second is None
            assert stored is not None
            assert float(stored) == first

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("published_ago", "seen_ago", "published", "seen"),
    [
        ((10.0, 8.0, 1.0), (10.0, 8.0), 2, 2),
        ((10.0, 8.0, 1.0), (10.0,), 2, 1),
        ((10.0, 8.0, 1.0), (), 2, 0),
        ((1.0,), (), 0, 0),
    ],
)
def test_counts_leave_out_recent_orders(
    redis_port: int,
    published_ago: tuple[float, ...],
    seen_ago: tuple[float, ...],
    published: int,
    seen: int,
) -> None:
    """Counts take only orders published before the cut-off, 5 s ago here."""

    async def scenario() -> None:
        async with _client(redis_port) as client:
            now = time.time()
            for order_id, ago in enumerate(published_ago, start=1):
                await client.zadd(views.PUBLISHED_KEY, {str(order_id): now - ago})
            for order_id, ago in enumerate(seen_ago, start=1):
                await views.record(client, "stock", order_id, now - ago)
            counts = await views.counts(client, "stock", now - 5.0)
            assert counts.published == published
            assert counts.seen == seen
            assert counts.missing == published - seen

    asyncio.run(scenario())


@pytest.mark.parametrize("orders", [1, 30, 250])
def test_consumer_records_every_order(redis_port: int, orders: int) -> None:
    """Every published order lands in the view once and no entry stays pending."""

    async def scenario() -> None:
        async with _client(redis_port) as client:
            now = time.time()
            for order_id in range(1, orders + 1):
                await _publish(client, order_id, now)
            duplicates: list[None] = []
            consumer = StreamConsumer(client, "email", "email-1", 0.02,
                                      on_duplicate=lambda: duplicates.append(None))  # fmt: skip
            async with _running(consumer):
                await _wait_for_view(client, "email", orders)
                await consumer.settle()
            counts = await views.counts(client, "email", time.time())
            assert counts.published == orders
            assert counts.missing == 0
            assert await _pending(client, "email") == 0
            assert duplicates == []

    asyncio.run(scenario())


def test_consumer_reads_pending_first(redis_port: int) -> None:
    """After a crash between delivery and acknowledgement, the restarted consumer records its
    pending entries before new ones, and loses none."""

    async def scenario() -> None:
        async with _client(redis_port) as client:
            now = time.time()
            for order_id in range(1, 6):
                await _publish(client, order_id, now)
            consumer = StreamConsumer(client, "billing", "billing-1", 0.05)
            await consumer.ensure_group()
            # A consumer that crashed: the entries were delivered to it and never acknowledged.
            await client.xreadgroup("billing", "billing-1", {views.STREAM_KEY: ">"}, count=10)
            assert await _pending(client, "billing") == 5
            for order_id in range(6, 9):
                await _publish(client, order_id, now)

            async with _running(consumer):
                await _wait_for_view(client, "billing", 8)
                await consumer.settle()

            seen = {int(k): float(v) for k, v in
                    (await client.hgetall(views.seen_key("billing"))).items()}  # fmt: skip
            assert sorted(seen) == list(range(1, 9))
            assert max(seen[i] for i in range(1, 6)) <= min(seen[i] for i in range(6, 9))
            assert await _pending(client, "billing") == 0

    asyncio.run(scenario())


@pytest.mark.parametrize("in_flight", [False, True])
def test_consumer_catches_up_after_stop(redis_port: int, in_flight: bool) -> None:
    """A consumer stopped (with or without orders in flight) catches up once started again,
    reports how long that took, and misses no order."""

    async def scenario() -> None:
        async with _client(redis_port) as client:
            first = StreamConsumer(client, "analytics", "analytics-1", 0.3 if in_flight else 0.01)
            async with _running(first):
                await _publish(client, 1, time.time())
                if in_flight:
                    await asyncio.sleep(0.1)
                else:
                    await _wait_for_view(client, "analytics", 1)
            for order_id in range(2, 42):
                await _publish(client, order_id, time.time())
            # While the consumer is down the backlog ages past BEHIND_S.
            await asyncio.sleep(BEHIND_S + 0.3)

            caught_up: list[float] = []
            returned = time.time()
            second = StreamConsumer(client, "analytics", "analytics-1", 0.05,
                                    on_caught_up=caught_up.append, started_at=returned)  # fmt: skip
            async with _running(second):
                await _wait_for_view(client, "analytics", 41)
                deadline = time.monotonic() + WAIT_S
                while not caught_up:
                    assert time.monotonic() < deadline, "no catch-up reported"
                    await asyncio.sleep(0.05)
            assert len(caught_up) == 1
            assert 0.0 < caught_up[0] < time.time() - returned
            counts = await views.counts(client, "analytics", time.time())
            assert counts.published == 41
            assert counts.missing == 0
            assert await _pending(client, "analytics") == 0

    asyncio.run(scenario())


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"metric {name} not exported")


def test_paused_consumer_app_catches_up(redis_port: int, tmp_path: Path) -> None:
    """The consumer app frozen with SIGSTOP records every order published meanwhile once
    thawed, and exports its catch-up and no missing order."""
    redis.Redis(host=LOOPBACK, port=redis_port).flushall()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.update({"PYTHONPATH": str(REPO), "HARNESS_INSTANCE": "stock-1", "CONSUMER_DELAY_MS": "20",
                "CONSUMER_REDIS_URL": f"redis://{LOOPBACK}:{redis_port}/0"})  # fmt: skip
    log = (tmp_path / "stock-1.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "targets.consumers.app:app", "--host", LOOPBACK,
         "--port", str(port), "--log-level", "warning"],
        env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://{LOOPBACK}:{port}"
    session = requests.Session()
    session.trust_env = False
    try:
        deadline = time.monotonic() + WAIT_S
        while True:
            try:
                if session.get(f"{base}/health", timeout=1).ok:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, "consumer app did not start"
            time.sleep(0.1)

        process.send_signal(signal.SIGSTOP)
        sync = redis.Redis(host=LOOPBACK, port=redis_port)
        for order_id in range(1, 31):
            published_at = time.time()
            sync.zadd(views.PUBLISHED_KEY, {str(order_id): published_at})
            sync.xadd(views.STREAM_KEY, {"id": order_id, "published_at": repr(published_at)})
            time.sleep(0.05)
        time.sleep(BEHIND_S)
        assert sync.hlen(views.seen_key("stock")) == 0
        process.send_signal(signal.SIGCONT)

        deadline = time.monotonic() + WAIT_S
        while True:
            metrics = session.get(f"{base}/metrics", timeout=2).text
            done = _metric(metrics, "consumer_catch_ups_total") >= 1
            if done and _metric(metrics, "consumer_published_orders") == 30:
                break
            assert time.monotonic() < deadline, metrics[-2000:]
            time.sleep(0.2)
        assert sync.hlen(views.seen_key("stock")) == 30
        assert _metric(metrics, "consumer_missing_orders") == 0
        assert 0 < _metric(metrics, "consumer_catch_up_seconds") < WAIT_S
    finally:
        process.send_signal(signal.SIGCONT)
        process.terminate()
        process.wait(timeout=10)
        log.close()


def _shorten(data: dict[str, Any]) -> None:
    """Cut phases so a run of both arms takes about a minute."""
    data["phases"] = {"baseline": "5s", "fault": "7s", "recovery": "8s"}


@pytest.mark.slow
def test_pub_sub_passes(tmp_path: Path) -> None:
    """The pub-sub experiment passes with short phases and leaves nothing behind."""
    code, report, output = _run(tmp_path, _write_variant(tmp_path, "pub-sub", _shorten))
    assert code == 0, (_failed(report), output[-3000:])
    control = report["arms"]["control"]["phases"]
    treatment = report["arms"]["treatment"]["phases"]
    assert control["baseline"]["probes"]["all_views_p50_ms"] > 900
    assert treatment["baseline"]["probes"]["all_views_p50_ms"] < 500
    assert treatment["recovery"]["probes"]["billing_missing"] == 0
    assert control["recovery"]["probes"]["billing_missing"] > 0
    _assert_nothing_left(tmp_path)


@pytest.mark.slow
def test_pub_sub_sequential_in_both_arms_fails(tmp_path: Path) -> None:
    """With direct calls in the treatment too, the experiment fails with exit code 1."""

    def sequential(data: dict[str, Any]) -> None:
        _shorten(data)
        data["arms"]["treatment"]["target"] = data["arms"]["control"]["target"]

    code, report, output = _run(tmp_path, _write_variant(tmp_path, "pub-sub", sequential))
    assert code == 1, output[-3000:]
    failed = _failed(report)
    assert any("treatment/all four have the order after about the slowest one" in f
               for f in failed), failed  # fmt: skip
    assert any("treatment/billing misses no order" in f for f in failed), failed
    _assert_nothing_left(tmp_path)
