"""Toxic attribute and field values: zero, negative, huge and wrong types."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import requests

from .conftest import TcpServer, create_proxy

INT64_MAX = 2**63 - 1


@dataclass(frozen=True)
class AttributeCase:
    """A toxic body and the status the API must return for it."""

    toxic_type: str
    attributes: object
    status: int
    error: str = ""
    toxicity: object = 1.0


ATTRIBUTE_CASES = [
    AttributeCase("latency", {"latency": 0}, 200),
    AttributeCase("latency", {"latency": -5, "jitter": -5}, 200),
    AttributeCase("latency", {"latency": INT64_MAX, "jitter": INT64_MAX}, 200),
    AttributeCase("latency", {"latency": INT64_MAX + 1}, 400, "int64"),
    AttributeCase("latency", {"latency": "10"}, 400, "latency"),
    AttributeCase("latency", {"latency": 1.5}, 400, "integer"),
    AttributeCase("latency", {"latency": True}, 400, "integer"),
    AttributeCase("latency", {"latency": None}, 200),
    AttributeCase("latency", "fast", 400, "attributes"),
    AttributeCase("latency", [1], 400, "attributes"),
    AttributeCase("bandwidth", {"rate": 0}, 200),
    AttributeCase("bandwidth", {"rate": -1}, 400, "rate"),
    AttributeCase("bandwidth", {"rate": INT64_MAX}, 200),
    AttributeCase("bandwidth", {"rate": "x"}, 400, "rate"),
    AttributeCase("slicer", {"average_size": 0}, 400, "average_size"),
    AttributeCase("slicer", {"average_size": -1}, 400, "average_size"),
    AttributeCase("slicer", {}, 400, "average_size"),
    AttributeCase("slicer", {"average_size": 4, "size_variation": 8}, 200),
    AttributeCase("slicer", {"average_size": 4, "size_variation": -1, "delay": -1}, 200),
    AttributeCase("slicer", {"average_size": INT64_MAX, "size_variation": INT64_MAX}, 200),
    AttributeCase("limit_data", {"bytes": 0}, 200),
    AttributeCase("limit_data", {"bytes": -1}, 200),
    AttributeCase("timeout", {"timeout": 0}, 200),
    AttributeCase("timeout", {"timeout": -1}, 200),
    AttributeCase("timeout", {"timeout": INT64_MAX}, 200),
    AttributeCase("reset_peer", {"timeout": -1}, 200),
    AttributeCase("slow_close", {"delay": -1}, 200),
    AttributeCase("slow_close", {"delay": INT64_MAX}, 200),
    AttributeCase("noop", {"anything": "goes"}, 200),
    AttributeCase("noop", None, 200, toxicity=0),
    AttributeCase("noop", None, 200, toxicity=None),
    AttributeCase("noop", None, 400, "toxicity", toxicity="high"),
    AttributeCase("noop", None, 400, "toxicity", toxicity=False),
]


@pytest.mark.parametrize(
    "case", ATTRIBUTE_CASES, ids=lambda c: f"{c.toxic_type}-{c.attributes}-{c.toxicity}"
)
def test_toxic_attribute(api: str, echo_server: TcpServer, case: AttributeCase) -> None:
    """Each attribute value is accepted or rejected with a message naming it."""
    create_proxy(api, "db", echo_server.address)
    body: dict[str, object] = {"type": case.toxic_type, "toxicity": case.toxicity}
    if case.attributes is not None:
        body["attributes"] = case.attributes
    response = requests.post(f"{api}/proxies/db/toxics", json=body, timeout=5)
    assert response.status_code == case.status, response.text
    if case.status == 400:
        assert case.error in response.json()["error"]
        assert requests.get(f"{api}/proxies/db/toxics", timeout=5).json() == []


def test_bad_update_keeps_toxic(api: str, echo_server: TcpServer) -> None:
    """An update with an invalid value returns 400 and leaves the toxic unchanged."""
    create_proxy(api, "db", echo_server.address)
    requests.post(
        f"{api}/proxies/db/toxics",
        json={"name": "bw", "type": "bandwidth", "attributes": {"rate": 10}},
        timeout=5,
    )
    response = requests.patch(
        f"{api}/proxies/db/toxics/bw", json={"attributes": {"rate": -1}}, timeout=5
    )
    assert response.status_code == 400
    assert "rate" in response.json()["error"]
    toxic = requests.get(f"{api}/proxies/db/toxics/bw", timeout=5).json()
    assert toxic["attributes"] == {"rate": 10}
