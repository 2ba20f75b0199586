"""The target stack description (`targets/stack.yaml`) and the settings an arm may change."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from harness.errors import InvalidInput

DEFAULT_STACK = Path(__file__).resolve().parent.parent / "targets" / "stack.yaml"

SettingValue = float | bool | str


class Setting(BaseModel):
    """One setting of a service, passed to its instances as an environment variable."""

    model_config = ConfigDict(extra="forbid")

    env: str
    type: Literal["number", "bool", "choice"]
    default: SettingValue
    choices: list[str] | None = None
    # Bounds of a number setting; every number is finite and at least 0.
    min: float = 0.0
    max: float = 1_000_000.0

    def check(self, value: object) -> SettingValue:
        """Return the value if it fits this setting, else raise ValueError saying what fits."""
        if self.type == "bool":
            if isinstance(value, bool):
                return value
            raise ValueError("expected true or false")
        if self.type == "number":
            if isinstance(value, int | float) and not isinstance(value, bool):
                number = float(value)
                if math.isfinite(number) and self.min <= number <= self.max:
                    return number
            raise ValueError(f"expected a number from {self.min:g} to {self.max:g}")
        assert self.choices is not None
        if isinstance(value, str) and value in self.choices:
            return value
        raise ValueError(f"expected one of {', '.join(self.choices)}")

    def to_env(self, value: SettingValue) -> str:
        """Render a value the way the service reads it."""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return str(value)


class Service(BaseModel):
    """A named part of the target."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["asgi", "nginx", "prometheus", "redis", "postgres", "exporter"]
    app: str | None = None
    upstream: str | None = None
    role: Literal["primary", "replica"] | None = None
    primary: str | None = None
    instances: int = 1
    optional: bool = False
    # Services this one cannot run without, started with it (a worker needs its Redis).
    requires: list[str] = []
    settings: dict[str, Setting] = {}


class Link(BaseModel):
    """A network path from one service to another through a proxy of the fault proxy."""

    model_config = ConfigDict(extra="forbid")

    env: str | None = None
    scheme: Literal["http", "tcp", "redis", "postgres"] = "http"

    def address(self, host: str, port: int) -> str:
        """Return how a client of this link names its far end."""
        if self.scheme == "http":
            return f"http://{host}:{port}"
        if self.scheme == "redis":
            return f"redis://{host}:{port}/0"
        if self.scheme == "postgres":
            return f"postgresql://postgres@{host}:{port}/postgres"
        return f"{host}:{port}"

    @staticmethod
    def ends(name: str) -> tuple[str, str]:
        """Split `api->payments` into its client and server services."""
        client, _, server = name.partition("->")
        return client, server


class Stack(BaseModel):
    """The services and links of a target."""

    model_config = ConfigDict(extra="forbid")

    services: dict[str, Service]
    links: dict[str, Link]

    @model_validator(mode="after")
    def _known_requirements(self) -> Stack:
        for name, service in self.services.items():
            for needed in [*service.requires, *([service.primary] if service.primary else [])]:
                if needed not in self.services:
                    raise ValueError(f"service {name} requires unknown service {needed!r}")
        return self

    def scalable(self, name: str) -> bool:
        """Tell whether a service scales: an asgi service an edge balances over.

        Links lead to a service's first instance, so instances beyond it get traffic only
        through an edge's upstream list.
        """
        service = self.services.get(name)
        return (
            service is not None
            and service.kind == "asgi"
            and any(
                s.kind == "nginx" and (s.upstream or "api") == name for s in self.services.values()
            )
        )

    def running_services(self, requested: list[str]) -> list[str]:
        """Return the services a target runs: every required one plus the requested optional
        ones, with what they require, the primaries of requested replicas and the exporter for
        data services."""
        wanted = set(requested)
        pending = list(wanted)
        while pending:
            service = self.services[pending.pop()]
            needed = [*service.requires, *([service.primary] if service.primary else [])]
            for name in needed:
                if name not in wanted:
                    wanted.add(name)
                    pending.append(name)
        if any(self.services[name].kind in ("redis", "postgres") for name in wanted):
            wanted |= {n for n, s in self.services.items() if s.kind == "exporter"}
        return [n for n, s in self.services.items() if not s.optional or n in wanted]

    def resolve_settings(
        self, overrides: dict[str, dict[str, object]], where: str
    ) -> dict[str, dict[str, SettingValue]]:
        """Merge an arm's overrides into the defaults, raising InvalidInput on a bad entry."""
        resolved: dict[str, dict[str, SettingValue]] = {
            name: {key: s.default for key, s in svc.settings.items()}
            for name, svc in self.services.items()
        }
        for service_name, values in overrides.items():
            service = self.services.get(service_name)
            if service is None:
                known = ", ".join(self.services)
                raise InvalidInput(
                    f"{where}: unknown service {service_name!r}; known services: {known}"
                )
            for key, value in values.items():
                setting = service.settings.get(key)
                if setting is None:
                    known = ", ".join(service.settings) or "none"
                    raise InvalidInput(
                        f"{where}.{service_name}: unknown setting {key!r}; known settings: {known}"
                    )
                try:
                    resolved[service_name][key] = setting.check(value)
                except ValueError as exc:
                    raise InvalidInput(
                        f"{where}.{service_name}.{key}: invalid value {value!r}: {exc}"
                    ) from None
        return resolved


def load_stack(path: Path = DEFAULT_STACK) -> Stack:
    """Read and validate a stack file."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidInput(f"{path}: cannot read stack file: {exc}") from None
    try:
        return Stack.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise InvalidInput(f"{path}: field {field}: {first['msg']}") from None
