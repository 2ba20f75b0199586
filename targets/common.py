"""Helpers shared by the reference target's Python services."""

from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response


def env_float(name: str, default: float) -> float:
    """Read a float setting from the environment, failing loudly on a bad value."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise SystemExit(f"invalid {name}={raw!r}: expected a number") from exc


def env_str(name: str, default: str) -> str:
    """Read a string setting from the environment."""
    return os.environ.get(name) or default


def env_bool(name: str, default: bool) -> bool:
    """Read a boolean setting from the environment (true/false, on/off, 1/0)."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "on", "yes"}:
        return True
    if value in {"0", "false", "off", "no"}:
        return False
    raise SystemExit(f"invalid {name}={raw!r}: expected true or false")


async def metrics(request: Request) -> Response:
    """Serve the process's Prometheus metrics."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


async def health(request: Request) -> Response:
    """Report that the instance is up."""
    return JSONResponse({"status": "ok", "instance": env_str("HARNESS_INSTANCE", "unknown")})
