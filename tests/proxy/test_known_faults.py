"""Faults that Toxiproxy-like proxies have shipped, each with its right outcome."""

from __future__ import annotations

import threading
import time

import pytest
import requests

from .conftest import (
    LOOPBACK,
    TcpServer,
    add_toxic,
    connect,
    create_proxy,
    free_port,
    port_is_free,
    recv_exactly,
)

STREAMS = ["upstream", "downstream"]


@pytest.mark.parametrize("stream", STREAMS)
def test_bandwidth_zero_stalls_then_flows(api: str, echo_server: TcpServer, stream: str) -> None:
    """Rate 0 stalls the stream without dropping bytes; removing it lets them flow."""
    port = create_proxy(api, "db", echo_server.address)
    payload = bytes(range(256)) * 4096  # 1 MiB, more than the proxy queues before pausing
    with connect(port, timeout=10) as sock:
        add_toxic(api, "db", name="stall", type="bandwidth", stream=stream, attributes={"rate": 0})

        sender = threading.Thread(target=sock.sendall, args=(payload,), daemon=True)
        sender.start()
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            sock.recv(1)

        # The API still responds while the stream is stalled.
        assert requests.get(f"{api}/proxies/db", timeout=2).status_code == 200

        assert requests.delete(f"{api}/proxies/db/toxics/stall", timeout=2).status_code == 204
        sock.settimeout(10)
        received = recv_exactly(sock, len(payload))
        sender.join(10)
    assert len(received) == len(payload)
    assert received == payload


@pytest.mark.parametrize(("average_size", "size_variation"), [(4, 8), (1, 1), (4, 4), (3, -2)])
def test_slicer_large_variation(
    api: str, echo_server: TcpServer, average_size: int, size_variation: int
) -> None:
    """A size_variation at or above average_size is clamped; every byte arrives in order."""
    port = create_proxy(api, "db", echo_server.address)
    add_toxic(
        api,
        "db",
        type="slicer",
        attributes={"average_size": average_size, "size_variation": size_variation},
    )
    payload = bytes(range(256)) * 64
    with connect(port, timeout=10) as sock:
        sock.sendall(payload)
        received = recv_exactly(sock, len(payload))
    assert received == payload
    assert requests.get(f"{api}/version", timeout=2).status_code == 200


def test_duplicate_name_conflict(api: str, echo_server: TcpServer) -> None:
    """A second proxy named db gets 409, the first still works, its port stays free."""
    first_port = create_proxy(api, "db", echo_server.address)
    second_port = free_port()

    response = requests.post(
        f"{api}/proxies",
        json={
            "name": "db",
            "upstream": echo_server.address,
            "listen": f"{LOOPBACK}:{second_port}",
        },
        timeout=5,
    )

    assert response.status_code == 409
    assert response.json() == {"error": "proxy already exists", "status": 409}
    with connect(first_port) as sock:
        sock.sendall(b"still")
        assert recv_exactly(sock, 5) == b"still"
    assert port_is_free(second_port)
    other = requests.post(
        f"{api}/proxies",
        json={
            "name": "other",
            "upstream": echo_server.address,
            "listen": f"{LOOPBACK}:{second_port}",
        },
        timeout=5,
    )
    assert other.status_code == 201


@pytest.mark.parametrize("stream", STREAMS)
def test_timeout_zero_delete_closes(api: str, echo_server: TcpServer, stream: str) -> None:
    """Deleting a timeout 0 toxic returns at once and closes the held connection."""
    port = create_proxy(api, "db", echo_server.address)
    add_toxic(api, "db", name="hang", type="timeout", stream=stream, attributes={"timeout": 0})
    with connect(port, timeout=0.3) as sock:
        sock.sendall(b"held")
        with pytest.raises(TimeoutError):
            sock.recv(10)

        start = time.perf_counter()
        response = requests.delete(f"{api}/proxies/db/toxics/hang", timeout=5)
        seconds = time.perf_counter() - start

        assert response.status_code == 204
        # Generous bound: the point is that DELETE does not wait for the connection.
        assert seconds < 1.0
        sock.settimeout(5)
        try:
            data = sock.recv(10)
        except ConnectionResetError:
            data = b""
        assert data == b""
