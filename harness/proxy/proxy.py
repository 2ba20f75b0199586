"""A proxy: a named listener that forwards each accepted connection to its upstream."""

from __future__ import annotations

import asyncio
import random
import socket
from collections import Counter
from dataclasses import dataclass, field

from .address import DEFAULT_HOST, format_address, resolve, split_host_port
from .errors import TOXIC_NOT_FOUND, ListenError, NotFoundError
from .link import ClientProtocol, Link
from .log import log_event
from .toxics import Direction, Toxic

LISTEN_BACKLOG = 1024


@dataclass
class ProxyTotals:
    """Counters of a proxy that outlive its connections, for the metrics endpoint."""

    connections: int = 0
    received: Counter[Direction] = field(default_factory=Counter)
    sent: Counter[Direction] = field(default_factory=Counter)
    activations: Counter[str] = field(default_factory=Counter)


class Proxy:
    """A listener, its upstream, its toxics per stream, and its open links."""

    def __init__(self, name: str, listen: str, upstream: str, rng: random.Random) -> None:
        self.name = name
        self.listen = listen
        self.upstream = upstream
        self.rng = rng
        self.enabled = False
        self.toxics: dict[Direction, list[Toxic]] = {d: [] for d in Direction}
        self.links: set[Link] = set()
        self.totals = ProxyTotals()
        self._server: asyncio.Server | None = None

    def to_json(self) -> dict[str, object]:
        """Return the proxy as the Toxiproxy API shows it."""
        return {
            "name": self.name,
            "listen": self.listen,
            "upstream": self.upstream,
            "enabled": self.enabled,
            "toxics": [toxic.to_json() for toxic in self.all_toxics()],
        }

    def upstream_address(self) -> tuple[str, int]:
        """Return the upstream as host and port."""
        return split_host_port(self.upstream)

    # Listener.

    async def start(self) -> None:
        """Bind the listen address and accept connections; raise ListenError if it fails.

        The socket is bound by hand so that a failure leaves nothing bound, and so that the
        replies show the port that port 0 picked.
        """
        if self.enabled:
            return
        loop = asyncio.get_running_loop()
        try:
            host, port = split_host_port(self.listen)
            family, sockaddr = await resolve(host, port, loop, passive=True)
        except (OSError, ValueError) as exc:
            raise ListenError(f"listen tcp {self.listen}: {_os_error_text(exc)}") from exc

        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(sockaddr)
            sock.listen(LISTEN_BACKLOG)
            sock.setblocking(False)
            self._server = await loop.create_server(
                lambda: ClientProtocol(self), sock=sock, backlog=LISTEN_BACKLOG
            )
        except OSError as exc:
            sock.close()
            address = format_address(sockaddr[0], sockaddr[1])
            raise ListenError(f"listen tcp {address}: bind: {_os_error_text(exc)}") from exc

        bound = sock.getsockname()
        self.listen = format_address(str(bound[0]), int(bound[1]))
        self.enabled = True
        log_event("proxy.enabled", proxy=self.name, listen=self.listen, upstream=self.upstream)

    def stop(self) -> None:
        """Close the listener and every open link."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for link in list(self.links):
            link.abort_link("proxy disabled")
        if self.enabled:
            self.enabled = False
            log_event("proxy.disabled", proxy=self.name, listen=self.listen)

    # Links.

    def link_opened(self, link: Link) -> None:
        """Register a new link."""
        self.links.add(link)
        self.totals.connections += 1

    def link_closed(self, link: Link) -> None:
        """Forget a closed link, keeping its byte counts in the totals."""
        if link in self.links:
            self.links.discard(link)
            for direction, (received, sent) in link.bytes_by_direction().items():
                self.totals.received[direction] += received
                self.totals.sent[direction] += sent

    def count_activation(self, toxic: Toxic) -> None:
        """Count one activation of a toxic on a connection."""
        self.totals.activations[toxic.name] += 1

    def bytes_totals(self) -> tuple[Counter[Direction], Counter[Direction]]:
        """Return bytes received and sent per direction, closed and open links together."""
        received = Counter(self.totals.received)
        sent = Counter(self.totals.sent)
        for link in self.links:
            for direction, (link_received, link_sent) in link.bytes_by_direction().items():
                received[direction] += link_received
                sent[direction] += link_sent
        return received, sent

    # Toxics.

    def all_toxics(self) -> list[Toxic]:
        """Return every toxic, upstream ones first, each stream in chain order."""
        return [*self.toxics[Direction.UPSTREAM], *self.toxics[Direction.DOWNSTREAM]]

    def toxics_on(self, direction: Direction) -> list[Toxic]:
        """Return the chain of toxics on one stream."""
        return list(self.toxics[direction])

    def find_toxic(self, name: str) -> Toxic | None:
        """Return the toxic with this name on either stream, or None."""
        for toxic in self.all_toxics():
            if toxic.name == name:
                return toxic
        return None

    def get_toxic(self, name: str) -> Toxic:
        """Return the toxic with this name; raise NotFoundError when there is none."""
        toxic = self.find_toxic(name)
        if toxic is None:
            raise NotFoundError(TOXIC_NOT_FOUND)
        return toxic

    def add_toxic(self, toxic: Toxic) -> None:
        """Append a toxic to its stream's chain on the proxy and on every open link."""
        self.toxics[toxic.stream].append(toxic)
        for link in list(self.links):
            stream = link.streams.get(toxic.stream)
            if stream is not None:
                stream.add_toxic(toxic)
        log_event(
            "toxic.added",
            proxy=self.name,
            toxic=toxic.name,
            type=toxic.type_name,
            stream=str(toxic.stream),
            toxicity=toxic.toxicity,
            **toxic.attributes,
        )

    def replace_toxic(self, toxic: Toxic) -> None:
        """Put a changed toxic in place of the one with the same name."""
        chain = self.toxics[toxic.stream]
        index = next(i for i, old in enumerate(chain) if old.name == toxic.name)
        chain[index] = toxic
        for link in list(self.links):
            stream = link.streams.get(toxic.stream)
            if stream is not None:
                stream.replace_toxic(toxic)
        log_event(
            "toxic.updated",
            proxy=self.name,
            toxic=toxic.name,
            toxicity=toxic.toxicity,
            **toxic.attributes,
        )

    def remove_toxic(self, name: str) -> None:
        """Remove a toxic from the proxy and from every open link."""
        toxic = self.get_toxic(name)
        self.toxics[toxic.stream].remove(toxic)
        self.totals.activations.pop(name, None)
        for link in list(self.links):
            stream = link.streams.get(toxic.stream)
            if stream is not None:
                stream.remove_toxic(name)
        log_event("toxic.removed", proxy=self.name, toxic=name)

    def remove_all_toxics(self) -> None:
        """Remove every toxic, as /reset does."""
        for toxic in self.all_toxics():
            self.remove_toxic(toxic.name)


def _os_error_text(exc: BaseException) -> str:
    # "address already in use" reads like Go's net errors, which clients may already match on.
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror[:1].lower() + exc.strerror[1:]
    return str(exc)


__all__ = ["DEFAULT_HOST", "Proxy"]
