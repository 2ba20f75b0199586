"""Parse, resolve and format host:port addresses."""

from __future__ import annotations

import asyncio
import socket

# An empty host binds and connects to loopback only, so that a proxy is never exposed on every
# interface by accident (Toxiproxy binds all interfaces for an empty host).
DEFAULT_HOST = "127.0.0.1"


def split_host_port(address: str) -> tuple[str, int]:
    """Split "host:port" or "[v6]:port"; raise ValueError for anything else."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ValueError(f"address {address!r} is not host:port")
    port = int(port_text)
    if port > 65535:
        raise ValueError(f"port {port} in {address!r} is above 65535")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host or DEFAULT_HOST, port


def format_address(host: str, port: int) -> str:
    """Join host and port, bracketing IPv6 hosts."""
    if ":" in host:
        return f"[{host}]:{port}"
    return f"{host}:{port}"


async def resolve(
    host: str, port: int, loop: asyncio.AbstractEventLoop, passive: bool
) -> tuple[socket.AddressFamily, tuple[str, int]]:
    """Resolve host to one socket address, preferring IPv4 as `localhost` users expect."""
    flags = socket.AI_PASSIVE if passive else 0
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=flags)
    if not infos:
        raise OSError(f"no address found for {host}")
    for family, _type, _proto, _name, sockaddr in infos:
        if family == socket.AF_INET:
            return family, (str(sockaddr[0]), int(sockaddr[1]))
    family, _type, _proto, _name, sockaddr = infos[0]
    return family, (str(sockaddr[0]), int(sockaddr[1]))


async def canonical_listen(address: str, loop: asyncio.AbstractEventLoop) -> str:
    """Return the listen address with its host resolved, so `localhost:P` equals `127.0.0.1:P`."""
    host, port = split_host_port(address)
    try:
        _family, (ip, resolved_port) = await resolve(host, port, loop, passive=True)
    except OSError:
        return format_address(host, port)
    return format_address(ip, resolved_port)
