"""Timeline maths: percentiles, per-second samples, phases, time to detect and recover."""

from __future__ import annotations

import pytest

from harness.timeline import (
    Baseline,
    RequestRecord,
    Window,
    percentile,
    phase_stats,
    samples,
    time_to_detect,
    time_to_recover,
)


def _record(start: float, ms: float, ok: bool = True, name: str = "/checkout") -> RequestRecord:
    return RequestRecord(start, name, ms, ok, 200 if ok else 500)


def test_three_requests_percentiles_stay_in_range() -> None:
    """An arm with requests of 10, 20 and 30 ms reports every percentile within 10..30."""
    records = [_record(0.1, 10), _record(0.2, 20), _record(0.3, 30)]
    stats = phase_stats(records, 0.0, Window(0, 1))
    for key in ("p50", "p90", "p95", "p99", "p999", "max"):
        value = stats[key]  # type: ignore[literal-required]
        assert value is not None
        assert 10 <= value <= 30, key
    assert stats["max"] == 30
    assert stats["p50"] == 20


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([5.0], 50, 5.0),
        ([5.0], 99.9, 5.0),
        ([1.0, 2.0, 3.0, 4.0], 50, 2.0),
        ([1.0, 2.0, 3.0, 4.0], 75, 3.0),
        ([1.0, 2.0, 3.0, 4.0], 100, 4.0),
        ([4.0, 1.0, 3.0, 2.0], 0, 1.0),
        (list(map(float, range(1, 101))), 95, 95.0),
    ],
)
def test_percentile_nearest_rank(values: list[float], q: float, expected: float) -> None:
    """Nearest-rank percentiles return a sample value."""
    assert percentile(values, q) == expected


def test_percentile_of_nothing_is_none() -> None:
    """No samples give no percentile rather than zero."""
    assert percentile([], 95) is None


def test_samples_bucket_by_start_second() -> None:
    """A request that started in second 2 counts there even if it ended much later."""
    records = [_record(100.5, 10), _record(102.2, 5000, ok=False), _record(102.9, 30)]
    timeline = samples(records, 100.0, 4.0)
    assert [s["requests"] for s in timeline] == [1, 0, 2, 0]
    assert timeline[2]["failures"] == 1
    assert timeline[2]["error_rate"] == 0.5
    assert timeline[2]["p99"] == 5000
    assert timeline[1]["p95"] is None
    assert timeline[2]["endpoints"]["/checkout"]["requests"] == 2


def test_samples_drop_records_outside_the_arm() -> None:
    """Records before the origin or after the duration are left out."""
    records = [_record(99.0, 10), _record(100.0, 10), _record(103.0, 10)]
    assert sum(s["requests"] for s in samples(records, 100.0, 3.0)) == 1


def test_phase_stats_endpoint_filter() -> None:
    """Endpoint-scoped figures count only that endpoint."""
    records = [_record(0.1, 10, name="/a"), _record(0.2, 900, name="/b", ok=False)]
    stats = phase_stats(records, 0.0, Window(0, 1), endpoint="/a")
    assert stats["requests"] == 1
    assert stats["error_rate"] == 0.0
    assert stats["max"] == 10


def test_phase_stats_rps_uses_window_length() -> None:
    """Requests per second divide by the window, not by the span of requests."""
    records = [_record(t / 10, 10) for t in range(20)]
    assert phase_stats(records, 0.0, Window(0, 4))["rps"] == 5.0


def _timeline(
    p95s: list[float | None], errors: list[float] | None = None
) -> list[dict[str, object]]:
    rows = []
    for i, p95 in enumerate(p95s):
        error_rate: float | None = None
        if p95 is not None:
            error_rate = errors[i] if errors else 0.0
        rows.append(
            {
                "t": float(i),
                "requests": 0 if p95 is None else 10,
                "failures": 0,
                "error_rate": error_rate,
                "p50": p95,
                "p95": p95,
                "p99": p95,
                "endpoints": {},
            }
        )
    return rows


BASE = Baseline(p95=20.0, error_rate=0.0)


@pytest.mark.parametrize(
    ("p95s", "fault", "expected"),
    [
        ([20, 20, 20, 900, 900, 20], Window(3, 5), 0.0),
        ([20, 20, 20, 20, 900, 20], Window(3, 5), 1.0),
        ([20, 20, 20, 20, 20, 20], Window(3, 5), None),
        ([20, 20, 20, None, None, 20], Window(3, 5), 0.0),
    ],
)
def test_time_to_detect(p95s: list[float | None], fault: Window, expected: float | None) -> None:
    """Detection is the first second inside the fault window unlike the baseline."""
    assert time_to_detect(_timeline(p95s), BASE, fault) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("p95s", "fault_end", "expected"),
    [
        ([900, 900, 20, 20, 20, 20], 2.0, 0.0),
        ([900, 900, 900, 900, 20, 20, 20], 2.0, 2.0),
        ([900, 900, 20, 900, 20, 20, 20], 2.0, 2.0),
        ([900, 900, 900, 900, 900, 900], 2.0, None),
        ([900, 900, 20, 20, 20, 20], 2.5, 0.0),
    ],
)
def test_time_to_recover(p95s: list[float], fault_end: float, expected: float | None) -> None:
    """Recovery needs a sustained return: a single good second is not enough."""
    assert time_to_recover(_timeline(p95s), BASE, fault_end) == expected  # type: ignore[arg-type]


def test_errors_count_against_recovery() -> None:
    """A fast second full of errors is not a recovered second."""
    timeline = _timeline([20, 20, 20, 20, 20], errors=[0.5, 0.5, 0.0, 0.0, 0.0])
    assert time_to_recover(timeline, BASE, 0.0) == 2.0  # type: ignore[arg-type]
