"""Figures the platform reports of a service (instances, memory), sampled through an arm."""

from __future__ import annotations

import threading
import time

import structlog

from harness.platforms.base import Platform

log = structlog.get_logger(__name__)

SAMPLE_INTERVAL_S = 0.25


class PlatformSampler:
    """Samples `Platform.service_figures` of some services on a thread until stopped.

    Prometheus cannot scrape a process at the moment the kernel kills it, and it scrapes only
    the instances in its target list. The platform reads both, four times a second.
    """

    def __init__(self, platform: Platform, services: list[str]) -> None:
        self.platform = platform
        self.services = sorted(set(services))
        self._samples: list[tuple[float, str, dict[str, float]]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start sampling, if any service is to be sampled."""
        if not self.services:
            return
        self._thread = threading.Thread(target=self._loop, name="platform-sampler", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(SAMPLE_INTERVAL_S)

    def sample(self) -> None:
        """Take one sample of every service now."""
        for service in self.services:
            try:
                figures = self.platform.service_figures(service)
            except Exception as exc:  # a sample lost to a state file being replaced
                log.debug("sampler.skipped", service=service, error=str(exc))
                continue
            self._samples.append((time.time(), service, figures))

    def stop(self) -> None:
        """Take a last sample and stop the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
            self.sample()

    def evaluate(
        self, service: str, figure: str, aggregation: str, start: float, end: float
    ) -> float | None:
        """Return a figure over [start, end] (epoch seconds): max, min, mean, last or increase."""
        values = [
            figures[figure]
            for at, name, figures in list(self._samples)
            if name == service and start <= at <= end and figure in figures
        ]
        if not values:
            return None
        if aggregation == "max":
            return max(values)
        if aggregation == "min":
            return min(values)
        if aggregation == "mean":
            return sum(values) / len(values)
        if aggregation == "last":
            return values[-1]
        return values[-1] - values[0]
