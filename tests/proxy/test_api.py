"""The HTTP API, row by row, over raw HTTP requests to a server child process."""

from __future__ import annotations

import socket
from dataclasses import dataclass

import pytest
import requests

from .conftest import LOOPBACK, TcpServer, add_toxic, connect, create_proxy, port_is_free


@dataclass(frozen=True)
class ApiCase:
    """One request against a server holding proxy `db` with toxic `lat` (upstream stream)."""

    method: str
    path: str
    body: object
    status: int
    error: str = ""
    raw: bytes | None = None
    user_agent: str = "harness-tests"


API_CASES = [
    ApiCase("GET", "/proxies", None, 200),
    ApiCase("POST", "/proxies", {"upstream": "127.0.0.1:1"}, 400, "missing required field: name"),
    ApiCase("POST", "/proxies", {"name": "x"}, 400, "missing required field: upstream"),
    ApiCase("POST", "/proxies", {"name": "", "upstream": "127.0.0.1:1"}, 400, "name"),
    ApiCase("POST", "/proxies", {"name": "x", "upstream": ""}, 400, "upstream"),
    ApiCase("POST", "/proxies", ["db"], 400, "bad request body"),
    ApiCase("POST", "/proxies", None, 400, "bad request body", raw=b"{not json"),
    ApiCase("POST", "/proxies", None, 400, "bad request body", raw=b""),
    ApiCase("POST", "/proxies", {"name": 5, "upstream": "127.0.0.1:1"}, 400, "name"),
    ApiCase("POST", "/proxies", {"name": "x", "upstream": "nowhere"}, 400, "upstream"),
    ApiCase("POST", "/proxies", {"name": "db", "upstream": "127.0.0.1:1"}, 409, "proxy already"),
    ApiCase("GET", "/proxies/db", None, 200),
    ApiCase("GET", "/proxies/missing", None, 404, "proxy not found"),
    ApiCase("PATCH", "/proxies/missing", {"enabled": False}, 404, "proxy not found"),
    ApiCase("POST", "/proxies/missing", {"enabled": False}, 404, "proxy not found"),
    ApiCase("DELETE", "/proxies/missing", None, 404, "proxy not found"),
    ApiCase("PATCH", "/proxies/db", {"enabled": "no"}, 400, "enabled"),
    ApiCase("GET", "/proxies/db/toxics", None, 200),
    ApiCase("GET", "/proxies/missing/toxics", None, 404, "proxy not found"),
    ApiCase("POST", "/proxies/missing/toxics", {"type": "noop"}, 404, "proxy not found"),
    ApiCase("POST", "/proxies/db/toxics", {"type": "noop", "stream": "sideways"}, 400, "stream"),
    ApiCase("POST", "/proxies/db/toxics", {"type": "nope"}, 400, "invalid toxic type"),
    ApiCase("POST", "/proxies/db/toxics", {}, 400, "invalid toxic type"),
    ApiCase("POST", "/proxies/db/toxics", {"type": "noop", "name": "lat"}, 409, "toxic already"),
    ApiCase(
        "POST",
        "/proxies/db/toxics",
        {"type": "noop", "name": "lat", "stream": "downstream"},
        409,
        "toxic already exists",
    ),
    ApiCase(
        "POST",
        "/proxies/db/toxics",
        {"type": "nope", "name": "lat", "stream": "sideways"},
        400,
        "stream",
    ),
    ApiCase("GET", "/proxies/db/toxics/lat", None, 200),
    ApiCase("GET", "/proxies/db/toxics/missing", None, 404, "toxic not found"),
    ApiCase("PATCH", "/proxies/db/toxics/missing", {"toxicity": 1}, 404, "toxic not found"),
    ApiCase("DELETE", "/proxies/db/toxics/missing", None, 404, "toxic not found"),
    ApiCase("GET", "/version", None, 200),
    ApiCase("GET", "/metrics", None, 200),
    ApiCase("GET", "/nope", None, 404),
    ApiCase("GET", "/proxies/db/toxics/lat/extra", None, 404),
    ApiCase("PUT", "/proxies", None, 405),
    ApiCase("GET", "/reset", None, 405),
    ApiCase("DELETE", "/version", None, 405),
    ApiCase("GET", "/populate", None, 405),
    ApiCase("GET", "/proxies", None, 403, "User agent not allowed", user_agent="Mozilla/5.0"),
]


@pytest.mark.parametrize("case", API_CASES, ids=lambda c: f"{c.method} {c.path} {c.status}")
def test_api_row(api: str, echo_server: TcpServer, case: ApiCase) -> None:
    """Each endpoint returns its status, error body and request id header."""
    create_proxy(api, "db", echo_server.address)
    add_toxic(api, "db", name="lat", type="latency", stream="upstream")

    kwargs: dict[str, object] = {"headers": {"User-Agent": case.user_agent}, "timeout": 5}
    if case.raw is not None:
        kwargs["data"] = case.raw
    elif case.body is not None:
        kwargs["json"] = case.body
    response = requests.request(case.method, api + case.path, **kwargs)  # type: ignore[arg-type]

    assert response.status_code == case.status, response.text
    assert response.headers.get("X-Toxiproxy-Request-Id")
    if case.status >= 400:
        body = response.json()
        assert body["status"] == case.status
        assert case.error in body["error"]


