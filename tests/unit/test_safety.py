"""Blast radius: loopback only unless allowed, kind contexts only unless allowed."""

from __future__ import annotations

import pytest

from harness import net
from harness.errors import InvalidInput
from harness.safety import allow_targets, check_kube_context


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/x",
        "http://127.0.0.53:1/",
        "http://localhost:9090",
        "http://[::1]:8474/version",
    ],
)
def test_loopback_urls_allowed(url: str) -> None:
    """Loopback addresses pass the check."""
    net.check_loopback(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1:80/",
        "http://192.168.1.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://example.com/",
        "http://0.0.0.0:80/",
        "http://127.0.0.1.example.com/",
    ],
)
def test_other_hosts_rejected(url: str) -> None:
    """Any address off loopback is rejected with a hint at --allow-target."""
    with pytest.raises(InvalidInput, match="--allow-target"):
        net.check_loopback(url)


def test_allow_target_adds_a_host() -> None:
    """An allowed host passes; the allowance is explicit per host."""
    try:
        allow_targets(["staging.internal"])
        net.check_loopback("http://staging.internal:8080/")
        with pytest.raises(InvalidInput):
            net.check_loopback("http://other.internal/")
    finally:
        net.ALLOWED_HOSTS.clear()


@pytest.mark.parametrize("host", ["", "a/b", "user@host", "two words"])
def test_allow_target_rejects_bad_values(host: str) -> None:
    """A value that is not a bare host name is invalid input."""
    with pytest.raises(InvalidInput, match="--allow-target"):
        allow_targets([host])


@pytest.mark.parametrize(
    ("context", "allowed", "ok"),
    [
        ("kind-harness", [], True),
        ("kind-", [], True),
        ("prod-eu-1", [], False),
        ("minikube", [], False),
        ("my-kind-cluster", [], False),
        ("prod-eu-1", ["prod-eu-1"], True),
        ("prod-eu-1", ["prod-eu-2"], False),
    ],
)
def test_kube_context_allow_list(context: str, allowed: list[str], ok: bool) -> None:
    """Only kind-* contexts, or ones named with --allow-context, may be acted on."""
    if ok:
        check_kube_context(context, allowed)
    else:
        with pytest.raises(InvalidInput, match="--allow-context"):
            check_kube_context(context, allowed)
