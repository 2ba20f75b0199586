"""The toxiproxy-python client against the server, as the harness and users drive it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from toxiproxy import Toxiproxy
from toxiproxy.exceptions import NotFound, ProxyExists

from .conftest import ProxyServer, TcpServer, connect, recv_exactly, round_trip


@pytest.fixture
def client(proxy_server: ProxyServer, api: str) -> Iterator[Toxiproxy]:
    toxiproxy = Toxiproxy()
    toxiproxy.update_api_consumer("127.0.0.1", proxy_server.port)
    yield toxiproxy


def test_client_create_and_get(client: Toxiproxy, echo_server: TcpServer) -> None:
    """The client creates a proxy and finds it again."""
    proxy = client.create(upstream=echo_server.address, name="db")
    assert proxy.name == "db"
    assert proxy.enabled is True
    assert client.get_proxy("db").upstream == echo_server.address
    assert client.running()
    assert b"version" in client.version()


def test_client_create_twice(client: Toxiproxy, echo_server: TcpServer) -> None:
    """The client raises ProxyExists for a second proxy with the same name."""
    client.create(upstream=echo_server.address, name="db")
    with pytest.raises(ProxyExists):
        client.create(upstream=echo_server.address, name="db")


def test_client_toxics(client: Toxiproxy, echo_server: TcpServer) -> None:
    """The client adds, lists and destroys toxics, and they act on traffic."""
    proxy = client.create(upstream=echo_server.address, name="db")
    port = int(proxy.listen.rsplit(":", 1)[1])
    proxy.add_toxic(type="latency", attributes={"latency": 150})
    toxics = proxy.toxics()
    assert list(toxics) == ["latency_downstream"]
    assert toxics["latency_downstream"].attributes == {"latency": 150, "jitter": 0}
    with connect(port) as sock:
        assert round_trip(sock, b"slow")[1] >= 0.14
    assert proxy.destroy_toxic("latency_downstream")
    assert proxy.toxics() == {}
    with pytest.raises(NotFound):
        proxy.destroy_toxic("latency_downstream")


def test_client_disable_enable(client: Toxiproxy, echo_server: TcpServer) -> None:
    """The client's down() context closes the proxy and opens it again."""
    proxy = client.create(upstream=echo_server.address, name="db")
    port = int(proxy.listen.rsplit(":", 1)[1])
    with proxy.down():
        assert client.get_proxy("db").enabled is False
        with pytest.raises(ConnectionRefusedError):
            connect(port)
    assert client.get_proxy("db").enabled is True
    with connect(port) as sock:
        sock.sendall(b"up")
        assert recv_exactly(sock, 2) == b"up"


def test_client_reset_and_destroy(client: Toxiproxy, echo_server: TcpServer) -> None:
    """reset() clears toxics and enables proxies; destroy_all() removes them."""
    proxy = client.create(upstream=echo_server.address, name="db")
    proxy.add_toxic(type="timeout", attributes={"timeout": 0})
    proxy.disable()
    assert client.reset()
    assert client.get_proxy("db").enabled is True
    assert proxy.toxics() == {}
    client.destroy_all()
    assert client.proxies() == {}


def test_client_populate(client: Toxiproxy, echo_server: TcpServer) -> None:
    """The client's populate() creates proxies through the API."""
    created = client.populate(
        [{"name": "a", "upstream": echo_server.address, "listen": "127.0.0.1:0"}]
    )
    assert [p.name for p in created] == ["a"]
