"""A scaler in the harness: it sizes a service from a Prometheus query while an arm runs."""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field

import structlog
from prometheus_api_client.exceptions import PrometheusApiClientException

from harness.errors import InvalidInput
from harness.experiment import Autoscale
from harness.observe.prometheus import PrometheusProbes
from harness.platforms.base import Platform
from harness.result import ScaleEvent

log = structlog.get_logger(__name__)


def wanted(value: float | None, rule: Autoscale, current: int) -> int:
    """Return the instance count a reading calls for, or the current count without a reading."""
    if value is None:
        return current
    return max(rule.min, min(rule.max, math.ceil(value / rule.target - 1e-9)))


@dataclass
class Autoscaler:
    """Reads the rule's query every interval and scales the service on its own thread.

    Scaling up happens at once; scaling down waits until every wanted count of the last
    `down_after` seconds was lower, then goes to the highest of them. Each change is a
    `ScaleEvent` with the time it was decided and the time its instances were ready, in seconds
    since `origin`.

    NOTE: the scaler changes the platform's state from its own thread; a fault of the same arm
    that kills, restarts or scales instances of the scaled service may race with it.
    """

    platform: Platform
    rule: Autoscale
    origin: float
    events: list[ScaleEvent] = field(default_factory=list)
    error: str | None = None

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._probes = PrometheusProbes(self.platform.prometheus())
        self._history: list[tuple[float, int]] = []

    def check_query(self) -> None:
        """Read the query once; raise InvalidInput when Prometheus rejects it."""
        try:
            self._probes.read_now(self.rule.promql)
        except PrometheusApiClientException as exc:
            raise InvalidInput(
                f"autoscale.promql: invalid value {self.rule.promql!r}: Prometheus returned "
                f"{str(exc)[:200]}"
            ) from None

    def start(self) -> None:
        """Start the scaler's thread."""
        self._thread = threading.Thread(target=self._loop, name="autoscaler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread; a scale in progress finishes first."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60.0)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.step(time.time())
            except Exception as exc:
                # The arm's figures show the failure; the run goes on without the scaler.
                self.error = f"{type(exc).__name__}: {exc}"
                log.error("autoscale.failed", error=self.error)
                return
            self._stop.wait(self.rule.interval)

    def step(self, now: float) -> None:
        """Read the query once and scale when the rule calls for a change."""
        current = len(self.platform.instances(self.rule.service))
        value = self._probes.read_now(self.rule.promql)
        want = wanted(value, self.rule, current)
        self._history = [(t, w) for t, w in self._history if t > now - self.rule.down_after]
        self._history.append((now, want))
        if want > current:
            self._scale(current, want, value, now)
        elif want < current:
            settled = now - self._history[0][0] >= self.rule.down_after - self.rule.interval
            highest = max(w for _, w in self._history)
            if settled and highest < current:
                self._scale(current, highest, value, now)

    def _scale(self, current: int, count: int, value: float | None, now: float) -> None:
        log.info("autoscale.scaling", service=self.rule.service, instances=current, to=count,
                 reading=value)  # fmt: skip
        self.platform.scale(self.rule.service, count)
        self.events.append(
            ScaleEvent(
                service=self.rule.service,
                before=current,
                after=count,
                reading=value,
                decided_at=now - self.origin,
                ready_at=time.time() - self.origin,
            )
        )


def settled_count(events: list[ScaleEvent], fault_start: float, fault_end: float) -> int | None:
    """Return the instance count the service ran longest within the fault window (the higher
    one on a tie), counting each change from the time its instances were ready."""
    if not events:
        return None
    count = events[0]["before"]
    at = fault_start
    held: dict[int, float] = {}
    for event in sorted(events, key=lambda e: e["ready_at"]):
        if event["ready_at"] > at:
            until = min(event["ready_at"], fault_end)
            held[count] = held.get(count, 0.0) + max(until - at, 0.0)
            at = until
        count = event["after"]
    held[count] = held.get(count, 0.0) + max(fault_end - at, 0.0)
    return max(held, key=lambda c: (held[c], c))


def scale_up_lag(events: list[ScaleEvent], fault_start: float, fault_end: float) -> float | None:
    """Return the seconds from the fault's start until capacity: until the first scale-up
    decided within the fault window to the settled count (or more) had its instances ready.

    The settled count is the one the service ran longest within the window, so a brief extra
    instance, or a scale-down and up again around that count, does not move the lag.
    """
    settled = settled_count(events, fault_start, fault_end)
    ups = [e for e in events if e["after"] > e["before"] and
           fault_start <= e["decided_at"] <= fault_end and
           settled is not None and e["after"] >= settled]  # fmt: skip
    if not ups:
        return None
    return min(e["ready_at"] for e in ups) - fault_start
