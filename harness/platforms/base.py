"""The Platform protocol: what every platform does, so an experiment runs on any of them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from harness.stack import SettingValue

Variant = dict[str, dict[str, SettingValue]]


@dataclass
class InstanceStatus:
    """One running copy of a service, as the platform reports it."""

    service: str
    name: str
    pid: int | None
    port: int | None
    healthy: bool
    detail: str = ""


@dataclass
class StackStatus:
    """Everything the platform has running for the target."""

    instances: list[InstanceStatus] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """Tell whether nothing is running."""
        return not self.instances


class Platform(Protocol):
    """Operations every platform implements."""

    name: str

    def up(self, variant: Variant, scale: dict[str, int] | None = None) -> None:
        """Start the target with the given service settings and wait until it is healthy."""
        ...

    def down(self) -> None:
        """Stop everything this platform started for the target."""
        ...

    def status(self) -> StackStatus:
        """Return the running services and instances with their health."""
        ...

    def instances(self, service: str) -> list[str]:
        """Return the instance names of a service."""
        ...

    def kill(self, instance: str) -> None:
        """Kill one instance at once."""
        ...

    def pause(self, instance: str) -> None:
        """Freeze one instance so it neither runs nor responds."""
        ...

    def resume(self, instance: str) -> None:
        """Thaw an instance frozen by pause."""
        ...

    def service_figures(self, service: str) -> dict[str, float]:
        """Return `instances`, `rss_mb`, `memory_peak_mb` and `oom_kills` of a service."""
        ...

    def memory_cgroup_prefix(self) -> str:
        """Return the name prefix of the memory cgroups this platform creates."""
        ...

    def scale(self, service: str, count: int) -> None:
        """Run the given number of instances of a service."""
        ...

    def deploy(self, service: str, version: str) -> None:
        """Replace the instances of a service with another version."""
        ...

    def audit(self) -> list[str]:
        """Return what the last down left behind; empty when nothing is."""
        ...

    def toxics_left(self) -> list[str]:
        """Return every toxic still on a proxy of the fault proxy."""
        ...

    def endpoint(self, service: str) -> str:
        """Return the base URL of a service, reachable from the load generator."""
        ...

    def instance_process(self, instance: str) -> tuple[int, int] | None:
        """Return the pid and start time of an instance's process, if it runs."""
        ...

    def instance_port(self, instance: str) -> int | None:
        """Return the port an instance listens on, if it runs."""
        ...

    def restart(self, instance: str) -> None:
        """Start a stopped or killed instance again with its port, settings and data."""
        ...

    def toxiproxy_process(self) -> tuple[int, int] | None:
        """Return the pid and start time of the fault proxy process, if this platform runs it."""
        ...

    def toxiproxy(self) -> str:
        """Return the base URL of the fault proxy API."""
        ...

    def prometheus(self) -> str:
        """Return the base URL of the Prometheus API."""
        ...

    def sql(self, service: str, statement: str) -> list[tuple[object, ...]]:
        """Run one SQL statement on a database service and return its rows."""
        ...
