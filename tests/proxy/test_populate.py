"""POST /populate: validation first, then create or replace in order."""

from __future__ import annotations

import socket

import requests

from .conftest import LOOPBACK, TcpServer, connect, free_port, recv_exactly


def populate(api: str, proxies: object) -> requests.Response:
    return requests.post(f"{api}/populate", json=proxies, timeout=5)


def test_populate_creates(api: str, echo_server: TcpServer) -> None:
    """A list of proxies is created and returned with status 201."""
    response = populate(
        api,
        [
            {"name": "a", "upstream": echo_server.address},
            {"name": "b", "upstream": echo_server.address, "enabled": False},
        ],
    )
    assert response.status_code == 201
    proxies = response.json()["proxies"]
    assert [p["name"] for p in proxies] == ["a", "b"]
    assert [p["enabled"] for p in proxies] == [True, False]


def test_populate_validates_first(api: str, echo_server: TcpServer) -> None:
    """An invalid entry is reported by position and nothing is created."""
    response = populate(
        api, [{"name": "a", "upstream": echo_server.address}, {"upstream": echo_server.address}]
    )
    assert response.status_code == 400
    assert response.json()["error"] == "missing required field: name at proxy 2"
    assert requests.get(f"{api}/proxies", timeout=5).json() == {}


def test_populate_rejects_non_list(api: str) -> None:
    """A body that is not a JSON list is a 400."""
    response = populate(api, {"name": "a"})
    assert response.status_code == 400
    assert "bad request body" in response.json()["error"]


def test_populate_rejects_duplicate_names(api: str, echo_server: TcpServer) -> None:
    """Two entries with one name are a 400 and nothing is created."""
    entry = {"name": "a", "upstream": echo_server.address}
    response = populate(api, [entry, entry])
    assert response.status_code == 400
    assert requests.get(f"{api}/proxies", timeout=5).json() == {}


def test_populate_keeps_identical_proxy(api: str, echo_server: TcpServer) -> None:
    """An entry equal to an existing proxy keeps it and its open connections."""
    port = free_port()
    entry = {"name": "a", "upstream": echo_server.address, "listen": f"localhost:{port}"}
    assert populate(api, [entry]).status_code == 201
    with connect(port) as sock:
        sock.sendall(b"one")
        assert recv_exactly(sock, 3) == b"one"
        assert populate(api, [entry]).status_code == 201
        sock.sendall(b"two")
        assert recv_exactly(sock, 3) == b"two"


def test_populate_replaces_changed_proxy(
    api: str, echo_server: TcpServer, http_upstream: TcpServer
) -> None:
    """An entry with a new upstream replaces the existing proxy."""
    port = free_port()
    listen = f"{LOOPBACK}:{port}"
    populate(api, [{"name": "a", "upstream": echo_server.address, "listen": listen}])
    response = populate(api, [{"name": "a", "upstream": http_upstream.address, "listen": listen}])
    assert response.status_code == 201
    assert response.json()["proxies"][0]["upstream"] == http_upstream.address


def test_populate_stops_at_bind_failure(api: str, echo_server: TcpServer) -> None:
    """A bind failure returns 500 naming the address; earlier entries stay."""
    busy = socket.socket()
    busy.bind((LOOPBACK, 0))
    busy.listen()
    address = f"{LOOPBACK}:{busy.getsockname()[1]}"
    try:
        response = populate(
            api,
            [
                {"name": "first", "upstream": echo_server.address},
                {"name": "busy", "upstream": echo_server.address, "listen": address},
                {"name": "last", "upstream": echo_server.address},
            ],
        )
    finally:
        busy.close()
    assert response.status_code == 500
    body = response.json()
    assert address in body["error"]
    assert [p["name"] for p in body["proxies"]] == ["first"]
    assert sorted(requests.get(f"{api}/proxies", timeout=5).json()) == ["first"]
