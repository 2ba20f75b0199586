"""Benchmark the fault proxy against a direct connection and HAProxy (TCP mode) on loopback.

Run: `python bench/proxy_bench.py [--quick]`. It starts its own upstream servers, HAProxy and
two proxy servers (uvloop and the standard asyncio loop) as child processes on 127.0.0.1, prints
a table and the ratios against the goals, and stops everything it started. It takes about a
minute; every loop is bounded by a count.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = "127.0.0.1"
HAPROXY = "/usr/sbin/haproxy"
PAYLOAD = bytes(range(256)) * 4  # 1 KiB request, echoed back as the response
CHUNK = 1024 * 1024


# Upstream servers, run in a child process so they do not share the client's GIL.


def serve_upstreams(echo_port_file: str) -> None:
    """Run a uvloop echo server and a byte source server until killed; write their ports."""
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:
        loop_factory = asyncio.new_event_loop

    class Echo(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport
            sock = transport.get_extra_info("socket")
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def data_received(self, data: bytes) -> None:
            self.transport.write(data)  # type: ignore[attr-defined]

    def source_client(conn: socket.socket) -> None:
        # The client sends the byte count as 12 ASCII digits; the server sends that many bytes.
        with conn:
            header = b""
            while len(header) < 12:
                part = conn.recv(12 - len(header))
                if not part:
                    return
                header += part
            size = int(header)
            block = memoryview(bytes(CHUNK))
            while size > 0:
                sent = conn.send(block[: min(size, CHUNK)])
                size -= sent

    def source_server(sock: socket.socket) -> None:
        while True:
            conn, _ = sock.accept()
            threading.Thread(target=source_client, args=(conn,), daemon=True).start()

    source = socket.socket()
    source.bind((LOOPBACK, 0))
    source.listen(16)
    threading.Thread(target=source_server, args=(source,), daemon=True).start()

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(Echo, LOOPBACK, 0, backlog=256)
        ports = {"echo": server.sockets[0].getsockname()[1], "source": source.getsockname()[1]}
        Path(echo_port_file).write_text(json.dumps(ports))
        await asyncio.Event().wait()

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(main())


@dataclass
class Child:
    """A child process started by the benchmark."""

    process: subprocess.Popen[str]

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@contextmanager
def upstreams(tmp: Path) -> Iterator[dict[str, int]]:
    port_file = tmp / "upstream-ports.json"
    code = f"import sys; sys.path.insert(0, {str(REPO_ROOT / 'bench')!r}); "
    code += f"import proxy_bench; proxy_bench.serve_upstreams({str(port_file)!r})"
    child = Child(subprocess.Popen([sys.executable, "-c", code], text=True))
    try:
        for _ in range(200):
            if port_file.exists() and port_file.read_text():
                break
            time.sleep(0.05)
        yield json.loads(port_file.read_text())
    finally:
        child.stop()


@contextmanager
def haproxy(tmp: Path, echo_port: int, source_port: int) -> Iterator[dict[str, int] | None]:
    if not Path(HAPROXY).exists():
        yield None
        return
    ports = {"echo": free_port(), "source": free_port()}
    # One thread, as our proxy uses one event loop; the machine has only two cores.
    config = f"""
global
    nbthread 1
    maxconn 2000
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
listen echo
    bind {LOOPBACK}:{ports["echo"]}
    server s1 {LOOPBACK}:{echo_port}
listen source
    bind {LOOPBACK}:{ports["source"]}
    server s1 {LOOPBACK}:{source_port}
