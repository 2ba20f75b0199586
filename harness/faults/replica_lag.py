"""Replica lag: pause WAL replay on a PostgreSQL replica, resume it on removal."""

from __future__ import annotations

import psycopg

from harness.errors import FaultError, InvalidInput
from harness.faults.base import FaultContext, FaultSpec, JournalData, OnInstance
from harness.platforms import postgres
from harness.platforms.base import Platform
from harness.platforms.processes import process_start_time
from harness.stack import Stack


class ReplicaLagFault(OnInstance):
    """Pauses replay with pg_wal_replay_pause(): the replica serves ever older data."""

    name = "replica_lag"

    def check(self, spec: FaultSpec, stack: Stack, where: str) -> None:
        """Raise InvalidInput unless the instance is a replica of the stack."""
        service = (spec.instance or "").rpartition("-")[0]
        if spec.instance is None or service not in stack.services:
            raise InvalidInput(f"{where}.instance: missing or unknown; give a replica instance "
                               "such as postgres-replica-1")  # fmt: skip
        if stack.services[service].role != "replica":
            raise InvalidInput(f"{where}.instance: {spec.instance!r} is not a replica")

    def prepare(self, spec: FaultSpec, context: FaultContext) -> JournalData:
        """Record the replica's port and process."""
        assert spec.instance is not None
        info = context.platform.instance_process(spec.instance)
        port = context.platform.instance_port(spec.instance)
        if info is None or port is None:
            raise FaultError(f"instance {spec.instance} is not running")
        return {"kind": self.name, "instance": spec.instance, "port": port, "pid": info[0],
                "start_time": info[1]}  # fmt: skip

    def apply(self, spec: FaultSpec, data: JournalData) -> None:
        """Pause WAL replay."""
        try:
            postgres.execute(int(str(data["port"])), "SELECT pg_wal_replay_pause()")
        except psycopg.Error as exc:
            raise FaultError(f"replica {data['instance']}: pause failed: {exc}") from None

    def took_effect(self, spec: FaultSpec, data: JournalData) -> bool:
        """Check that replay is paused."""
        try:
            rows = postgres.execute(int(str(data["port"])), "SELECT pg_is_wal_replay_paused()")
        except psycopg.Error:
            return False
        return bool(rows and rows[0][0])

    def holder_gone(self, data: JournalData) -> bool:
        """Tell whether the replica process has stopped (a restarted replica replays again)."""
        return process_start_time(int(str(data["pid"]))) != int(str(data["start_time"]))

    def remove(self, data: JournalData, platform: Platform | None = None) -> None:
        """Resume WAL replay."""
        postgres.execute(int(str(data["port"])), "SELECT pg_wal_replay_resume()")
