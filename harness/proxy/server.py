"""The server: the API listener, the proxy collection, and the seeded random source."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from pathlib import Path

from .api import ToxiproxyApi
from .collection import PopulateError, ProxyCollection
from .errors import ApiError
from .http import serve_connection
from .log import log_event
from .proxy import Proxy
from .schema import parse_proxy_list


class ConfigError(Exception):
    """A config file that cannot be read, parsed or applied."""


class ToxiproxyServer:
    """A Toxiproxy-compatible server that runs on the current event loop.

    `seed` makes jitter, slicer sizes and toxicity draws repeatable for the same sequence of
    connections and API calls.
    """

    def __init__(self, seed: int | None = None) -> None:
        self.rng = random.Random(seed)
        self.collection = ProxyCollection(self.rng)
        self.api = ToxiproxyApi(self.collection)
        self._server: asyncio.Server | None = None
        self._api_writers: set[asyncio.StreamWriter] = set()

    async def start(self, host: str, port: int) -> tuple[str, int]:
        """Listen for API requests; return the bound host and port. Raise OSError on failure."""
        self._server = await asyncio.start_server(self._serve_api, host, port, reuse_address=True)
        bound = self._server.sockets[0].getsockname()
        log_event("server.started", api=f"{bound[0]}:{bound[1]}")
        return str(bound[0]), int(bound[1])

    async def _serve_api(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._api_writers.add(writer)
        try:
            await serve_connection(reader, writer, self.api.handle, self.api.parse_error_response)
        finally:
            self._api_writers.discard(writer)

    async def load_config(self, path: Path) -> list[Proxy]:
        """Create the proxies listed in a JSON config file, as POST /populate does."""
        try:
            data = json.loads(path.read_text())
            proxies = await self.collection.populate(parse_proxy_list(data))
        except OSError as exc:
            raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from exc
        except json.JSONDecodeError as exc:
            raise ConfigError(f"config {path} is not valid JSON: {exc}") from exc
        except PopulateError as exc:
            raise ConfigError(f"config {path}: {exc.error.message}") from exc
        except ApiError as exc:
            raise ConfigError(f"config {path}: {exc.message}") from exc
        log_event("config.loaded", config=str(path), proxies=len(proxies))
        return proxies

    async def close(self) -> None:
        """Stop every proxy and the API listener, and close open API connections."""
        self.collection.stop_all()
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._api_writers):
            writer.close()
        log_event("server.stopped")


async def serve(
    host: str = "127.0.0.1",
    port: int = 8474,
    seed: int | None = None,
    config: Path | None = None,
    stop: asyncio.Event | None = None,
    on_ready: Callable[[str, int], None] | None = None,
) -> None:
    """Run a server until `stop` is set (or the task is cancelled).

    Raise OSError when the API address cannot be bound, and ConfigError for a bad config file.
    `on_ready` receives the bound API host and port once the config file's proxies exist.
    """
    server = ToxiproxyServer(seed)
    bound_host, bound_port = await server.start(host, port)
    try:
        if config is not None:
            await server.load_config(config)
        if on_ready is not None:
            on_ready(bound_host, bound_port)
        await (stop or asyncio.Event()).wait()
    finally:
        await server.close()