def test_request_ids_differ(api: str) -> None:
    """Every response carries its own request id."""
    ids = {
        requests.get(f"{api}/version", timeout=5).headers["X-Toxiproxy-Request-Id"] for _ in "abc"
    }
    assert len(ids) == 3


def test_keep_alive_reuses_connection(api: str) -> None:
    """Several requests travel over one HTTP/1.1 connection."""
    with socket.create_connection((LOOPBACK, int(api.rsplit(":", 1)[1])), timeout=5) as sock:
        request = b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n"
        sock.sendall(request + request)
        data = b""
        while data.count(b"HTTP/1.1 200") < 2:
            chunk = sock.recv(4096)
            assert chunk, data
            data += chunk
    assert data.count(b'"version"') == 2


def test_version_is_json(api: str) -> None:
    """GET /version returns a JSON object with the version."""
    response = requests.get(f"{api}/version", timeout=5)
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["version"].startswith("2.")


def test_create_defaults_to_loopback(api: str, echo_server: TcpServer) -> None:
    """A proxy without listen binds 127.0.0.1 on a free port, enabled, with no toxics."""
    response = requests.post(
        f"{api}/proxies", json={"name": "dflt", "upstream": echo_server.address}, timeout=5
    )
    body = response.json()
    host, port = body["listen"].rsplit(":", 1)
    assert response.status_code == 201
    assert host == LOOPBACK
    assert int(port) > 0
    assert body["enabled"] is True
    assert body["toxics"] == []
    with connect(int(port)) as sock:
        sock.sendall(b"ping")
        assert sock.recv(10) == b"ping"


def test_create_disabled_does_not_listen(api: str, echo_server: TcpServer) -> None:
    """A proxy created with enabled false binds nothing."""
    port = _free_port()
    listen = f"{LOOPBACK}:{port}"
    create_proxy(api, "off", echo_server.address, listen=listen, enabled=False)
    assert requests.get(f"{api}/proxies/off", timeout=5).json()["enabled"] is False
    assert port_is_free(port)


def test_disable_closes_connections(api: str, echo_server: TcpServer) -> None:
    """enabled false closes the listener and open connections; enabled true listens again."""
    port = create_proxy(api, "db", echo_server.address)
    with connect(port) as sock:
        sock.sendall(b"a")
        assert sock.recv(1) == b"a"
        response = requests.patch(f"{api}/proxies/db", json={"enabled": False}, timeout=5)
        assert response.status_code == 200
        assert response.json()["enabled"] is False
        assert sock.recv(10) == b""
    with pytest.raises(ConnectionRefusedError):
        connect(port)

    response = requests.post(f"{api}/proxies/db", json={"enabled": True}, timeout=5)
    assert response.json()["enabled"] is True
    with connect(port) as sock:
        sock.sendall(b"b")
        assert sock.recv(1) == b"b"


def test_update_changes_only_given_fields(api: str, echo_server: TcpServer) -> None:
    """An update with one field leaves the others as they were."""
    create_proxy(api, "db", echo_server.address)
    before = requests.get(f"{api}/proxies/db", timeout=5).json()
    after = requests.patch(f"{api}/proxies/db", json={}, timeout=5).json()
    assert after == before


