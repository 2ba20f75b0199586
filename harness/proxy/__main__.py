"""Command line: `harness-toxiproxy` or `python -m harness.proxy`.

Exit status: 0 after SIGTERM or SIGINT, 1 when the API address cannot be bound or the config
file is invalid, 2 for invalid command-line arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from .api import VERSION
from .log import configure_logging
from .server import ConfigError, serve

PROGRAM = "harness-toxiproxy"


def build_parser() -> argparse.ArgumentParser:
    """Return the parser; each option also has Toxiproxy's single-dash spelling."""
    env = os.environ.get
    config = env("HARNESS_PROXY_CONFIG")
    seed = env("HARNESS_SEED")

    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        description="Serve the Toxiproxy HTTP API and inject network faults into TCP proxies.",
    )
    parser.add_argument(
        "--host",
        "-host",
        default=env("HARNESS_PROXY_HOST", "127.0.0.1"),
        help="address the API listens on (env HARNESS_PROXY_HOST; default 127.0.0.1)",
    )
    parser.add_argument(
        "--port",
        "-port",
        type=int,
        default=int(env("HARNESS_PROXY_PORT", "8474")),
        help="API port; 0 picks a free one (env HARNESS_PROXY_PORT; default 8474)",
    )
    parser.add_argument(
        "--config",
        "-config",
        type=Path,
        default=Path(config) if config else None,
        help="JSON file with a list of proxies to create at start (env HARNESS_PROXY_CONFIG)",
    )
    parser.add_argument(
        "--seed",
        "-seed",
        type=int,
        default=int(seed) if seed else None,
        help="seed for jitter, slicer sizes and toxicity draws (env HARNESS_SEED)",
    )
    parser.add_argument(
        "--log-level",
        "-log-level",
        default=env("HARNESS_PROXY_LOG_LEVEL", "info"),
        choices=["debug", "info", "warning", "error"],
        help="lowest level logged to stderr (env HARNESS_PROXY_LOG_LEVEL; default info)",
    )
    parser.add_argument(
        "--no-uvloop",
        action="store_true",
        default=bool(env("HARNESS_PROXY_NO_UVLOOP")),
        help="use the standard asyncio event loop even when uvloop is installed "
        "(env HARNESS_PROXY_NO_UVLOOP)",
    )

    # Toxiproxy's metrics flags are accepted so its start scripts work; metrics are always on.
    parser.add_argument("--proxy-metrics", "-proxy-metrics", action="store_true", help="ignored")
    parser.add_argument(
        "--runtime-metrics", "-runtime-metrics", action="store_true", help="ignored"
    )
    parser.add_argument("--version", "-version", action="version", version=f"%(prog)s {VERSION}")
    return parser


def loop_factory(no_uvloop: bool) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """Return uvloop's loop factory when it is installed and wanted, else None (asyncio's)."""
    if no_uvloop:
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


async def run(args: argparse.Namespace) -> int:
    """Serve until SIGTERM or SIGINT; return the exit status."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    def announce(host: str, port: int) -> None:
        print(f"{PROGRAM} listening on {host}:{port}", flush=True)

    try:
        await serve(args.host, args.port, args.seed, args.config, stop, announce)
    except ConfigError as exc:
        print(f"{PROGRAM}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        reason = exc.strerror or str(exc)
        print(f"{PROGRAM}: cannot listen on {args.host}:{args.port}: {reason}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> None:
    """Run the server from the command line."""
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level)
    coroutine: Coroutine[Any, Any, int] = run(args)
    with asyncio.Runner(loop_factory=loop_factory(args.no_uvloop)) as runner:
        status = runner.run(coroutine)
    sys.exit(status)


if __name__ == "__main__":
    main()
