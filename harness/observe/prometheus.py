"""Prometheus probes over a phase window, through prometheus-api-client."""

from __future__ import annotations

import math
import re

import requests
import structlog
from prometheus_api_client import PrometheusConnect

from harness.net import check_loopback

log = structlog.get_logger(__name__)

_SELECTOR = re.compile(
    r"^\s*(?:sum\s*\(\s*(?P<selector>[a-zA-Z_:][\w:]*(?:\{[^}]*\})?)\s*\)"
    r"|(?P<plain>[a-zA-Z_:][\w:]*(?:\{[^}]*\})?))\s*$"
)


class PrometheusProbes:
    """Evaluates PromQL probes at the times of an arm's phases."""

    def __init__(self, url: str) -> None:
        check_loopback(url)
        session = requests.Session()
        session.trust_env = False
        self.client = PrometheusConnect(url=url, disable_ssl=True, session=session, timeout=5)

    def _counter_at(self, query: str, at: float) -> float | None:
        """Return a counter's value at a time, interpolated between the scrapes around it.

        An instant query returns the last scrape before the time, up to one scrape interval
        old, which skews an increase across a phase boundary where the rate changes. For a
        plain selector, or a sum of one, the raw samples around the time are interpolated.
        """
        match = _SELECTOR.match(query)
        if match is None:
            return self._instant(query, at)
        selector = match["selector"] or match["plain"]
        result = self.client.custom_query(f"{selector}[4s]", params={"time": f"{at + 2:.3f}"})
        total: float | None = None
        for series in result:
            points = [(float(ts), float(value)) for ts, value in series["values"]]
            before = [p for p in points if p[0] <= at]
            after = [p for p in points if p[0] > at]
            if before and after:
                (t0, v0), (t1, v1) = before[-1], after[0]
                value = v0 + (v1 - v0) * (at - t0) / (t1 - t0) if v1 >= v0 else v1
            elif before:
                value = before[-1][1]
            elif after:
                value = after[0][1]
            else:
                continue
            total = value if total is None else total + value
        return total

    def read_now(self, query: str) -> float | None:
        """Return the query's value now (a sum over its series), raising on any error.

        Probes read after the fact and tolerate a failed query; a scaler acting on the value
        must not mistake an error for an idle service.
        """
        result = self.client.custom_query(query)
        values = [float(item["value"][1]) for item in result]
        finite = [v for v in values if math.isfinite(v)]
        return sum(finite) if finite else None

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
            if aggregation in ("increase", "rate"):
                first = self._counter_at(query, start)
                last = self._counter_at(query, end)
                if first is None or last is None:
                    return None
                # A counter that restarted within the window counts from zero.
                increase = last if last < first else last - first
                if aggregation == "rate":
                    return increase / (end - start) if end > start else None
                return increase
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