def test_update_upstream_restarts(
    api: str, echo_server: TcpServer, http_upstream: TcpServer
) -> None:
    """A new upstream takes effect for new connections."""
    port = create_proxy(api, "db", echo_server.address)
    response = requests.patch(
        f"{api}/proxies/db", json={"upstream": http_upstream.address}, timeout=5
    )
    assert response.json()["upstream"] == http_upstream.address
    with connect(port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 200")


def test_update_listen_busy_port(api: str, echo_server: TcpServer) -> None:
    """A new listen on a busy port returns 500 and leaves the proxy disabled."""
    create_proxy(api, "db", echo_server.address)
    busy = socket.socket()
    busy.bind((LOOPBACK, 0))
    busy.listen()
    try:
        address = f"{LOOPBACK}:{busy.getsockname()[1]}"
        response = requests.patch(f"{api}/proxies/db", json={"listen": address}, timeout=5)
        assert response.status_code == 500
        assert "address already in use" in response.json()["error"]
        assert requests.get(f"{api}/proxies/db", timeout=5).json()["enabled"] is False
    finally:
        busy.close()


def test_create_on_busy_port(api: str, echo_server: TcpServer) -> None:
    """A listen port in use returns 500 with the OS error, and no proxy is kept."""
    busy = socket.socket()
    busy.bind((LOOPBACK, 0))
    busy.listen()
    try:
        address = f"{LOOPBACK}:{busy.getsockname()[1]}"
        response = requests.post(
            f"{api}/proxies",
            json={"name": "busy", "upstream": echo_server.address, "listen": address},
            timeout=5,
        )
        assert response.status_code == 500
        assert address in response.json()["error"]
        assert "address already in use" in response.json()["error"]
        assert "busy" not in requests.get(f"{api}/proxies", timeout=5).json()
    finally:
        busy.close()


def test_delete_closes_listener(api: str, echo_server: TcpServer) -> None:
    """DELETE returns 204 and closes the listener and its connections."""
    port = create_proxy(api, "db", echo_server.address)
    with connect(port) as sock:
        sock.sendall(b"a")
        assert sock.recv(1) == b"a"
        response = requests.delete(f"{api}/proxies/db", timeout=5)
        assert response.status_code == 204
        assert response.content == b""
        assert sock.recv(10) == b""
    assert port_is_free(port)


def test_toxic_defaults(api: str, echo_server: TcpServer) -> None:
    """A toxic gets stream downstream, toxicity 1.0, name type_stream and zero attributes."""
    create_proxy(api, "db", echo_server.address)
    toxic = add_toxic(api, "db", type="latency").json()
    assert toxic == {
        "name": "latency_downstream",
        "type": "latency",
        "stream": "downstream",
        "toxicity": 1.0,
        "attributes": {"latency": 0, "jitter": 0},
    }


def test_toxic_stream_case_insensitive(api: str, echo_server: TcpServer) -> None:
    """The stream name is matched without regard to case."""
    create_proxy(api, "db", echo_server.address)
    toxic = add_toxic(api, "db", type="noop", stream="UpStream").json()
    assert toxic["stream"] == "upstream"
    assert toxic["name"] == "noop_upstream"


def test_toxic_unknown_attribute_ignored(api: str, echo_server: TcpServer) -> None:
    """Unknown attribute keys are ignored."""
    create_proxy(api, "db", echo_server.address)
    toxic = add_toxic(api, "db", type="latency", attributes={"latency": 5, "color": "red"}).json()
    assert toxic["attributes"] == {"latency": 5, "jitter": 0}


def test_toxic_update_merges(api: str, echo_server: TcpServer) -> None:
    """An update merges attributes and changes toxicity, and nothing else."""
    create_proxy(api, "db", echo_server.address)
    add_toxic(api, "db", name="lat", type="latency", attributes={"latency": 5, "jitter": 2})
    response = requests.patch(
        f"{api}/proxies/db/toxics/lat",
        json={"attributes": {"jitter": 3}, "toxicity": 0.5, "type": "noop", "stream": "upstream"},
        timeout=5,
    )
    assert response.status_code == 200
    assert response.json() == {
        "name": "lat",
        "type": "latency",
        "stream": "downstream",
        "toxicity": 0.5,
        "attributes": {"latency": 5, "jitter": 3},
    }
    assert requests.get(f"{api}/proxies/db/toxics/lat", timeout=5).json() == response.json()


def test_toxic_list_and_delete(api: str, echo_server: TcpServer) -> None:
    """Toxics list upstream first; DELETE returns 204 and removes the toxic."""
    create_proxy(api, "db", echo_server.address)
    add_toxic(api, "db", name="down", type="noop", stream="downstream")
    add_toxic(api, "db", name="up", type="noop", stream="upstream")
    names = [t["name"] for t in requests.get(f"{api}/proxies/db/toxics", timeout=5).json()]
    assert names == ["up", "down"]
    assert requests.delete(f"{api}/proxies/db/toxics/up", timeout=5).status_code == 204
    names = [t["name"] for t in requests.get(f"{api}/proxies/db/toxics", timeout=5).json()]
    assert names == ["down"]


def test_reset_enables_and_clears(api: str, echo_server: TcpServer) -> None:
    """POST /reset enables every proxy and removes every toxic."""
    create_proxy(api, "a", echo_server.address)
    create_proxy(api, "b", echo_server.address)
    add_toxic(api, "a", type="latency", attributes={"latency": 1000})
    requests.patch(f"{api}/proxies/b", json={"enabled": False}, timeout=5)

    response = requests.post(f"{api}/reset", timeout=5)

    assert response.status_code == 204
    proxies = requests.get(f"{api}/proxies", timeout=5).json()
    assert proxies["a"]["toxics"] == []
    assert proxies["b"]["enabled"] is True


def test_metrics_count_traffic(api: str, echo_server: TcpServer) -> None:
    """GET /metrics shows bytes and connections per proxy and activations per toxic."""
    port = create_proxy(api, "db", echo_server.address)
    add_toxic(api, "db", name="n", type="noop")
    with connect(port) as sock:
        sock.sendall(b"12345")
        assert sock.recv(5) == b"12345"
    text = requests.get(f"{api}/metrics", timeout=5).text
    assert 'toxiproxy_proxy_connections_total{proxy="db"} 1.0' in text
    assert 'direction="upstream"' in text
    assert 'toxiproxy_toxic_activations_total{proxy="db",stream="downstream",toxic="n"' in text
    sent = [
        line
        for line in text.splitlines()
        if line.startswith("toxiproxy_proxy_sent_bytes_total") and 'proxy="db"' in line
    ]
    assert all(line.endswith(" 5.0") for line in sent), sent
    assert len(sent) == 2


def _free_port() -> int:
    probe = socket.socket()
    probe.bind((LOOPBACK, 0))
    port = int(probe.getsockname()[1])
    probe.close()
    return port
