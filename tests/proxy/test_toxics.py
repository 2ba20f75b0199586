"""Each toxic on both streams, and toxics added, changed and removed on open connections.

Timing checks are lower bounds (a toxic delayed data at least this long) or generous upper bounds
that only catch a stall; none measures speed.
"""

from __future__ import annotations

import socket
import time

import pytest
import requests

from .conftest import TcpServer, add_toxic, connect, create_proxy, recv_exactly, round_trip

STREAMS = ["upstream", "downstream"]
STALL_SECONDS = 5.0


@pytest.fixture
def db(api: str, echo_server: TcpServer) -> int:
    """Return the port of proxy `db`, whose upstream is the echo server."""
    return create_proxy(api, "db", echo_server.address)


@pytest.mark.parametrize("stream", STREAMS)
def test_latency_delays_round_trip(api: str, db: int, stream: str) -> None:
    """A latency toxic delays each chunk by at least its latency."""
    add_toxic(api, "db", type="latency", stream=stream, attributes={"latency": 150})
    with connect(db) as sock:
        data, seconds = round_trip(sock, b"hello")
    assert data == b"hello"
    assert seconds >= 0.14


@pytest.mark.parametrize("stream", STREAMS)
def test_latency_toxics_add_up(api: str, db: int, stream: str) -> None:
    """Two latency toxics on one stream add their delays."""
    add_toxic(api, "db", name="a", type="latency", stream=stream, attributes={"latency": 100})
    add_toxic(api, "db", name="b", type="latency", stream=stream, attributes={"latency": 100})
    with connect(db) as sock:
        _data, seconds = round_trip(sock, b"x")
    assert seconds >= 0.19


@pytest.mark.parametrize("stream", STREAMS)
def test_jitter_never_negative(api: str, db: int, stream: str) -> None:
    """A jitter larger than the latency sends data at once instead of failing."""
    add_toxic(api, "db", type="latency", stream=stream, attributes={"latency": 1, "jitter": 500})
    with connect(db) as sock:
        for i in range(20):
            data, seconds = round_trip(sock, bytes([i]))
            assert data == bytes([i])
            assert seconds < STALL_SECONDS


@pytest.mark.parametrize("stream", STREAMS)
def test_negative_latency_passes(api: str, db: int, stream: str) -> None:
    """A negative latency is treated as no delay."""
    add_toxic(api, "db", type="latency", stream=stream, attributes={"latency": -1000})
    with connect(db) as sock:
        data, seconds = round_trip(sock, b"neg")
    assert data == b"neg"
    assert seconds < STALL_SECONDS


@pytest.mark.parametrize("stream", STREAMS)
def test_huge_latency_holds_until_removed(api: str, db: int, stream: str) -> None:
    """A latency near the int64 maximum holds data, and removing it releases the data."""
    add_toxic(
        api, "db", name="huge", type="latency", stream=stream, attributes={"latency": 2**63 - 1}
    )
    with connect(db, timeout=0.5) as sock:
        sock.sendall(b"held")
        with pytest.raises(TimeoutError):
            sock.recv(10)
        assert requests.delete(f"{api}/proxies/db/toxics/huge", timeout=5).status_code == 204
        sock.settimeout(STALL_SECONDS)
        assert recv_exactly(sock, 4) == b"held"


@pytest.mark.parametrize("stream", STREAMS)
def test_bandwidth_limits_rate(api: str, db: int, stream: str) -> None:
    """A bandwidth toxic of 100 KB/s takes at least 0.4 s to pass 50 KB."""
    add_toxic(api, "db", type="bandwidth", stream=stream, attributes={"rate": 100})
    payload = bytes(range(256)) * 200
    with connect(db, timeout=STALL_SECONDS * 2) as sock:
        data, seconds = round_trip(sock, payload)
    assert data == payload
    assert seconds >= 0.4


@pytest.mark.parametrize("stream", STREAMS)
def test_slow_close_delays_close(api: str, db: int, stream: str) -> None:
    """A slow_close toxic delays the end of the stream by its delay."""
    add_toxic(api, "db", type="slow_close", stream=stream, attributes={"delay": 300})
    with connect(db) as sock:
        data, _seconds = round_trip(sock, b"bye")
        start = time.perf_counter()
        sock.shutdown(socket.SHUT_WR)
        assert sock.recv(10) == b""
        seconds = time.perf_counter() - start
    assert data == b"bye"
    assert seconds >= 0.28


@pytest.mark.parametrize("stream", STREAMS)
def test_timeout_closes_after_idle(api: str, db: int, stream: str) -> None:
    """A timeout toxic drops data and closes the connection after its timeout."""
    add_toxic(api, "db", type="timeout", stream=stream, attributes={"timeout": 200})
    with connect(db) as sock:
        start = time.perf_counter()
        sock.sendall(b"lost")
        try:
            data = sock.recv(10)
        except ConnectionResetError:
            data = b""
        seconds = time.perf_counter() - start
    assert data == b""
    assert 0.15 <= seconds < STALL_SECONDS


@pytest.mark.parametrize("stream", STREAMS)
def test_timeout_zero_holds(api: str, db: int, stream: str) -> None:
    """A timeout of 0 keeps the connection open with no data passing."""
    add_toxic(api, "db", type="timeout", stream=stream, attributes={"timeout": 0})
    with connect(db, timeout=0.5) as sock:
        sock.sendall(b"held")
        with pytest.raises(TimeoutError):
            sock.recv(10)


