"""Fault kinds, registered by name: one module per kind, one line here per kind."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from harness.faults.base import FaultContext, FaultKind, FaultSpec, JournalData
from harness.faults.instance import KillFault, PauseFault
from harness.faults.load_spike import LoadSpikeFault
from harness.faults.memory import MemoryLimitAction
from harness.faults.replica_lag import ReplicaLagFault
from harness.faults.scale import ScaleFault
from harness.faults.sql_load import SqlLoadFault
from harness.faults.toxic import ToxicFault
from harness.platforms.base import Platform


@runtime_checkable
class Removable(Protocol):
    """A fault kind that can be removed from its journal data alone."""

    def remove(self, data: JournalData, platform: Platform | None = None) -> None:
        """Remove the fault, through the platform when one is given."""
        ...


FAULT_KINDS: dict[str, FaultKind] = {
    ToxicFault.name: ToxicFault(),
    PauseFault.name: PauseFault(),
    KillFault.name: KillFault(),
    ReplicaLagFault.name: ReplicaLagFault(),
    SqlLoadFault.name: SqlLoadFault(),
    LoadSpikeFault.name: LoadSpikeFault(),
    ScaleFault.name: ScaleFault(),
}

# Actions the runner journals besides faults; an experiment file cannot name them.
ACTION_KINDS: dict[str, Removable] = {MemoryLimitAction.name: MemoryLimitAction()}

__all__ = [
    "ACTION_KINDS",
    "FAULT_KINDS",
    "FaultContext",
    "FaultKind",
    "FaultSpec",
    "JournalData",
    "Removable",
]
