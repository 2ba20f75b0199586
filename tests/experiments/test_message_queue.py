"""The message-queue experiment and its worker: the queue logic on a real redis-server, and whole
runs through the command line (marked slow)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from prometheus_client import REGISTRY

from harness.platforms.processes import LOOPBACK
from targets.worker import queue
from targets.worker.queue import Worker, WorkerConfig
from tests.conftest import REPO
from tests.experiments.test_experiment_runs import (
    _assert_nothing_left,
    _failed,
    _run,
    _write_variant,
)

pytestmark = pytest.mark.integration


@contextlib.asynccontextmanager
async def _client(port: int) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis(host=LOOPBACK, port=port, decode_responses=True, socket_timeout=5)
    await client.flushall()
    try:
        yield client
    finally:
        await client.aclose()


@contextlib.asynccontextmanager
async def _running(client: aioredis.Redis, config: WorkerConfig) -> AsyncIterator[Worker]:
    worker = Worker(client, config)
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        worker.stop()
        await asyncio.wait_for(task, timeout=10)


# A worker in a process of its own, so the test can kill it with SIGKILL.
_WORKER_PROCESS = """
import asyncio, sys
import redis.asyncio as aioredis
from targets.worker.queue import Worker, WorkerConfig

async def main() -> None:
    client = aioredis.Redis(host="127.0.0.1", port=int(sys.argv[1]), decode_responses=True)
    config = WorkerConfig(consumer="doomed", concurrency=2, visibility_s=0.5, poll_s=0.1)
    await Worker(client, config).run()

