"""The data tier on the local platform: Redis, PostgreSQL primary, replica and shard."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from harness import net
from harness.faults import FAULT_KINDS, FaultContext, FaultSpec
from harness.journal import Journal
from harness.platforms.local import LocalPlatform, UpOptions

pytestmark = pytest.mark.integration

ROWS = 2000


@pytest.fixture(scope="module")
def data_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPlatform]:
    """One target with every data service, small seed data, for the whole module."""
    options = UpOptions(services=["redis", "postgres-replica", "postgres-shard2"], seed=7,
                        data_rows=ROWS)  # fmt: skip
    target = LocalPlatform(tmp_path_factory.mktemp("data") / "state", options=options)
    target.up(target.stack.resolve_settings({"postgres-primary": {"index": True}}, "test"))
    try:
        yield target
    finally:
        target.down()


def _wait(check: object, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


def _fault(platform: LocalPlatform, spec: FaultSpec) -> tuple[object, dict[str, object]]:
    kind = FAULT_KINDS[spec.kind]
    data = kind.prepare(spec, FaultContext(platform, "test", 0, "arm", platform.state_dir,
                                           platform.state_dir, 0))  # fmt: skip
    return kind, data


def test_every_data_service_healthy(data_platform: LocalPlatform) -> None:
    """Redis, both PostgreSQL clusters and the replica come up healthy and seeded."""
    status = {i.name: i.healthy for i in data_platform.status().instances}
    for name in ("redis-1", "postgres-primary-1", "postgres-replica-1", "postgres-shard2-1",
                 "exporter-1"):  # fmt: skip
        assert status.get(name) is True, name
    assert data_platform.sql("postgres-primary", "SELECT count(*) FROM orders") == [(ROWS,)]
    assert data_platform.sql("postgres-replica", "SELECT pg_is_in_recovery()") == [(True,)]
    query = "SELECT indexname FROM pg_indexes WHERE tablename = 'orders'"
    indexes = data_platform.sql("postgres-primary", query)
    assert ("orders_customer_idx",) in indexes


def test_replica_streams_through_its_link(data_platform: LocalPlatform) -> None:
    """The replica streams from the primary through the replication link's proxy."""
    query = "SELECT state, client_addr::text FROM pg_stat_replication"
    rows = data_platform.sql("postgres-primary", query)
    assert rows and rows[0][0] == "streaming"
    proxies = net.request("GET", f"{data_platform.toxiproxy()}/proxies").json()
    assert "postgres-replica_to_postgres-primary" in proxies


def test_exporter_serves_figures(data_platform: LocalPlatform) -> None:
    """The exporter reports each instance and the replica's lag."""
    text = net.request("GET", f"{data_platform.endpoint('exporter')}/metrics").text
    assert 'harness_pg_up{server="postgres-replica"} 1.0' in text
    assert "harness_pg_replica_lag_seconds" in text
    assert 'harness_redis_up{server="redis"} 1.0' in text


def test_replica_lag_fault(data_platform: LocalPlatform) -> None:
    """Paused replay hides new writes on the replica until the fault is removed."""
    kind, data = _fault(data_platform, FaultSpec(kind="replica_lag", instance="postgres-replica-1"))
    kind.apply(FaultSpec(kind="replica_lag"), data)  # type: ignore[attr-defined]
    try:
        assert kind.took_effect(FaultSpec(kind="replica_lag"), data)  # type: ignore[attr-defined]
        data_platform.sql("postgres-primary", "UPDATE accounts SET version = 99 WHERE id = 1")
        time.sleep(0.5)
        query = "SELECT version FROM accounts WHERE id = 1"
        assert data_platform.sql("postgres-replica", query) != [(99,)]
    finally:
        kind.remove(data)  # type: ignore[attr-defined]
    assert _wait(lambda: data_platform.sql(
        "postgres-replica", "SELECT version FROM accounts WHERE id = 1") == [(99,)])  # fmt: skip


def test_pause_redis(data_platform: LocalPlatform) -> None:
    """A paused Redis does not respond until it is resumed."""
    port = data_platform.instance_port("redis-1")
    assert port is not None
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=0.3)
    spec = FaultSpec(kind="pause", instance="redis-1")
    kind, data = _fault(data_platform, spec)
    kind.apply(spec, data)  # type: ignore[attr-defined]
    try:
        assert kind.took_effect(spec, data)  # type: ignore[attr-defined]
        with pytest.raises(redis.RedisError):
            client.ping()
    finally:
        kind.remove(data)  # type: ignore[attr-defined]
    assert client.ping()


def test_kill_and_restart_shard(data_platform: LocalPlatform) -> None:
    """A killed shard is gone; removal starts it again on its port with its data."""
    spec = FaultSpec(kind="kill", instance="postgres-shard2-1")
    kind, data = _fault(data_platform, spec)
    journal = Journal(data_platform.state_dir / "journal.jsonl")
    journal.record_apply("test", "test/kill", data)  # type: ignore[arg-type]
    kind.apply(spec, data)  # type: ignore[attr-defined]
    assert kind.took_effect(spec, data)  # type: ignore[attr-defined]
    assert journal.remove("test", "test/kill", data, data_platform) is None  # type: ignore[arg-type]
    assert data_platform.sql("postgres-shard2", "SELECT count(*) FROM orders") == [(ROWS,)]
    healthy = {i.name: i.healthy for i in data_platform.status().instances}
    assert healthy["postgres-shard2-1"] is True


def test_sql_load_runs_until_removed(data_platform: LocalPlatform) -> None:
    """SQL load runs its statement while the fault is on and stops on removal."""
    spec = FaultSpec(kind="sql_load", instance="postgres-primary-1",
                     statement="INSERT INTO orders (customer_id, tenant_id, amount_cents, note) "
                               "VALUES (1, 1, 1, 'load')", attributes={"rate": 50})  # fmt: skip
    kind, data = _fault(data_platform, spec)
    kind.apply(spec, data)  # type: ignore[attr-defined]
    try:
        assert kind.took_effect(spec, data)  # type: ignore[attr-defined]
        time.sleep(0.5)
    finally:
        kind.remove(data)  # type: ignore[attr-defined]
    count = data_platform.sql("postgres-primary", "SELECT count(*) FROM orders WHERE note = 'load'")
    time.sleep(0.3)
    later = data_platform.sql("postgres-primary", "SELECT count(*) FROM orders WHERE note = 'load'")
    assert count == later
    assert int(str(count[0][0])) > 5


def test_data_root_outside_unreachable_state(data_platform: LocalPlatform) -> None:
    """A state folder the postgres user cannot reach keeps PostgreSQL data under /var/tmp."""
    root = data_platform._pg_root()
    assert root.exists()
    assert Path("/var/tmp") in root.parents or root.parent == data_platform.state_dir
