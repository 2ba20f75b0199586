"""A Toxiproxy-compatible fault proxy on asyncio, used when `toxiproxy-server` is not on PATH.

Run it as `python -m harness.proxy --port 0`, or in-process with `serve()` or
`ToxiproxyServer`.
"""

from __future__ import annotations

from .api import VERSION
from .server import ConfigError, ToxiproxyServer, serve

__all__ = ["VERSION", "ConfigError", "ToxiproxyServer", "serve"]