@pytest.mark.parametrize("stream", STREAMS)
def test_reset_peer_sends_rst(api: str, db: int, stream: str) -> None:
    """A reset_peer toxic resets the connection after the first data."""
    add_toxic(api, "db", type="reset_peer", stream=stream, attributes={"timeout": 50})
    with connect(db) as sock:
        sock.sendall(b"boom")
        with pytest.raises(ConnectionResetError):
            recv_exactly(sock, 100)


@pytest.mark.parametrize("stream", STREAMS)
def test_reset_peer_on_open_connection(api: str, db: int, stream: str) -> None:
    """A reset_peer toxic also resets a connection opened before it was added."""
    with connect(db) as sock:
        assert round_trip(sock, b"ok")[0] == b"ok"
        add_toxic(api, "db", type="reset_peer", stream=stream, attributes={"timeout": 0})
        sock.sendall(b"boom")
        with pytest.raises(ConnectionResetError):
            recv_exactly(sock, 100)


@pytest.mark.parametrize("stream", STREAMS)
def test_reset_peer_toxicity_zero(api: str, db: int, stream: str) -> None:
    """A reset_peer toxic with toxicity 0 never fires."""
    add_toxic(api, "db", type="reset_peer", stream=stream, toxicity=0, attributes={"timeout": 0})
    with connect(db) as sock:
        for _ in range(5):
            assert round_trip(sock, b"safe")[0] == b"safe"


@pytest.mark.parametrize("stream", STREAMS)
def test_slicer_cuts_chunks(api: str, db: int, stream: str) -> None:
    """A slicer toxic delivers every byte in order, in several pieces."""
    add_toxic(
        api,
        "db",
        type="slicer",
        stream=stream,
        attributes={"average_size": 4, "size_variation": 1, "delay": 20000},
    )
    payload = b"0123456789abcdefghijklmnopqrstuv"
    with connect(db) as sock:
        sock.sendall(payload)
        reads = []
        while sum(map(len, reads)) < len(payload):
            chunk = sock.recv(100)
            assert chunk
            reads.append(chunk)
    assert b"".join(reads) == payload
    assert len(reads) > 1


@pytest.mark.parametrize("stream", STREAMS)
def test_limit_data_closes(api: str, db: int, stream: str) -> None:
    """A limit_data toxic passes at most its byte count, then closes the connection."""
    add_toxic(api, "db", type="limit_data", stream=stream, attributes={"bytes": 10})
    payload = b"abcdefghijklmnopqrstuvwxyz"
    with connect(db) as sock:
        sock.sendall(payload)
        data = recv_exactly(sock, len(payload))
        assert sock.recv(10) == b""
    assert payload.startswith(data)
    if stream == "downstream":
        assert data == payload[:10]
    else:
        assert len(data) <= 10


@pytest.mark.parametrize("stream", STREAMS)
def test_noop_passes_data(api: str, db: int, stream: str) -> None:
    """A noop toxic passes data unchanged."""
    add_toxic(api, "db", type="noop", stream=stream)
    payload = bytes(range(256)) * 1000
    with connect(db) as sock:
        assert round_trip(sock, payload)[0] == payload


@pytest.mark.parametrize("stream", STREAMS)
def test_add_and_remove_on_open_connection(api: str, db: int, stream: str) -> None:
    """A toxic added to an open connection applies to the next chunk; removing it lifts it."""
    with connect(db) as sock:
        assert round_trip(sock, b"before")[0] == b"before"
        add_toxic(api, "db", name="lag", type="latency", stream=stream, attributes={"latency": 200})
        data, seconds = round_trip(sock, b"during")
        assert data == b"during"
        assert seconds >= 0.19
        requests.delete(f"{api}/proxies/db/toxics/lag", timeout=5)
        data, seconds = round_trip(sock, b"after")
        assert data == b"after"
        assert seconds < 0.19


@pytest.mark.parametrize("stream", STREAMS)
def test_update_applies_to_open_connection(api: str, db: int, stream: str) -> None:
    """Raising a toxic's toxicity from 0 to 1 makes it act on an open connection."""
    add_toxic(
        api,
        "db",
        name="lag",
        type="latency",
        stream=stream,
        toxicity=0,
        attributes={"latency": 200},
    )
    with connect(db) as sock:
        assert round_trip(sock, b"fast")[1] < 0.19
        response = requests.patch(f"{api}/proxies/db/toxics/lag", json={"toxicity": 1}, timeout=5)
        assert response.status_code == 200
        assert round_trip(sock, b"slow")[1] >= 0.19


def test_toxics_chain_in_order(api: str, db: int) -> None:
    """Toxics on one stream apply in the order they were added."""
    add_toxic(api, "db", name="cut", type="limit_data", stream="upstream", attributes={"bytes": 4})
    add_toxic(api, "db", name="lag", type="latency", stream="upstream", attributes={"latency": 100})
    with connect(db) as sock:
        start = time.perf_counter()
        sock.sendall(b"abcdefgh")
        data = recv_exactly(sock, 8)
        seconds = time.perf_counter() - start
    assert data in (b"", b"abcd")
    assert seconds >= 0.09


def test_http_through_proxy(api: str, http_upstream: TcpServer) -> None:
    """An HTTP request passes through a proxy with a latency toxic."""
    port = create_proxy(api, "web", http_upstream.address)
    add_toxic(api, "web", type="latency", attributes={"latency": 50})
    response = requests.get(f"http://127.0.0.1:{port}/", timeout=5)
    assert response.status_code == 200
    assert response.text == "hello through the proxy"
