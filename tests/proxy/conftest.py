"""Fixtures for the fault proxy tests: a server child process and small loopback upstreams."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

REPO_ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = "127.0.0.1"
START_TIMEOUT_SECONDS = 15.0


@dataclass
class ProxyServer:
    """A running `python -m harness.proxy` child process and its API address."""

    process: subprocess.Popen[str]
    port: int

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"


def child_env() -> dict[str, str]:
    """Return the environment for a child server, with the repository on its import path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


def start_server(*args: str) -> ProxyServer:
    """Start the server on a free API port and wait for its ready line."""
    process = subprocess.Popen(
        [sys.executable, "-m", "harness.proxy", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=child_env(),
        cwd=REPO_ROOT,
    )
    assert process.stdout is not None
    line = read_line_with_timeout(process, START_TIMEOUT_SECONDS)
    prefix = "harness-toxiproxy listening on "
    if not line.startswith(prefix):
        process.kill()
        raise RuntimeError(f"server did not start, its first line was {line!r}")
    port = int(line.strip().rsplit(":", 1)[1])
    return ProxyServer(process, port)


def read_line_with_timeout(process: subprocess.Popen[str], timeout: float) -> str:
    """Read one stdout line, failing the test if none arrives within `timeout` seconds."""
    assert process.stdout is not None
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(process.stdout.readline()))  # type: ignore[union-attr]
    reader.daemon = True
    reader.start()
    reader.join(timeout)
    if not result:
        process.kill()
        raise RuntimeError(f"no line from the server within {timeout} s")
    return result[0]


def stop_server(server: ProxyServer) -> None:
    """Stop a child server with SIGTERM, then SIGKILL if it does not exit."""
    server.process.terminate()
    try:
        server.process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="session")
def proxy_server() -> Iterator[ProxyServer]:
    server = start_server("--seed", "7")
    yield server
    stop_server(server)


@pytest.fixture
def api(proxy_server: ProxyServer) -> Iterator[str]:
    """Return the API base URL; every proxy is deleted after the test."""
    yield proxy_server.url
    for name in requests.get(f"{proxy_server.url}/proxies", timeout=5).json():
        requests.delete(f"{proxy_server.url}/proxies/{name}", timeout=5)


class TcpServer:
    """A threaded TCP server on 127.0.0.1 that runs `handler` for each accepted connection."""

    def __init__(self, handler: Callable[[socket.socket], None]) -> None:
        self.handler = handler
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((LOOPBACK, 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.address = f"{LOOPBACK}:{self.port}"
        self.connections: list[socket.socket] = []
        self._closed = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections.append(conn)
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn: socket.socket) -> None:
        try:
            self.handler(conn)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self._closed = True
        self.sock.close()
        for conn in self.connections:
            with contextlib.suppress(OSError):
                conn.close()


def echo_handler(conn: socket.socket) -> None:
    """Send back every byte received, until the client closes."""
    while True:
        data = conn.recv(65536)
        if not data:
            return
        conn.sendall(data)


@pytest.fixture(scope="session")
def echo_server() -> Iterator[TcpServer]:
    server = TcpServer(echo_handler)
    yield server
    server.close()


def http_handler(conn: socket.socket) -> None:
    """Send a fixed 200 response to the first HTTP request of each connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return
        data += chunk
    body = b"hello through the proxy"
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
    )


@pytest.fixture(scope="session")
def http_upstream() -> Iterator[TcpServer]:
    server = TcpServer(http_handler)
    yield server
    server.close()


def create_proxy(api: str, name: str, upstream: str, **fields: object) -> int:
    """Create a proxy and return the port it listens on."""
    response = requests.post(
        f"{api}/proxies", json={"name": name, "upstream": upstream, **fields}, timeout=5
    )
    assert response.status_code == 201, response.text
    return int(response.json()["listen"].rsplit(":", 1)[1])


def add_toxic(api: str, proxy: str, **fields: object) -> requests.Response:
    """Add a toxic and check that the server accepted it."""
    response = requests.post(f"{api}/proxies/{proxy}/toxics", json=fields, timeout=5)
    assert response.status_code == 200, response.text
    return response


def connect(port: int, timeout: float = 5.0) -> socket.socket:
    """Open a client connection to a proxy port."""
    sock = socket.create_connection((LOOPBACK, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    """Read exactly `size` bytes, or fewer if the peer closes first."""
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return bytes(data)


def round_trip(sock: socket.socket, payload: bytes) -> tuple[bytes, float]:
    """Send a payload through an echo upstream; return what came back and the seconds taken."""
    start = time.perf_counter()
    sock.sendall(payload)
    data = recv_exactly(sock, len(payload))
    return data, time.perf_counter() - start


def port_is_free(port: int) -> bool:
    """Return whether a listener could bind 127.0.0.1:port now."""
    probe = socket.socket()
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe.bind((LOOPBACK, port))
    except OSError:
        return False
    finally:
        probe.close()
    return True


def free_port() -> int:
    """Return a port that was free a moment ago."""
    probe = socket.socket()
    probe.bind((LOOPBACK, 0))
    port = int(probe.getsockname()[1])
    probe.close()
    return port
