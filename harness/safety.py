"""Blast-radius checks shared by every platform: which hosts and clusters may be touched."""

from __future__ import annotations

from harness import net
from harness.errors import InvalidInput

KIND_CONTEXT_PREFIX = "kind-"


def allow_targets(hosts: list[str]) -> None:
    """Allow traffic to these extra hosts besides loopback, for this process."""
    for host in hosts:
        if not host or any(c in host for c in "/ @?#"):
            raise InvalidInput(f"--allow-target: invalid value {host!r}; give a host name or IP")
    net.ALLOWED_HOSTS.update(hosts)


def check_kube_context(context: str, allowed: list[str]) -> None:
    """Refuse a Kubernetes context unless it is a kind cluster or explicitly allowed."""
    if context.startswith(KIND_CONTEXT_PREFIX) or context in allowed:
        return
    raise InvalidInput(
        f"kubernetes context {context!r} is not a kind cluster (kind-*); pass "
        f"--allow-context {context} to act on it"
    )
