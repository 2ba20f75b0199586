"""Fault kinds, registered by name: one module per kind, one line here per kind."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from harness.faults.base import FaultContext, FaultKind, FaultSpec, JournalData
from harness.faults.toxic import ToxicFault


@runtime_checkable
class Removable(Protocol):
    """A fault kind that can be removed from its journal data alone."""

    def remove(self, data: JournalData) -> None:
        """Remove the fault."""
        ...


FAULT_KINDS: dict[str, FaultKind] = {
    ToxicFault.name: ToxicFault(),
}

__all__ = ["FAULT_KINDS", "FaultContext", "FaultKind", "FaultSpec", "JournalData", "Removable"]
