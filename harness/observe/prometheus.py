"""Prometheus probes over a phase window, through prometheus-api-client."""

from __future__ import annotations

import math

import requests
import structlog
from prometheus_api_client import PrometheusConnect

from harness.net import check_loopback

log = structlog.get_logger(__name__)


class PrometheusProbes:
    """Evaluates PromQL probes at the times of an arm's phases."""

    def __init__(self, url: str) -> None:
        check_loopback(url)
        session = requests.Session()
        session.trust_env = False
        self.client = PrometheusConnect(url=url, disable_ssl=True, session=session, timeout=5)

    def _instant(self, query: str, at: float) -> float | None:
        result = self.client.custom_query(query, params={"time": f"{at:.3f}"})
        values = [float(item["value"][1]) for item in result]
        finite = [v for v in values if math.isfinite(v)]
        return sum(finite) if finite else None

    def _range(self, query: str, start: float, end: float) -> list[float]:
        result = self.client.custom_query_range(
            query,
            start_time=_datetime(start),
            end_time=_datetime(end),
            step="1s",
        )
        by_time: dict[float, float] = {}
        for series in result:
            for ts, value in series["values"]:
                number = float(value)
                if math.isfinite(number):
                    by_time[float(ts)] = by_time.get(float(ts), 0.0) + number
        return [by_time[t] for t in sorted(by_time)]

    def evaluate(self, query: str, aggregation: str, start: float, end: float) -> float | None:
        """Return the probe's value over [start, end] (epoch seconds), or None without data."""
        try:
            if aggregation == "increase":
                first = self._instant(query, start)
                last = self._instant(query, end)
                if first is None or last is None:
                    return None
                if last < first:
                    # The counter restarted within the window.
                    return last
                return last - first
            if aggregation == "last":
                return self._instant(query, end)
            values = self._range(query, start, end)
        except Exception as exc:
            log.warning("probe.failed", query=query, error=str(exc))
            return None
        if not values:
            return None
        if aggregation == "max":
            return max(values)
        return sum(values) / len(values)


def _datetime(epoch: float) -> object:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, tz=UTC)
