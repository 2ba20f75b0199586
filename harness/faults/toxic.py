"""A toxic on a link, through the Toxiproxy HTTP API of the fault proxy."""

from __future__ import annotations

import time
from urllib.parse import quote, urlsplit

import requests
import structlog
from prometheus_client.parser import text_string_to_metric_families

from harness import net
from harness.errors import FaultError, InvalidInput
from harness.faults.base import FaultContext, FaultSpec, JournalData
from harness.net import is_loopback_host
from harness.platforms.base import Platform
from harness.platforms.local import proxy_name
from harness.platforms.processes import port_listening, process_start_time
from harness.stack import Link, Stack

log = structlog.get_logger(__name__)

# Attributes each toxic type takes, with the largest value accepted.
TOXIC_ATTRIBUTES: dict[str, dict[str, float]] = {
    "latency": {"latency": 600_000, "jitter": 600_000},
    "bandwidth": {"rate": 10_000_000},
    "slow_close": {"delay": 600_000},
    "timeout": {"timeout": 600_000},
    "reset_peer": {"timeout": 600_000},
    "slicer": {"average_size": 1_000_000, "size_variation": 1_000_000, "delay": 10_000_000},
    "limit_data": {"bytes": 2**40},
    "noop": {},
}


EFFECT_TIMEOUT_S = 3.0


def _activations(toxiproxy: str, proxy: str, toxic: str) -> float | None:
    """Return the toxic's activation count from the proxy's metrics, or None without them."""
    try:
        response = net.request("GET", f"{toxiproxy}/metrics", timeout=2.0)
    except requests.RequestException:
        return None
    if response.status_code != 200:
        return None
    for family in text_string_to_metric_families(response.text):
        if family.name != "toxiproxy_toxic_activations":
            continue
        for sample in family.samples:
            labels = sample.labels
            if labels.get("proxy") == proxy and labels.get("toxic") == toxic:
                return float(sample.value)
        return 0.0
    return None


class ToxicFault:
    """Adds a toxic to a link's proxy and deletes it again."""

    name = "toxic"

    def check(self, spec: FaultSpec, stack: Stack, where: str) -> None:
        """Raise InvalidInput unless the link exists and the toxic and attributes are valid."""
        if spec.link is None:
            raise InvalidInput(f"{where}.link: missing; a toxic needs a link such as api->payments")
        if spec.link not in stack.links:
            known = ", ".join(stack.links) or "none"
            raise InvalidInput(f"{where}.link: unknown link {spec.link!r}; known links: {known}")
        if spec.toxic not in TOXIC_ATTRIBUTES:
            known = ", ".join(TOXIC_ATTRIBUTES)
            raise InvalidInput(f"{where}.toxic: unknown toxic {spec.toxic!r}; known: {known}")
        allowed = TOXIC_ATTRIBUTES[spec.toxic]
        for key, value in spec.attributes.items():
            if key not in allowed:
                known = ", ".join(allowed) or "none"
                raise InvalidInput(
                    f"{where}.attributes.{key}: unknown attribute of {spec.toxic}; known: {known}"
                )
            if isinstance(value, bool) or not 0 <= value <= allowed[key]:
                raise InvalidInput(
                    f"{where}.attributes.{key}: invalid value {value!r}; "
                    f"expected a number from 0 to {allowed[key]:.0f}"
                )
        if spec.toxic == "slicer" and spec.attributes.get("average_size", 0) <= 0:
            raise InvalidInput(f"{where}.attributes.average_size: must be > 0 for slicer")
        if spec.instance is not None:
            raise InvalidInput(f"{where}.instance: a toxic acts on a link, not an instance")

    def services(self, spec: FaultSpec) -> list[str]:
        """Return both ends of the link."""
        return list(Link.ends(spec.link or ""))

    def describe(self, spec: FaultSpec) -> str:
        """Return the link."""
        return spec.link or ""

    def prepare(self, spec: FaultSpec, context: FaultContext) -> JournalData:
        """Name the toxic and record where it will live."""
        assert spec.link is not None and spec.toxic is not None
        holder = context.platform.toxiproxy_process()
        return {
            "holder_pid": holder[0] if holder else None,
            "holder_start": holder[1] if holder else None,
            "kind": self.name,
            "toxiproxy": context.platform.toxiproxy(),
            "proxy": proxy_name(spec.link),
            "toxic": f"harness_{context.index}_{spec.toxic}_{spec.stream}",
            "link": spec.link,
        }

    def apply(self, spec: FaultSpec, data: JournalData) -> None:
        """Add the toxic through the API."""
        body = {
            "name": data["toxic"],
            "type": spec.toxic,
            "stream": spec.stream,
            "toxicity": spec.toxicity,
            "attributes": spec.attributes,
        }
        url = f"{data['toxiproxy']}/proxies/{quote(str(data['proxy']))}/toxics"
        try:
            response = net.request("POST", url, json=body)
        except requests.RequestException as exc:
            raise FaultError(f"link {data['link']}: fault proxy API unreachable: {exc}") from None
        if response.status_code != 200:
            raise FaultError(
                f"link {data['link']}: fault proxy rejected toxic {spec.toxic}: "
                f"{response.status_code} {response.text.strip()}"
            )

    def took_effect(self, spec: FaultSpec, data: JournalData) -> bool:
        """Check that the proxy lists the toxic and, where it exports metrics, that it acts.

        Our fault proxy counts a toxic's activations on connections in `/metrics`; a toxic that
        no connection picks up within EFFECT_TIMEOUT_S acts on no traffic. The Go server exports
        no such metric by default, so there the listing alone decides.
        """
        url = f"{data['toxiproxy']}/proxies/{quote(str(data['proxy']))}/toxics"
        try:
            response = net.request("GET", url)
        except requests.RequestException:
            return False
        if response.status_code != 200:
            return False
        if not any(t.get("name") == data["toxic"] for t in response.json()):
            return False
        deadline = time.monotonic() + EFFECT_TIMEOUT_S
        while True:
            activations = _activations(str(data["toxiproxy"]), str(data["proxy"]),
                                       str(data["toxic"]))  # fmt: skip
            if activations is None or activations > 0:
                return True
            if time.monotonic() >= deadline:
                log.warning("fault.no_effect", proxy=data["proxy"], toxic=data["toxic"])
                return False
            time.sleep(0.05)

    def holder_gone(self, data: JournalData) -> bool:
        """Tell whether the fault proxy process that held the toxic has stopped."""
        pid, start = data.get("holder_pid"), data.get("holder_start")
        if isinstance(pid, int) and isinstance(start, int):
            return process_start_time(pid) != start
        # Without a recorded process, a loopback API port where nothing listens has no toxic.
        url = urlsplit(str(data.get("toxiproxy", "")))
        host, port = url.hostname or "", url.port
        return is_loopback_host(host) and port is not None and not port_listening(port)

    def remove(self, data: JournalData, platform: Platform | None = None) -> None:
        """Delete the toxic; a toxic or proxy already gone counts as removed."""
        proxy = quote(str(data["proxy"]))
        url = f"{data['toxiproxy']}/proxies/{proxy}/toxics/{quote(str(data['toxic']))}"
        response = net.request("DELETE", url)
        if response.status_code not in (204, 404):
            raise RuntimeError(f"DELETE {url}: {response.status_code} {response.text.strip()}")
