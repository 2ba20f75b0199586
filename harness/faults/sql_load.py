"""SQL load: one statement run over and over on a database instance while the fault is on,
such as inserts that run beside the experiment's reads. Bounded in time and count."""

from __future__ import annotations

import threading
import time

import psycopg
import structlog

from harness.errors import FaultError, InvalidInput
from harness.faults.base import FaultContext, FaultSpec, JournalData, OnInstance
from harness.platforms import postgres
from harness.platforms.base import Platform
from harness.stack import Stack

log = structlog.get_logger(__name__)

# Statements are never run for longer than this, nor more often than MAX_STATEMENTS times.
MAX_SECONDS = 3600.0
MAX_STATEMENTS = 1_000_000

_running: dict[str, tuple[threading.Event, threading.Thread, list[int]]] = {}


def _loop(port: int, statement: str, rate: float, stop: threading.Event, done: list[int]) -> None:
    deadline = time.monotonic() + MAX_SECONDS
    interval = 1.0 / rate if rate > 0 else 0.0
    try:
        with psycopg.connect(postgres.dsn(port), autocommit=True) as conn:
            while not stop.is_set() and time.monotonic() < deadline and done[0] < MAX_STATEMENTS:
                started = time.monotonic()
                try:
                    conn.execute(statement.encode())
                except psycopg.Error as exc:
                    log.warning("sql_load.failed", error=str(exc))
                    stop.wait(0.1)
                    continue
                done[0] += 1
                if interval:
                    stop.wait(max(interval - (time.monotonic() - started), 0.0))
    except psycopg.Error as exc:
        log.warning("sql_load.connect_failed", error=str(exc))


class SqlLoadFault(OnInstance):
    """Runs `statement` on a PostgreSQL instance at `attributes.rate` per second (0: at once)."""

    name = "sql_load"

    def check(self, spec: FaultSpec, stack: Stack, where: str) -> None:
        """Raise InvalidInput unless a PostgreSQL instance and a statement are given."""
        service = (spec.instance or "").rpartition("-")[0]
        if spec.instance is None or stack.services.get(service) is None:
            raise InvalidInput(f"{where}.instance: missing or unknown; give a database "
                               "instance such as postgres-primary-1")  # fmt: skip
        if stack.services[service].kind != "postgres":
            raise InvalidInput(f"{where}.instance: {spec.instance!r} is not a PostgreSQL instance")
        if not spec.statement:
            raise InvalidInput(f"{where}.statement: missing; sql_load needs a SQL statement")
        for key, value in spec.attributes.items():
            if key != "rate":
                raise InvalidInput(f"{where}.attributes.{key}: unknown attribute; known: rate")
            if not 0 <= value <= 10_000:
                raise InvalidInput(f"{where}.attributes.rate: invalid value {value!r}; "
                                   "expected 0 to 10000 statements per second")  # fmt: skip

    def prepare(self, spec: FaultSpec, context: FaultContext) -> JournalData:
        """Record the instance's port and a key for the loop of this process."""
        assert spec.instance is not None
        port = context.platform.instance_port(spec.instance)
        if port is None:
            raise FaultError(f"instance {spec.instance} is not running")
        return {"kind": self.name, "instance": spec.instance, "port": port,
                "key": f"{context.run_id}/{context.index}/{time.monotonic()}"}  # fmt: skip

    def apply(self, spec: FaultSpec, data: JournalData) -> None:
        """Start the loop in a thread of the harness."""
        assert spec.statement is not None
        stop = threading.Event()
        done = [0]
        rate = float(spec.attributes.get("rate", 0))
        thread = threading.Thread(
            target=_loop, args=(int(str(data["port"])), spec.statement, rate, stop, done),
            daemon=True, name="sql_load",
        )  # fmt: skip
        _running[str(data["key"])] = (stop, thread, done)
        thread.start()

    def took_effect(self, spec: FaultSpec, data: JournalData) -> bool:
        """Check that a statement completed within 5 s."""
        entry = _running.get(str(data["key"]))
        deadline = time.monotonic() + 5.0
        while entry is not None and time.monotonic() < deadline:
            if entry[2][0] > 0:
                return True
            time.sleep(0.02)
        return False

    def holder_gone(self, data: JournalData) -> bool:
        """Tell whether the loop is gone: it lives in the harness process that started it."""
        return str(data["key"]) not in _running

    def remove(self, data: JournalData, platform: Platform | None = None) -> None:
        """Stop the loop; one of another process died with that process."""
        entry = _running.pop(str(data["key"]), None)
        if entry is None:
            return
        stop, thread, done = entry
        stop.set()
        thread.join(timeout=30)
        log.info("sql_load.stopped", statements=done[0], instance=data["instance"])