asyncio.run(main())
"""


async def _until(check: Callable[[], Awaitable[bool]], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def _status_is(client: aioredis.Redis, job_id: str, status: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return (await queue.read_job(client, job_id)).get("status") == status

    return check


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _config(consumer: str, **changes: Any) -> WorkerConfig:
    """A worker with short timeouts, so each case takes about a second."""
    settings: dict[str, Any] = {"concurrency": 2, "visibility_s": 0.5, "max_attempts": 3,
                                "poll_s": 0.1}  # fmt: skip
    settings.update(changes)
    return WorkerConfig(consumer=consumer, **settings)


async def _pending(client: aioredis.Redis) -> int:
    summary = await client.xpending(queue.STREAM, queue.GROUP)
    return int(summary["pending"])


def test_killed_worker_job_redelivered(redis_port: int) -> None:
    """A job whose worker dies mid-run is claimed after the visibility timeout and done once."""

    async def scenario() -> None:
        async with _client(redis_port) as client:
            redelivered = _sample("worker_jobs_redelivered_total")
            await queue.ensure_group(client)
            await queue.enqueue(client, "a", duration_ms=1000, poison=False)
            doomed = subprocess.Popen([sys.executable, "-c", _WORKER_PROCESS, str(redis_port)],
                                      cwd=REPO)  # fmt: skip
            try:
                await _until(_status_is(client, "a", "running"))
            finally:
                doomed.send_signal(signal.SIGKILL)
                doomed.wait(timeout=10)
            # The entry stays pending under the dead consumer, its lease no longer renewed.
            assert await _pending(client) == 1
            async with _running(client, _config("survivor")):
                await _until(_status_is(client, "a", "done"))
            job = await queue.read_job(client, "a")
            assert job["attempts"] == "2"
            assert job["completions"] == "1"
            assert job["worker"] == "survivor"
            assert _sample("worker_jobs_redelivered_total") - redelivered == 1
            assert await _pending(client) == 0

    asyncio.run(scenario())


def test_lease_renewed_during_long_job(redis_port: int) -> None:
    """A job three times longer than the visibility timeout is not claimed by another worker."""

    async def scenario() -> None:
        async with _client(redis_port) as client:
            redelivered = _sample("worker_jobs_redelivered_total")
            duplicates = _sample("worker_jobs_duplicates_total")
            await queue.ensure_group(client)
            await queue.enqueue(client, "long", duration_ms=1500, poison=False)
            async with _running(client, _config("one")), _running(client, _config("two")):
                await _until(_status_is(client, "long", "done"))
            job = await queue.read_job(client, "long")
            assert job["attempts"] == "1"
            assert job["completions"] == "1"
            assert _sample("worker_jobs_redelivered_total") == redelivered
            assert _sample("worker_jobs_duplicates_total") == duplicates

    asyncio.run(scenario())


@pytest.mark.parametrize("max_attempts", [1, 2, 3])
def test_poison_job_dead_lettered(redis_port: int, max_attempts: int) -> None:
    """A job that always fails runs max_attempts times, then lands in the dead-letter stream."""

    async def scenario() -> None:
        async with _client(redis_port) as client:
            failed = _sample("worker_job_runs_total", outcome="failed")
            dead = _sample("worker_jobs_dead_lettered_total")
            await queue.ensure_group(client)
            await queue.enqueue(client, "poison", duration_ms=0, poison=True)
            async with _running(client, _config("w", max_attempts=max_attempts)):
                await _until(_status_is(client, "poison", "dead"))
            job = await queue.read_job(client, "poison")
            assert job["attempts"] == str(max_attempts)
            assert job["max_attempts"] == str(max_attempts)
            assert _sample("worker_job_runs_total", outcome="failed") - failed == max_attempts
            assert _sample("worker_jobs_dead_lettered_total") - dead == 1
            letters = await client.xrange(queue.DEAD_STREAM)
            assert [fields["id"] for _, fields in letters] == ["poison"]
            assert await _pending(client) == 0

    asyncio.run(scenario())


def test_second_completion_counted_as_duplicate(redis_port: int) -> None:
    """Two workers run one entry, as after a lease lost in a stall, and the second is counted."""

    async def scenario() -> None:
        async with _client(redis_port) as client:
            duplicates = _sample("worker_jobs_duplicates_total")
            await queue.ensure_group(client)
            await queue.enqueue(client, "twice", duration_ms=200, poison=False)
            read = await client.xreadgroup(queue.GROUP, "stalled", {queue.STREAM: ">"}, count=1)
            entry_id = read[0][1][0][0]
            first = Worker(client, _config("stalled"))
            second = Worker(client, _config("claimer"))
            await asyncio.gather(first.process(entry_id, "twice"),
                                 second.process(entry_id, "twice"))  # fmt: skip
            job = await queue.read_job(client, "twice")
            assert job["status"] == "done"
            assert job["completions"] == "2"
            assert _sample("worker_jobs_duplicates_total") - duplicates == 1

    asyncio.run(scenario())


def test_delivery_of_done_job_skipped(redis_port: int) -> None:
    """A done job delivered again is acked without running and counted as a duplicate."""

    async def scenario() -> None:
        async with _client(redis_port) as client:
            duplicates = _sample("worker_jobs_duplicates_total")
            await queue.ensure_group(client)
            await queue.enqueue(client, "done", duration_ms=0, poison=False)
            await client.hset(queue.job_key("done"), mapping={"status": "done", "attempts": 1,
                                                              "completions": 1})  # fmt: skip
            read = await client.xreadgroup(queue.GROUP, "w", {queue.STREAM: ">"}, count=1)
            await Worker(client, _config("w")).process(read[0][1][0][0], "done")
            job = await queue.read_job(client, "done")
            assert job["attempts"] == "1"
            assert job["completions"] == "1"
            assert _sample("worker_jobs_duplicates_total") - duplicates == 1
            assert await _pending(client) == 0

    asyncio.run(scenario())


def test_last_attempt_lost_in_crash_dead_lettered(redis_port: int) -> None:
    """A job whose last allowed attempt died with its worker is dead-lettered, not run again."""

    async def scenario() -> None:
        async with _client(redis_port) as client:
            await queue.ensure_group(client)
            await queue.enqueue(client, "crashed", duration_ms=0, poison=False)
            await client.hset(queue.job_key("crashed"), "attempts", 3)
            read = await client.xreadgroup(queue.GROUP, "w", {queue.STREAM: ">"}, count=1)
            await Worker(client, _config("w")).process(read[0][1][0][0], "crashed")
            job = await queue.read_job(client, "crashed")
            assert job["status"] == "dead"
            assert job["attempts"] == "3"
            assert job["completions"] == "0"

    asyncio.run(scenario())


# Whole runs -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_message_queue_passes(tmp_path: Path) -> None:
    """The message-queue experiment passes as shipped and leaves nothing behind."""
    code, report, output = _run(tmp_path, _write_variant(tmp_path, "message-queue"))
    assert code == 0, (_failed(report), output[-3000:])
    arms = report["arms"]
    assert arms["control"]["phases"]["fault"]["probes"]["submit_p50"] > 4500
    assert arms["treatment"]["phases"]["fault"]["probes"]["submit_p95"] < 500
    killed = arms["worker-killed"]["phases"]["recovery"]["probes"]
    assert killed["redelivered_total"] >= 1
    assert killed["duplicates_total"] == 0
    assert arms["poison"]["phases"]["recovery"]["probes"]["attempts_per_dead_letter"] == 3
    _assert_nothing_left(tmp_path)


@pytest.mark.slow
def test_jobs_inline_everywhere_fails(tmp_path: Path) -> None:
    """With jobs done inline in every arm, the queue's hypotheses fail with exit code 1."""

    def inline_everywhere(data: dict[str, Any]) -> None:
        for arm in data["arms"].values():
            arm["target"]["api"]["jobs"] = "inline"

    code, report, output = _run(
        tmp_path, _write_variant(tmp_path, "message-queue", inline_everywhere)
    )
    assert code == 1, output[-3000:]
    failed = _failed(report)
    assert any("treatment/the api answers at once" in f for f in failed), failed
    assert any("worker-killed/the killed worker's jobs are redelivered" in f for f in failed)
    assert any("poison/poison jobs end dead-lettered" in f for f in failed), failed
    _assert_nothing_left(tmp_path)
