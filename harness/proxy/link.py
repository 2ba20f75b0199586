"""A link: one client connection accepted by a proxy, and its connection to the upstream."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from typing import TYPE_CHECKING, cast

from .log import log_event
from .stream import Stream
from .toxics import Direction

if TYPE_CHECKING:
    from .proxy import Proxy

# Reads from either side go straight to the other side's transport; a larger write buffer means
# fewer pause/resume round trips on bulk transfers.
WRITE_BUFFER_HIGH = 512 * 1024
WRITE_BUFFER_LOW = 128 * 1024

_LINGER_RESET = struct.pack("ii", 1, 0)


def set_nodelay(transport: asyncio.BaseTransport) -> None:
    """Disable Nagle's algorithm, so small writes are not held back waiting for an ACK."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def set_linger_reset(transport: asyncio.BaseTransport) -> None:
    """Make the next close of the socket send a TCP RST instead of a FIN."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)


def format_peer(transport: asyncio.BaseTransport) -> str:
    """Return the transport's peer address as host:port."""
    peer = transport.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return "unknown"


class _SideProtocol(asyncio.Protocol):
    """One side of a link: feeds what it reads into `inbound`, and relays write flow control of
    its transport to `outbound`, the stream that writes to it."""

    __slots__ = ("inbound", "link", "outbound")

    side = ""

    def __init__(self, link: Link) -> None:
        self.link = link
        self.inbound: Stream | None = None
        self.outbound: Stream | None = None

    def data_received(self, data: bytes) -> None:
        inbound = self.inbound
        if inbound is not None:
            inbound.feed(data)
        else:
            self.link.hold_client_data(data)

    def eof_received(self) -> bool:
        if self.inbound is None:
            self.link.hold_client_eof()
        else:
            self.inbound.feed_eof()
        # Keep the transport open: the other direction may still carry data (half-close).
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        reason = f"{self.side} closed" if exc is None else f"{self.side} error: {exc}"
        self.link.close_link(reason)

    def pause_writing(self) -> None:
        if self.outbound is not None:
            self.outbound.pause_writing()

    def resume_writing(self) -> None:
        if self.outbound is not None:
            self.outbound.resume_writing()


class ClientProtocol(_SideProtocol):
    """The accepted client side of a link; creating it opens the upstream connection."""

    side = "client"

    def __init__(self, proxy: Proxy) -> None:
        super().__init__(Link(proxy, self))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.link.client_made(cast(asyncio.Transport, transport))


class UpstreamProtocol(_SideProtocol):
    """The side of a link connected to the proxy's upstream."""

    side = "upstream"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.link.upstream_made(cast(asyncio.Transport, transport), self)


