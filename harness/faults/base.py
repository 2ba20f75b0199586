"""The parts of every fault kind: a spec from the experiment file, and apply, verify, remove."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt

from harness.platforms.base import Platform
from harness.stack import Stack

# Strict: a YAML `true` is no number of milliseconds, users or bytes.
AttributeValue = StrictInt | StrictFloat


class FaultSpec(BaseModel):
    """A fault as an experiment file states it."""

    model_config = ConfigDict(extra="forbid")

    kind: str
    link: str | None = None
    toxic: str | None = None
    stream: Literal["upstream", "downstream"] = "downstream"
    toxicity: float = Field(default=1.0, ge=0.0, le=1.0)
    attributes: dict[str, AttributeValue] = {}
    instance: str | None = None
    statement: str | None = Field(default=None, max_length=10_000)
    user_class: str | None = None
    service: str | None = None


@dataclass
class FaultContext:
    """The platform and run a fault acts in."""

    platform: Platform
    run_id: str
    index: int
    arm: str = ""
    run_dir: Path = Path(".")
    state_dir: Path = Path(".")
    seed: int = 0


JournalData = dict[str, str | int | float | bool | None]


class FaultKind(Protocol):
    """A kind of fault, registered by name."""

    name: str

    def check(self, spec: FaultSpec, stack: Stack, where: str) -> None:
        """Raise InvalidInput if the spec does not fit this kind or the stack."""
        ...

    def services(self, spec: FaultSpec) -> list[str]:
        """Return the services the fault needs running."""
        ...

    def describe(self, spec: FaultSpec) -> str:
        """Return what the fault acts on, for logs and reports (a link or an instance)."""
        ...

    def prepare(self, spec: FaultSpec, context: FaultContext) -> JournalData:
        """Return everything needed to remove the fault later, before it is applied."""
        ...

    def apply(self, spec: FaultSpec, data: JournalData) -> None:
        """Apply the fault."""
        ...

    def took_effect(self, spec: FaultSpec, data: JournalData) -> bool:
        """Tell whether the applied fault shows."""
        ...


class OnInstance:
    """Helpers of fault kinds that act on one instance named `<service>-<n>`."""

    def services(self, spec: FaultSpec) -> list[str]:
        """Return the instance's service."""
        return [(spec.instance or "").rpartition("-")[0]]

    def describe(self, spec: FaultSpec) -> str:
        """Return the instance."""
        return spec.instance or ""


def holder_gone(data: JournalData) -> bool:
    """Tell whether the process that held a journaled fault has stopped, taking it along."""
    from harness.faults import ACTION_KINDS, FAULT_KINDS

    name = str(data.get("kind"))
    kind: object = FAULT_KINDS.get(name) or ACTION_KINDS.get(name)
    check = getattr(kind, "holder_gone", None)
    return bool(check(data)) if check is not None else False


def remove_journaled(data: JournalData, platform: Platform | None = None) -> None:
    """Remove a fault from its journal data, so a later process can roll it back too."""
    from harness.faults import ACTION_KINDS, FAULT_KINDS, Removable

    name = str(data.get("kind"))
    kind: object = FAULT_KINDS.get(name) or ACTION_KINDS.get(name)
    if not isinstance(kind, Removable):
        raise ValueError(f"journal entry of unknown fault kind {data.get('kind')!r}")
    kind.remove(data, platform)
