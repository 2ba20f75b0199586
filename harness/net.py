"""HTTP to the target, limited to loopback so no request leaves this machine."""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

import requests

from harness.errors import InvalidInput

# Hosts besides loopback that the user allowed with --allow-target.
ALLOWED_HOSTS: set[str] = set()

_session = requests.Session()
# Ignore proxy variables of the environment: every request goes straight to loopback.
_session.trust_env = False


def is_loopback_host(host: str) -> bool:
    """Tell whether a host name or address is on the loopback interface."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_loopback(url: str) -> None:
    """Raise InvalidInput unless the URL's host is loopback or explicitly allowed."""
    host = urlsplit(url).hostname or ""
    if not is_loopback_host(host) and host not in ALLOWED_HOSTS:
        raise InvalidInput(
            f"refusing to send traffic to {url!r}: host {host!r} is not loopback; "
            "pass --allow-target HOST to allow it"
        )


def request(method: str, url: str, **kwargs: Any) -> requests.Response:
    """Send one HTTP request to a loopback URL."""
    check_loopback(url)
    kwargs.setdefault("timeout", 5.0)
    return _session.request(method, url, **kwargs)
