"""The set of proxies by name, and the operations of the API that change it."""

from __future__ import annotations

import asyncio
import random

from .address import canonical_listen
from .errors import (
    PROXY_EXISTS,
    PROXY_NOT_FOUND,
    TOXIC_EXISTS,
    ApiError,
    ConflictError,
    NotFoundError,
)
from .log import log_event
from .proxy import Proxy
from .schema import ProxyChange, ProxyRequest, ToxicRequest, build_toxic
from .toxics import Toxic


class PopulateError(Exception):
    """A /populate that stopped part way: the error and the proxies created before it."""

    def __init__(self, error: ApiError, proxies: list[Proxy]) -> None:
        super().__init__(error.message)
        self.error = error
        self.proxies = proxies


class ProxyCollection:
    """Every proxy of the server, by name, with the rules for creating and changing them.

    API handlers run on one event loop and the operations below do not await between checking a
    name and using it, except while binding, so a lock guards the operations that bind.
    """

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.proxies: dict[str, Proxy] = {}
        self._lock = asyncio.Lock()

    def get(self, name: str) -> Proxy:
        """Return the proxy with this name; raise NotFoundError when there is none."""
        proxy = self.proxies.get(name)
        if proxy is None:
            raise NotFoundError(PROXY_NOT_FOUND)
        return proxy

    async def create(self, request: ProxyRequest) -> Proxy:
        """Create and start a proxy; the name is checked before anything is bound."""
        async with self._lock:
            if request.name in self.proxies:
                raise ConflictError(PROXY_EXISTS)
            return await self._start_new(request)

    async def _start_new(self, request: ProxyRequest) -> Proxy:
        proxy = Proxy(request.name, request.listen, request.upstream, self.rng)
        if request.enabled:
            await proxy.start()
        self.proxies[proxy.name] = proxy
        log_event(
            "proxy.created",
            proxy=proxy.name,
            listen=proxy.listen,
            upstream=proxy.upstream,
            enabled=proxy.enabled,
        )
        return proxy

    async def populate(self, requests: list[ProxyRequest]) -> list[Proxy]:
        """Create or replace proxies in order; raise PopulateError at the first that fails.

        An existing proxy with the same name, listen and upstream is kept with its connections.
        """
        loop = asyncio.get_running_loop()
        done: list[Proxy] = []
        async with self._lock:
            for request in requests:
                existing = self.proxies.get(request.name)
                if existing is not None:
                    same_listen = await canonical_listen(
                        existing.listen, loop
                    ) == await canonical_listen(request.listen, loop)
                    if same_listen and existing.upstream == request.upstream:
                        done.append(existing)
                        continue
                    self._delete(existing)
                try:
                    done.append(await self._start_new(request))
                except ApiError as exc:
                    raise PopulateError(exc, done) from exc
        return done

    async def update(self, name: str, change: ProxyChange) -> Proxy:
        """Apply an update: new listen or upstream restarts the proxy; `enabled` starts or stops it.

        A listen that cannot be bound raises ListenError and leaves the proxy disabled.
        """
        async with self._lock:
            proxy = self.get(name)
            listen = proxy.listen if change.listen is None else change.listen
            upstream = proxy.upstream if change.upstream is None else change.upstream
            enabled = proxy.enabled if change.enabled is None else change.enabled

            if listen != proxy.listen or upstream != proxy.upstream:
                proxy.stop()
                proxy.listen = listen
                proxy.upstream = upstream
            if enabled and not proxy.enabled:
                # A failed bind leaves the proxy disabled, and the error goes to the client.
                await proxy.start()
            elif not enabled and proxy.enabled:
                proxy.stop()
            log_event(
                "proxy.updated",
                proxy=proxy.name,
                listen=proxy.listen,
                upstream=proxy.upstream,
                enabled=proxy.enabled,
            )
            return proxy

    def delete(self, name: str) -> None:
        """Stop and remove a proxy."""
        self._delete(self.get(name))

    def _delete(self, proxy: Proxy) -> None:
        proxy.stop()
        del self.proxies[proxy.name]
        log_event("proxy.deleted", proxy=proxy.name)

    async def reset(self) -> None:
        """Enable every proxy and remove every toxic."""
        async with self._lock:
            for proxy in list(self.proxies.values()):
                await proxy.start()
                proxy.remove_all_toxics()
        log_event("server.reset", proxies=len(self.proxies))

    def add_toxic(self, proxy: Proxy, request: ToxicRequest) -> Toxic:
        """Add a toxic after checking that its name is unused on both streams."""
        if proxy.find_toxic(request.name) is not None:
            raise ConflictError(TOXIC_EXISTS)
        toxic = build_toxic(request)
        proxy.add_toxic(toxic)
        return toxic

    def stop_all(self) -> None:
        """Stop every proxy, closing its listener and connections."""
        for proxy in self.proxies.values():
            proxy.stop()