class Link:
    """A client connection through a proxy, its upstream connection, and a stream each way."""

    def __init__(self, proxy: Proxy, client_protocol: ClientProtocol) -> None:
        self.proxy = proxy
        self.loop = asyncio.get_running_loop()
        self.rng = proxy.rng
        self.client_protocol = client_protocol
        self.client: asyncio.Transport | None = None
        self.upstream: asyncio.Transport | None = None
        self.client_address = "unknown"
        self.streams: dict[Direction, Stream] = {}
        self.closed = False
        self._eofs_sent = 0
        self._connect_task: asyncio.Task[None] | None = None
        # Client data read before the upstream connection is open. uvloop starts reading after
        # connection_made returns, so pausing there does not always hold the first bytes back.
        self._held: list[bytes] = []
        self._held_eof = False

    def client_made(self, transport: asyncio.Transport) -> None:
        """Hold the client's data until the upstream connection is open, then open it."""
        self.client = transport
        self.client_address = format_peer(transport)
        set_nodelay(transport)
        self.proxy.link_opened(self)
        self._connect_task = self.loop.create_task(self._connect())

    def hold_client_data(self, data: bytes) -> None:
        """Keep client data that arrived before the upstream connection was open."""
        self._held.append(data)
        if self.client is not None and not self.client.is_closing():
            self.client.pause_reading()

    def hold_client_eof(self) -> None:
        """Remember a client close that arrived before the upstream connection was open."""
        self._held_eof = True

    async def _connect(self) -> None:
        host, port = self.proxy.upstream_address()
        try:
            await self.loop.create_connection(lambda: UpstreamProtocol(self), host, port)
        except OSError as exc:
            log_event(
                "connection.failed",
                logging.WARNING,
                proxy=self.proxy.name,
                client=self.client_address,
                upstream=self.proxy.upstream,
                err=exc.strerror or str(exc),
            )
            self.close_link("upstream connect failed")

    def upstream_made(self, transport: asyncio.Transport, protocol: UpstreamProtocol) -> None:
        """Wire both streams once the upstream connection is open, then let the client talk."""
        if self.closed or self.client is None:
            transport.abort()
            return
        self.upstream = transport
        set_nodelay(transport)
        transport.set_write_buffer_limits(WRITE_BUFFER_HIGH, WRITE_BUFFER_LOW)
        self.client.set_write_buffer_limits(WRITE_BUFFER_HIGH, WRITE_BUFFER_LOW)

        on_activation = self.proxy.count_activation
        upstream_stream = Stream(
            self, Direction.UPSTREAM, self.client, transport, self.rng, on_activation
        )
        downstream_stream = Stream(
            self, Direction.DOWNSTREAM, transport, self.client, self.rng, on_activation
        )
        self.streams = {
            Direction.UPSTREAM: upstream_stream,
            Direction.DOWNSTREAM: downstream_stream,
        }
        self.client_protocol.inbound = upstream_stream
        self.client_protocol.outbound = downstream_stream
        protocol.inbound = downstream_stream
        protocol.outbound = upstream_stream

        log_event(
            "connection.opened",
            proxy=self.proxy.name,
            client=self.client_address,
            upstream=self.proxy.upstream,
        )
        for direction, stream in self.streams.items():
            stream.attach(self.proxy.toxics_on(direction))
        for data in self._held:
            upstream_stream.feed(data)
        self._held.clear()
        if self._held_eof:
            upstream_stream.feed_eof()
        elif not self.closed and not self.client.is_closing():
            self.client.resume_reading()

    def on_eof_sent(self) -> None:
        """Close the link once both directions have forwarded their end of stream."""
        self._eofs_sent += 1
        if self._eofs_sent == 2:
            self.close_link("both sides closed")

    # LinkControl, used by toxics.

    def close_link(self, reason: str) -> None:
        """Close both connections, sending what is buffered first."""
        self._close(reason, reset=False)

    def reset_link(self, reason: str) -> None:
        """Close both connections with a TCP RST (SO_LINGER 0), dropping buffered data."""
        self._close(reason, reset=True)

    def abort_link(self, reason: str) -> None:
        """Close both connections at once, dropping buffered data."""
        self._close(reason, reset=False, abort=True)

    def _close(self, reason: str, reset: bool, abort: bool = False) -> None:
        if self.closed:
            return
        self.closed = True
        for stream in self.streams.values():
            stream.close()
        if self._connect_task is not None and not self._connect_task.done():
            self._connect_task.cancel()

        for transport in (self.client, self.upstream):
            if transport is None:
                continue
            if reset:
                set_linger_reset(transport)
                transport.abort()
            elif abort:
                transport.abort()
            else:
                transport.close()

        self.proxy.link_closed(self)
        log_event(
            "connection.reset" if reset else "connection.closed",
            proxy=self.proxy.name,
            client=self.client_address,
            reason=reason,
        )

    def bytes_by_direction(self) -> dict[Direction, tuple[int, int]]:
        """Return bytes received and sent so far per direction."""
        return {
            direction: (stream.bytes_received, stream.bytes_sent)
            for direction, stream in self.streams.items()
        }