"""
    path = tmp / "haproxy.cfg"
    path.write_text(config)
    child = Child(
        subprocess.Popen(
            [HAPROXY, "-db", "-f", str(path)],
            text=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    )
    try:
        wait_for_port(ports["echo"])
        yield ports
    finally:
        child.stop()


@contextmanager
def our_proxy(*flags: str) -> Iterator[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    process = subprocess.Popen(
        [sys.executable, "-m", "harness.proxy", "--port", "0", "--log-level", "warning", *flags],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    child = Child(process)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        yield "http://" + line.strip().rsplit(" ", 1)[1]
    finally:
        child.stop()


def api_request(url: str, method: str = "GET", body: object | None = None) -> object:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read()
    return json.loads(text) if text else None


def create_proxy(api: str, name: str, upstream_port: int) -> int:
    body = {"name": name, "upstream": f"{LOOPBACK}:{upstream_port}"}
    proxy = api_request(f"{api}/proxies", "POST", body)
    assert isinstance(proxy, dict)
    return int(proxy["listen"].rsplit(":", 1)[1])


def add_latency(api: str, proxy: str, latency_ms: int) -> None:
    body = {"type": "latency", "name": "lat", "attributes": {"latency": latency_ms}}
    api_request(f"{api}/proxies/{proxy}/toxics", "POST", body)


def free_port() -> int:
    probe = socket.socket()
    probe.bind((LOOPBACK, 0))
    port = int(probe.getsockname()[1])
    probe.close()
    return port


def wait_for_port(port: int) -> None:
    for _ in range(100):
        try:
            socket.create_connection((LOOPBACK, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {LOOPBACK}:{port}")


# Measurements.


def connect(port: int) -> socket.socket:
    sock = socket.create_connection((LOOPBACK, port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def ping(sock: socket.socket, buffer: bytearray) -> float:
    """Send PAYLOAD and read it back; return the round trip in seconds."""
    view = memoryview(buffer)
    start = time.perf_counter()
    sock.sendall(PAYLOAD)
    got = 0
    while got < len(PAYLOAD):
        n = sock.recv_into(view[got:], len(PAYLOAD) - got)
        if not n:
            raise ConnectionError("connection closed during a round trip")
        got += n
    return time.perf_counter() - start


def round_trips_one(port: int, count: int, warmup: int = 200) -> list[float]:
    buffer = bytearray(len(PAYLOAD))
    with connect(port) as sock:
        for _ in range(warmup):
            ping(sock, buffer)
        return [ping(sock, buffer) for _ in range(count)]


async def _round_trips_many(port: int, connections: int, per_connection: int) -> list[float]:
    samples: list[float] = []

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(LOOPBACK, port)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(per_connection + 10):
            start = time.perf_counter()
            writer.write(PAYLOAD)
            await reader.readexactly(len(PAYLOAD))
            if i >= 10:
                samples.append(time.perf_counter() - start)
        writer.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    return samples


def round_trips_many(port: int, connections: int, per_connection: int) -> list[float]:
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:
        factory = asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(_round_trips_many(port, connections, per_connection))


def throughput(port: int, size: int) -> float:
    """Return MB/s (10^6 bytes) of one connection receiving `size` bytes from the source."""
    buffer = memoryview(bytearray(CHUNK))
    with connect(port) as sock:
        start = time.perf_counter()
        sock.sendall(b"%012d" % size)
        got = 0
        while got < size:
            n = sock.recv_into(buffer)
            if not n:
                break
            got += n
        seconds = time.perf_counter() - start
    if got != size:
        raise RuntimeError(f"received {got} of {size} bytes")
    return size / seconds / 1e6


def activation_ms(api: str, proxy: str, port: int, trials: int) -> list[float]:
    """Time from the API reply adding a 50 ms latency toxic to the first delayed byte sent."""
    results = []
    buffer = bytearray(len(PAYLOAD))
    with connect(port) as sock:
        for _ in range(trials):
            for _ in range(50):
                ping(sock, buffer)
            add_latency(api, proxy, 50)
            replied = time.perf_counter()
            for _ in range(10_000):
                sent = time.perf_counter()
                if ping(sock, buffer) >= 0.025:
                    results.append(max(0.0, sent - replied) * 1000)
                    break
            api_request(f"{api}/proxies/{proxy}/toxics/lat", "DELETE")
    return results


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def micros(seconds: float) -> str:
    return f"{seconds * 1e6:8.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples and a 50 MB transfer")
    args = parser.parse_args()
    count = 1000 if args.quick else 5000
    per_connection = 40 if args.quick else 100
    size = 50_000_000 if args.quick else 200_000_000

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        with (
            upstreams(tmp) as up,
            haproxy(tmp, up["echo"], up["source"]) as ha,
            our_proxy() as api,
            our_proxy("--no-uvloop") as api_asyncio,
        ):
            targets: dict[str, dict[str, int]] = {"direct": up}
            if ha is not None:
                targets["haproxy"] = ha
            for label, url in (("ours", api), ("ours-asyncio", api_asyncio)):
                targets[label] = {
                    "echo": create_proxy(url, "echo", up["echo"]),
                    "source": create_proxy(url, "source", up["source"]),
                }

            rows: dict[str, dict[str, float]] = {}
            for label, ports in targets.items():
                one = round_trips_one(ports["echo"], count)
                many = round_trips_many(ports["echo"], 50, per_connection)
                rows[label] = {
                    "p50_1": statistics.median(one),
                    "p99_1": percentile(one, 0.99),
                    "p50_50": statistics.median(many),
                    "p99_50": percentile(many, 0.99),
                    "mbps": statistics.median(throughput(ports["source"], size) for _ in "abc"),
                }

            base = rows["ours"]["p50_1"]
            accuracy: dict[int, list[float]] = {}
            for delay_ms, samples in (
                (10, 100 if args.quick else 500),
                (100, 20 if args.quick else 60),
            ):
                name = f"lat{delay_ms}"
                port = create_proxy(api, name, up["echo"])
                add_latency(api, name, delay_ms)
                rtts = round_trips_one(port, samples, warmup=3)
                accuracy[delay_ms] = [abs(r - base - delay_ms / 1000) * 1000 for r in rtts]

            act_port = create_proxy(api, "activation", up["echo"])
            activation = activation_ms(api, "activation", act_port, 10)

    direct = rows["direct"]
    print("\nRound trips of 1 KiB through an echo upstream; added = target minus direct.")
    print(
        f"{'target':<14}{'p50 1c µs':>11}{'p99 1c µs':>11}{'added p50':>11}{'added p99':>11}"
        f"{'p50 50c µs':>12}{'p99 50c µs':>12}{'added p50':>11}{'MB/s 1c':>10}"
    )
    for label, row in rows.items():
        print(
            f"{label:<14}{micros(row['p50_1']):>11}{micros(row['p99_1']):>11}"
            f"{micros(row['p50_1'] - direct['p50_1']):>11}"
            f"{micros(row['p99_1'] - direct['p99_1']):>11}"
            f"{micros(row['p50_50']):>12}{micros(row['p99_50']):>12}"
            f"{micros(row['p50_50'] - direct['p50_50']):>11}{row['mbps']:>10.0f}"
        )

    print("\nLatency toxic error (|round trip - set delay - ours p50 without toxic|), ms:")
    for delay_ms, errors in accuracy.items():
        print(
            f"  {delay_ms:>4} ms: median {statistics.median(errors):.3f}  "
            f"p99 {percentile(errors, 0.99):.3f}  (n={len(errors)}; goal median <= 1, p99 <= 3)"
        )
    print(
        f"\nActivation on an open connection, ms: median {statistics.median(activation):.3f}  "
        f"max {max(activation):.3f}  (n={len(activation)}; goal <= 10)"
    )

    if "haproxy" in rows:
        ha_row = rows["haproxy"]
        for label in ("ours", "ours-asyncio"):
            row = rows[label]
            added_1 = (row["p50_1"] - direct["p50_1"]) / (ha_row["p50_1"] - direct["p50_1"])
            added_50 = (row["p50_50"] - direct["p50_50"]) / (ha_row["p50_50"] - direct["p50_50"])
            print(
                f"\n{label}/HAProxy: added p50 1 conn {added_1:.2f}, 50 conns {added_50:.2f} "
                f"(goal <= 1.5); throughput {row['mbps'] / ha_row['mbps']:.2f} (goal >= 0.8)"
            )


if __name__ == "__main__":
    main()
