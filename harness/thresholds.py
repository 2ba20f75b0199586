"""Parse and evaluate hypothesis expressions such as `p95 < 300ms` or `error_rate > 20%`."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

LATENCY_METRICS = frozenset({"p50", "p90", "p95", "p99", "p999", "max", "mean"})
RATE_METRICS = frozenset({"error_rate"})
TIME_METRICS = frozenset({"time_to_detect", "time_to_recover", "scale_up_lag"})
COUNT_METRICS = frozenset({"rps", "requests", "failures"})
# Figures of a whole arm rather than of one phase's requests.
ARM_METRICS = TIME_METRICS | {"failures_after_scale_up"}
CLIENT_METRICS = LATENCY_METRICS | RATE_METRICS | COUNT_METRICS | ARM_METRICS

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}

_EXPRESSION = re.compile(
    r"^\s*(?P<metric>[a-z_][a-z0-9_]*)\s*(?P<op><=|>=|==|!=|<|>)\s*"
    r"(?P<value>[-+]?(?:\d+(?:\.\d*)?|\.\d+))\s*(?P<unit>ms|s|%|x)?\s*$"
)


@dataclass(frozen=True)
class Threshold:
    """A parsed hypothesis expression; value is in the metric's own unit (ms, s or fraction)."""

    metric: str
    op: str
    value: float
    text: str

    def holds(self, observed: float | None) -> bool:
        """Tell whether an observed value satisfies the threshold; no value never does."""
        if observed is None:
            return False
        return OPERATORS[self.op](observed, self.value)


def parse(text: str, probes: frozenset[str] = frozenset()) -> Threshold:
    """Parse an expression; raise ValueError naming what is wrong and what is valid."""
    match = _EXPRESSION.match(text)
    if match is None:
        raise ValueError(
            "expected `<metric> <op> <number>[unit]` with op one of < <= > >= == != "
            "and unit one of ms, s, %, x (for example `p95 < 300ms`)"
        )
    metric, op, unit = match["metric"], match["op"], match["unit"]
    value = float(match["value"])
    if metric not in CLIENT_METRICS and metric not in probes:
        known = ", ".join(sorted(CLIENT_METRICS | probes))
        raise ValueError(f"unknown metric {metric!r}; known metrics: {known}")
    return Threshold(metric, op, _normalise(metric, value, unit), text.strip())


def _normalise(metric: str, value: float, unit: str | None) -> float:
    if metric in LATENCY_METRICS:
        if unit in (None, "ms"):
            return value
        if unit == "s":
            return value * 1000.0
        raise ValueError(f"unit {unit!r} does not fit latency metric {metric}; use ms or s")
    if metric in TIME_METRICS:
        if unit in (None, "s"):
            return value
        if unit == "ms":
            return value / 1000.0
        raise ValueError(f"unit {unit!r} does not fit time metric {metric}; use s or ms")
    if metric in RATE_METRICS:
        if unit == "%":
            return value / 100.0
        if unit is None:
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"error_rate {value} is not a fraction; use 0..1 or a % unit")
            return value
        raise ValueError(f"unit {unit!r} does not fit error_rate; use a fraction or %")
    if unit == "%":
        return value / 100.0
    if unit in ("ms", "s"):
        raise ValueError(f"unit {unit!r} does not fit metric {metric}; give a plain number")
    return value
