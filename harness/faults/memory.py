"""The memory limits of an arm as a journaled action, so a later process removes their cgroups.

A memory limit is a setting of a service (`memory_limit_mb`), applied when the arm starts its
instances; it is not a fault of the fault window. The runner journals it before the target
starts and records it removed once the target is down. After a killed run, `reconcile` removes
the cgroups of the state folder that no process uses any more; the ones still in use go when
the leftover instances are stopped.
"""

from __future__ import annotations

from pathlib import Path

from harness.faults.base import JournalData
from harness.platforms import cgroups
from harness.platforms.base import Platform


class MemoryLimitAction:
    """Journal data and removal of an arm's memory cgroups."""

    name = "memory_limit"

    @staticmethod
    def data(prefix: str, limits: dict[str, float]) -> JournalData:
        """Return the journal data for the cgroups named `harness-<prefix>*`."""
        described = ", ".join(f"{service} {mb:g} MB" for service, mb in sorted(limits.items()))
        return {"kind": MemoryLimitAction.name, "cgroups": prefix, "limits": described}

    def remove(self, data: JournalData, platform: Platform | None = None) -> None:
        """Remove every cgroup of the prefix that no process uses any more."""
        for path in cgroups.find(str(data["cgroups"])):
            cgroups.remove(Path(path))

    def holder_gone(self, data: JournalData) -> bool:
        """Return True: a cgroup still in use goes with its instances, stopped as leftovers."""
        return True
