"""Hypothesis expressions: parsing, units and evaluation."""

from __future__ import annotations

import pytest

from harness import thresholds


@pytest.mark.parametrize(
    ("text", "metric", "op", "value"),
    [
        ("p95 < 300ms", "p95", "<", 300.0),
        ("p95<300ms", "p95", "<", 300.0),
        ("p99 <= 1.5s", "p99", "<=", 1500.0),
        ("p50 > 20", "p50", ">", 20.0),
        ("error_rate > 20%", "error_rate", ">", 0.2),
        ("error_rate < 0.05", "error_rate", "<", 0.05),
        ("time_to_recover < 10s", "time_to_recover", "<", 10.0),
        ("time_to_detect <= 500ms", "time_to_detect", "<=", 0.5),
        ("rps >= 50", "rps", ">=", 50.0),
        ("failures == 0", "failures", "==", 0.0),
        ("amplification > 6", "amplification", ">", 6.0),
        ("amplification < 1.5x", "amplification", "<", 1.5),
    ],
)
def test_parse_valid(text: str, metric: str, op: str, value: float) -> None:
    """Valid expressions parse into metric, operator and a value in the metric's unit."""
    threshold = thresholds.parse(text, frozenset({"amplification"}))
    assert threshold.metric == metric
    assert threshold.op == op
    assert threshold.value == pytest.approx(value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("p95 300ms", "expected"),
        ("p95 < fast", "expected"),
        ("p95 < 300 parsecs", "expected"),
        ("latency < 300ms", "unknown metric"),
        ("error_rate > 20ms", "does not fit"),
        ("error_rate > 20", "not a fraction"),
        ("p95 < 20%", "does not fit"),
        ("time_to_recover < 10%", "does not fit"),
        ("rps > 5s", "does not fit"),
        ("", "expected"),
        ("p95 << 3", "expected"),
    ],
)
def test_parse_invalid(text: str, message: str) -> None:
    """Invalid expressions raise ValueError saying what is wrong."""
    with pytest.raises(ValueError, match=message):
        thresholds.parse(text)


@pytest.mark.parametrize(
    ("text", "observed", "holds"),
    [
        ("p95 < 300ms", 299.9, True),
        ("p95 < 300ms", 300.0, False),
        ("p95 <= 300ms", 300.0, True),
        ("error_rate > 20%", 0.21, True),
        ("error_rate > 20%", 0.2, False),
        ("p95 < 300ms", None, False),
        ("p95 > 300ms", None, False),
        ("failures != 0", 3.0, True),
    ],
)
def test_holds(text: str, observed: float | None, holds: bool) -> None:
    """A threshold holds only for a present value on the right side."""
    assert thresholds.parse(text).holds(observed) is holds
