"""A headless Locust run in a child process, bounded in time and in request count.

Every request becomes one record `[start_time, name, response_time_ms, ok, status]` in a
JSON-lines file; once a second the worker prints a progress line on stdout. Run it as
`python -m harness.load.worker --host URL --user-class NAME --users N ...`.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import signal
import sys
import time
from pathlib import Path
from typing import Any

import gevent
from locust import LoadTestShape
from locust.env import Environment

from harness.load.users import USER_CLASSES


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="harness.load.worker")
    parser.add_argument("--host", required=True, help="base URL of the edge")
    parser.add_argument("--user-class", required=True, help="names, comma-separated")
    parser.add_argument("--users", type=int, required=True, help="concurrent users")
    parser.add_argument("--spawn-rate", type=float, required=True, help="users started per s")
    parser.add_argument("--duration", type=float, required=True, help="run time in s")
    parser.add_argument("--max-requests", type=int, required=True, help="stop after this many")
    parser.add_argument("--records", type=Path, required=True, help="JSON-lines output file")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--ramp",
        type=float,
        default=None,
        help="follow a ramp load shape: reach --users in this many s, then hold",
    )
    return parser.parse_args(argv)


class RampShape(LoadTestShape):
    """A Locust load shape: users climb in one-second steps to a peak over `ramp_s`, hold
    there, and the run ends after `duration`."""

    def __init__(self, users: int, ramp_s: float, duration: float) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.users = users
        self.ramp_s = ramp_s
        self.duration = duration

    def tick(self) -> tuple[int, float] | None:
        """Return the users wanted now and the rate to reach them, or None to end the run."""
        elapsed = self.get_run_time()  # type: ignore[no-untyped-call]
        if elapsed >= self.duration:
            return None
        if self.ramp_s <= 0 or elapsed >= self.ramp_s:
            return self.users, float(self.users)
        step = max(1, math.ceil(self.users * (math.floor(elapsed) + 1) / self.ramp_s))
        return min(step, self.users), float(self.users)


def main(argv: list[str] | None = None) -> int:
    """Run the load and write its records; return the exit status."""
    args = _parse(sys.argv[1:] if argv is None else argv)
    random.seed(args.seed)

    names = args.user_class.split(",")
    unknown = [name for name in names if name not in USER_CLASSES]
    if unknown:
        raise SystemExit(f"--user-class: unknown {', '.join(unknown)}; known: "
                         f"{', '.join(sorted(USER_CLASSES))}")  # fmt: skip
    shape = RampShape(args.users, args.ramp, args.duration) if args.ramp is not None else None
    env = Environment(user_classes=[USER_CLASSES[name] for name in names], host=args.host,
                      shape_class=shape)  # fmt: skip
    runner = env.create_local_runner()
    out = args.records.open("w", buffering=1)
    pending: list[list[Any]] = []
    totals = {"requests": 0, "failures": 0}
    # Response times and failures completed since the last progress line.
    second: list[float] = []
    second_failures = [0]

    def on_request(
        name: str,
        response_time: float,
        exception: BaseException | None,
        start_time: float | None = None,
        response: Any = None,
        **_: Any,
    ) -> None:
        started = start_time if start_time is not None else time.time() - response_time / 1000
        status = getattr(response, "status_code", 0) or 0
        pending.append([round(started, 4), name, round(response_time, 3), exception is None,
                        status])  # fmt: skip
        totals["requests"] += 1
        second.append(response_time)
        if exception is not None:
            totals["failures"] += 1
            second_failures[0] += 1
        if totals["requests"] == args.max_requests:
            gevent.spawn(runner.quit)

    env.events.request.add_listener(on_request)  # type: ignore[no-untyped-call]

    def flush() -> None:
        for record in pending:
            out.write(json.dumps(record) + "\n")
        pending.clear()

    def report_every_second() -> None:
        while True:
            gevent.sleep(1.0)
            flush()
            ordered = sorted(second)
            progress = {
                "t": time.time(),
                "requests": len(ordered),
                "failures": second_failures[0],
                "p95": ordered[max(math.ceil(0.95 * len(ordered)) - 1, 0)] if ordered else None,
                "users": runner.user_count,
            }
            second.clear()
            second_failures[0] = 0
            print(json.dumps(progress), flush=True)

    gevent.signal_handler(signal.SIGTERM, lambda: gevent.spawn(runner.quit))
    reporter = gevent.spawn(report_every_second)
    if shape is not None:
        runner.start_shape()
    else:
        runner.start(args.users, spawn_rate=args.spawn_rate)
    gevent.spawn_later(args.duration, runner.quit)
    assert runner.greenlet is not None
    runner.greenlet.join()
    reporter.kill()
    flush()
    out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
