"""The npm package toxiproxy-node-client against the server, driven by node/client_check.js."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from .conftest import TcpServer

NODE_DIR = Path(__file__).resolve().parent / "node"
CHECK_TIMEOUT_SECONDS = 60


def test_node_client_steps(api: str, echo_server: TcpServer) -> None:
    """The Node client creates, reads, updates and deletes a proxy and a latency toxic."""
    node = shutil.which("node")
    assert node is not None, "node is not on PATH; install Node.js 18 or later"
    assert (NODE_DIR / "node_modules" / "toxiproxy-node-client").is_dir(), (
        "toxiproxy-node-client is not installed; run `npm ci --prefix tests/proxy/node`"
    )

    result = subprocess.run(
        [node, str(NODE_DIR / "client_check.js"), api, echo_server.address],
        capture_output=True,
        text=True,
        timeout=CHECK_TIMEOUT_SECONDS,
        cwd=NODE_DIR,
    )

    output = f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == 0, output
    assert "FAIL" not in result.stdout, output
