"""A small Prometheus exporter for the local PostgreSQL and Redis instances.

Debian's postgres and redis exporters are not packaged for this use, so the harness exports
the few figures its experiments need: replica lag, query and row counters, Redis hits and
misses. Run as `python -m harness.observe.exporter --port P --postgres NAME=PORT --redis
NAME=PORT`; every scrape queries the instances directly (not through links), on loopback.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Iterator

import psycopg
import redis
from prometheus_client import start_http_server
from prometheus_client.core import REGISTRY, GaugeMetricFamily
from prometheus_client.registry import Collector

LOOPBACK = "127.0.0.1"

POSTGRES_QUERY = """
SELECT pg_is_in_recovery(),
       CASE WHEN pg_is_in_recovery() THEN
         CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
              ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp()) END
       END,
       CASE WHEN pg_is_in_recovery() THEN
         pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()) END,
       CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused()::int END,
       (SELECT sum(xact_commit) FROM pg_stat_database),
       (SELECT sum(tup_returned) FROM pg_stat_database),
       (SELECT sum(tup_fetched) FROM pg_stat_database),
       (SELECT sum(tup_inserted) FROM pg_stat_database),
       (SELECT count(*) FROM pg_stat_activity WHERE state = 'active')
"""


class DataCollector(Collector):
    """Collects figures from each instance at scrape time."""

    def __init__(self, postgres: dict[str, int], redis_ports: dict[str, int]) -> None:
        self.postgres = postgres
        self.redis_ports = redis_ports

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Query every instance and yield the metric families."""
        names = {
            "up": ("harness_pg_up", "1 when the instance answered"),
            "lag": ("harness_pg_replica_lag_seconds", "Seconds the replica's replay is behind"),
            "lag_bytes": ("harness_pg_replica_lag_bytes", "WAL bytes received, not replayed"),
            "paused": ("harness_pg_replay_paused", "1 while WAL replay is paused"),
            "commits": ("harness_pg_xact_commit", "Committed transactions, all databases"),
            "returned": ("harness_pg_tup_returned", "Rows read by scans, all databases"),
            "fetched": ("harness_pg_tup_fetched", "Rows fetched by index scans"),
            "inserted": ("harness_pg_tup_inserted", "Rows inserted"),
            "active": ("harness_pg_active_queries", "Queries running now"),
        }
        families = {
            key: GaugeMetricFamily(name, text, labels=["server"])
            for key, (name, text) in names.items()
        }
        for name, port in self.postgres.items():
            try:
                with psycopg.connect(
                    f"host={LOOPBACK} port={port} user=postgres dbname=postgres "
                    "connect_timeout=1 options='-c statement_timeout=800'",
                    autocommit=True,
                ) as conn:
                    row = conn.execute(POSTGRES_QUERY).fetchone()
            except psycopg.Error:
                families["up"].add_metric([name], 0)
                continue
            assert row is not None
            families["up"].add_metric([name], 1)
            for key, value in zip(
                ("lag", "lag_bytes", "paused", "commits", "returned", "fetched", "inserted",
                 "active"), row[1:], strict=True,
            ):  # fmt: skip
                if value is not None:
                    families[key].add_metric([name], float(value))
        yield from families.values()

        hits = GaugeMetricFamily("harness_redis_keyspace_hits", "Redis reads that found the key",
                                 labels=["server"])  # fmt: skip
        misses = GaugeMetricFamily("harness_redis_keyspace_misses", "Redis reads that missed",
                                   labels=["server"])  # fmt: skip
        redis_up = GaugeMetricFamily("harness_redis_up", "1 when Redis answered", labels=["server"])
        for name, port in self.redis_ports.items():
            try:
                info = redis.Redis(host=LOOPBACK, port=port, socket_timeout=0.5).info("stats")
            except redis.RedisError:
                redis_up.add_metric([name], 0)
                continue
            redis_up.add_metric([name], 1)
            hits.add_metric([name], float(info.get("keyspace_hits", 0)))
            misses.add_metric([name], float(info.get("keyspace_misses", 0)))
        yield from (hits, misses, redis_up)


def _pairs(values: list[str], flag: str) -> dict[str, int]:
    result: dict[str, int] = {}
    for value in values:
        name, _, port = value.partition("=")
        if not name or not port.isdigit():
            raise SystemExit(f"{flag}: invalid value {value!r}; expected NAME=PORT")
        result[name] = int(port)
    return result


def main(argv: list[str] | None = None) -> int:
    """Serve the metrics until SIGTERM."""
    parser = argparse.ArgumentParser(prog="harness.observe.exporter")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--postgres", action="append", default=[], help="NAME=PORT")
    parser.add_argument("--redis", action="append", default=[], help="NAME=PORT")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    collector = DataCollector(_pairs(args.postgres, "--postgres"), _pairs(args.redis, "--redis"))
    REGISTRY.register(collector)
    start_http_server(args.port, addr=LOOPBACK)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
