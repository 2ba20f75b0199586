"""The command line: ready line, Go flag spellings, config file, exit statuses, signals."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from .conftest import (
    LOOPBACK,
    REPO_ROOT,
    TcpServer,
    child_env,
    free_port,
    start_server,
    stop_server,
)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness.proxy", *args],
        capture_output=True,
        text=True,
        env=child_env(),
        cwd=REPO_ROOT,
        timeout=30,
    )


def test_busy_api_port_exits_1() -> None:
    """A busy API address exits 1 with one line naming the address and the OS error."""
    busy = socket.socket()
    busy.bind((LOOPBACK, 0))
    busy.listen()
    port = busy.getsockname()[1]
    try:
        result = run_cli("--port", str(port))
    finally:
        busy.close()
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert f"{LOOPBACK}:{port}" in lines[0]
    assert "ddress already in use" in lines[0]


@pytest.mark.parametrize(
    "flags",
    [["-host", LOOPBACK, "-seed", "3"], ["--host", LOOPBACK, "--seed", "3"], ["-host=127.0.0.1"]],
)
def test_flag_spellings(flags: list[str]) -> None:
    """Both Toxiproxy's single-dash flags and double-dash flags start the server."""
    server = start_server(*flags)
    try:
        response = requests.get(f"{server.url}/version", timeout=5)
        assert response.status_code == 200
    finally:
        stop_server(server)


def test_sigterm_exits_cleanly() -> None:
    """SIGTERM stops the server with status 0 and frees its proxy ports."""
    server = start_server()
    listen_port = free_port()
    requests.post(
        f"{server.url}/proxies",
        json={"name": "a", "upstream": "127.0.0.1:9", "listen": f"{LOOPBACK}:{listen_port}"},
        timeout=5,
    )
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=10) == 0


def test_sigint_exits_cleanly() -> None:
    """SIGINT stops the server with status 0."""
    server = start_server("--no-uvloop")
    server.process.send_signal(signal.SIGINT)
    assert server.process.wait(timeout=10) == 0


def test_config_file_creates_proxies(tmp_path: Path, echo_server: TcpServer) -> None:
    """A config file's proxies exist once the ready line is printed."""
    config = tmp_path / "proxies.json"
    config.write_text(json.dumps([{"name": "db", "upstream": echo_server.address}]))
    server = start_server("-config", str(config))
    try:
        proxies = requests.get(f"{server.url}/proxies", timeout=5).json()
        assert list(proxies) == ["db"]
    finally:
        stop_server(server)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "not valid JSON"),
        ('[{"upstream": "127.0.0.1:9"}]', "missing required field: name at proxy 1"),
        ('{"name": "a"}', "JSON array"),
    ],
)
def test_bad_config_exits_1(tmp_path: Path, content: str, message: str) -> None:
    """An invalid config file exits 1 with one line saying what is wrong."""
    config = tmp_path / "proxies.json"
    config.write_text(content)
    result = run_cli("--config", str(config))
    assert result.returncode == 1
    assert message in result.stderr
    assert result.stdout == ""


def test_missing_config_exits_1(tmp_path: Path) -> None:
    """A config path that does not exist exits 1 naming the file."""
    result = run_cli("--config", str(tmp_path / "absent.json"))
    assert result.returncode == 1
    assert "absent.json" in result.stderr


def test_version_flag() -> None:
    """--version prints the program name and version."""
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("harness-toxiproxy 2.")


def test_structured_logs(tmp_path: Path, echo_server: TcpServer) -> None:
    """Proxy, toxic and connection events are logged to stderr as key=value lines."""
    log_path = tmp_path / "stderr.log"
    with log_path.open("w") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "harness.proxy", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=log_file,
            text=True,
            env=child_env(),
            cwd=REPO_ROOT,
        )
        assert process.stdout is not None
        url = "http://" + process.stdout.readline().strip().rsplit(" ", 1)[1]
        response = requests.post(
            f"{url}/proxies", json={"name": "api->payments", "upstream": echo_server.address}
        )
        port = int(response.json()["listen"].rsplit(":", 1)[1])
        requests.post(f"{url}/proxies/api->payments/toxics", json={"type": "noop"}, timeout=5)
        with socket.create_connection((LOOPBACK, port), timeout=5) as sock:
            sock.sendall(b"x")
            sock.recv(1)
        requests.delete(f"{url}/proxies/api->payments", timeout=5)
        process.terminate()
        process.wait(timeout=10)
    text = log_path.read_text()
    assert "event=proxy.created proxy=api->payments listen=127.0.0.1:" in text
    assert "event=toxic.added proxy=api->payments toxic=noop_downstream" in text
    assert "event=connection.opened proxy=api->payments" in text
    assert "event=connection.closed proxy=api->payments" in text


def reset_pattern(seed: str, upstream: str) -> list[bool]:
    """Return, for 12 connections in turn, whether a reset_peer toxic of toxicity 0.5 fired."""
    server = start_server("--seed", seed)
    try:
        response = requests.post(
            f"{server.url}/proxies", json={"name": "db", "upstream": upstream}, timeout=5
        )
        port = int(response.json()["listen"].rsplit(":", 1)[1])
        requests.post(
            f"{server.url}/proxies/db/toxics",
            json={"type": "reset_peer", "toxicity": 0.5, "attributes": {"timeout": 0}},
            timeout=5,
        )
        pattern = []
        for _ in range(12):
            with socket.create_connection((LOOPBACK, port), timeout=5) as sock:
                sock.sendall(b"x")
                try:
                    pattern.append(sock.recv(1) != b"x")
                except ConnectionResetError:
                    pattern.append(True)
        return pattern
    finally:
        stop_server(server)


def test_seed_repeats_toxicity_draws(echo_server: TcpServer) -> None:
    """The same --seed gives the same toxicity draws for the same connections."""
    first = reset_pattern("11", echo_server.address)
    second = reset_pattern("11", echo_server.address)
    assert first == second
    assert any(first)
    assert not all(first)
