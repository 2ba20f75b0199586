"""Structured log lines: an event name followed by key=value fields, one line per event."""

from __future__ import annotations

import json
import logging

logger = logging.getLogger("harness.proxy")


def format_fields(event: str, fields: dict[str, object]) -> str:
    """Return `event=NAME key=value ...`, quoting values that contain spaces or quotes."""
    parts = [f"event={event}"]
    for key, value in fields.items():
        text = str(value)
        if not text or any(ch in text for ch in ' "=\n'):
            text = json.dumps(text)
        parts.append(f"{key}={text}")
    return " ".join(parts)


def log_event(event: str, level: int = logging.INFO, **fields: object) -> None:
    """Log one event with its fields, e.g. `log_event("proxy.created", proxy="db")`."""
    if logger.isEnabledFor(level):
        logger.log(level, format_fields(event, fields))


def configure_logging(level: str) -> None:
    """Send this package's logs to stderr, one line each, prefixed with time and level."""
    handler = logging.StreamHandler()
    handler.setFormatter(
        logging.Formatter("time=%(asctime)s level=%(levelname)s %(message)s", "%Y-%m-%dT%H:%M:%S")
    )
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
