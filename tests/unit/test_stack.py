"""The stack file: which services a target runs, and a requirement that names no service."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import InvalidInput
from harness.stack import load_stack


@pytest.mark.parametrize(
    ("requested", "present", "absent"),
    [
        ([], {"api", "edge", "payments", "prometheus"}, {"redis", "worker", "exporter"}),
        (["worker"], {"worker", "redis", "exporter"}, {"billing"}),
        (["billing"], {"billing", "redis"}, {"stock", "worker"}),
        (["postgres-replica"], {"postgres-replica", "postgres-primary", "exporter"}, {"redis"}),
        (["blobs"], {"blobs"}, {"redis", "exporter"}),
    ],
)
def test_running_services(requested: list[str], present: set[str], absent: set[str]) -> None:
    """Requested optional services start with what they require, and nothing else extra."""
    running = set(load_stack().running_services(requested))
    assert present <= running
    assert not absent & running


def test_unknown_requirement(tmp_path: Path) -> None:
    """A service that requires a service the stack lacks is invalid input."""
    path = tmp_path / "stack.yaml"
    path.write_text(
        "services:\n  api:\n    kind: asgi\n    app: a:b\n    requires: [queue]\nlinks: {}\n"
    )
    with pytest.raises(InvalidInput, match="requires unknown service 'queue'"):
        load_stack(path)
