"""Faults on one instance: pause (SIGSTOP, undone by SIGCONT) and kill (SIGKILL, undone by
starting the instance again on the same port and data)."""

from __future__ import annotations

import signal
import time

from harness.errors import FaultError, InvalidInput
from harness.faults.base import FaultContext, FaultSpec, JournalData, OnInstance
from harness.platforms.base import Platform
from harness.platforms.processes import (
    ProcessRecord,
    process_start_time,
    signal_group_ours,
    signal_ours,
)
from harness.stack import Stack


def _instance_service(stack: Stack, instance: str) -> str | None:
    service, _, number = instance.rpartition("-")
    known = service in stack.services and number.isdigit()
    if known and 1 <= int(number) <= stack.services[service].instances:
        return service
    return None


class _InstanceFault(OnInstance):
    name = ""

    def check(self, spec: FaultSpec, stack: Stack, where: str) -> None:
        """Raise InvalidInput unless the spec names one instance of the stack."""
        if spec.instance is None:
            raise InvalidInput(f"{where}.instance: missing; {self.name} needs an instance "
                               "such as api-1")  # fmt: skip
        if _instance_service(stack, spec.instance) is None:
            raise InvalidInput(f"{where}.instance: unknown instance {spec.instance!r}; "
                               "use <service>-<n> such as api-1 or redis-1")  # fmt: skip
        if spec.link is not None or spec.toxic is not None or spec.attributes:
            raise InvalidInput(f"{where}: {self.name} takes only an instance")

    def prepare(self, spec: FaultSpec, context: FaultContext) -> JournalData:
        """Record the instance's process, so a later process can undo the fault."""
        assert spec.instance is not None
        info = context.platform.instance_process(spec.instance)
        if info is None:
            raise FaultError(f"instance {spec.instance} is not running")
        return {"kind": self.name, "instance": spec.instance, "pid": info[0],
                "start_time": info[1]}  # fmt: skip

    @staticmethod
    def _record(data: JournalData) -> ProcessRecord:
        return ProcessRecord("", str(data["instance"]), int(str(data["pid"])),
                             int(str(data["start_time"])), None, "")  # fmt: skip

    def holder_gone(self, data: JournalData) -> bool:
        """Tell whether the instance's process has gone, taking the fault with it."""
        return process_start_time(int(str(data["pid"]))) != int(str(data["start_time"]))


class PauseFault(_InstanceFault):
    """Freezes an instance: it keeps its sockets but neither runs nor responds."""

    name = "pause"

    def apply(self, spec: FaultSpec, data: JournalData) -> None:
        """Send SIGSTOP."""
        if not signal_ours(self._record(data), signal.SIGSTOP):
            raise FaultError(f"instance {data['instance']} is not running")

    def took_effect(self, spec: FaultSpec, data: JournalData) -> bool:
        """Check that the process is stopped (state T); the signal lands asynchronously."""
        for _ in range(100):
            try:
                with open(f"/proc/{data['pid']}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                return False
            if fields[0] in ("T", "t"):
                return True
            time.sleep(0.01)
        return False

    def remove(self, data: JournalData, platform: Platform | None = None) -> None:
        """Send SIGCONT; a process already gone counts as removed."""
        signal_ours(self._record(data), signal.SIGCONT)


class KillFault(_InstanceFault):
    """Kills an instance with SIGKILL; removal starts it again on the same port and data."""

    name = "kill"

    def apply(self, spec: FaultSpec, data: JournalData) -> None:
        """Send SIGKILL to the instance's process group, so its workers die with it."""
        if not signal_group_ours(self._record(data), signal.SIGKILL):
            raise FaultError(f"instance {data['instance']} is not running")

    def took_effect(self, spec: FaultSpec, data: JournalData) -> bool:
        """Check that the process is gone."""
        for _ in range(100):
            if self.holder_gone(data):
                return True
            time.sleep(0.01)
        return False

    def remove(self, data: JournalData, platform: Platform | None = None) -> None:
        """Start the instance again; without a platform (a later reconcile) nothing is left."""
        if platform is not None:
            platform.restart(str(data["instance"]))
