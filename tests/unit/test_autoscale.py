"""The autoscaler's rule, its scale-up lag and the platform sampler's aggregations."""

from __future__ import annotations

import time

import pytest

from harness.autoscale import scale_up_lag, settled_count, wanted
from harness.experiment import Autoscale
from harness.observe.sampler import PlatformSampler
from harness.result import ScaleEvent

RULE = Autoscale(service="api", promql="sum(api_work_inflight)", target=3, min=1, max=5)


@pytest.mark.parametrize(
    ("reading", "current", "expected"),
    [
        (None, 2, 2),  # no reading keeps the count
        (0.0, 3, 1),  # never below min
        (0.9, 1, 1),
        (3.0, 1, 1),  # exactly one target's worth is one instance
        (3.01, 1, 2),
        (8.0, 1, 3),
        (14.0, 2, 5),
        (100.0, 1, 5),  # never above max
    ],
)
def test_wanted(reading: float | None, current: int, expected: int) -> None:
    """The wanted count is ceil(reading / target) within min and max."""
    assert wanted(reading, RULE, current) == expected


def _event(before: int, after: int, decided: float, ready: float) -> ScaleEvent:
    return ScaleEvent(service="api", before=before, after=after, reading=None,
                      decided_at=decided, ready_at=ready)  # fmt: skip


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        ([], None),
        ([_event(1, 3, 7.0, 8.0)], 3),
        ([_event(1, 3, 20.0, 21.0)], 1),  # three for 5 s of the 20 s window
        ([_event(1, 3, 7.0, 8.0), _event(3, 4, 18.0, 19.0), _event(4, 3, 24.0, 24.5)], 3),
    ],
)
def test_settled_count(events: list[ScaleEvent], expected: int | None) -> None:
    """The settled count is the one held longest within the fault window."""
    assert settled_count(events, 6.0, 26.0) == expected


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        ([], None),
        ([_event(3, 1, 30.0, 31.0)], None),  # a scale-down is no scale-up
        ([_event(1, 3, 2.0, 3.0)], None),  # before the spike
        ([_event(1, 3, 7.0, 8.5)], 2.5),
        ([_event(1, 2, 7.0, 8.0), _event(2, 4, 9.0, 11.0)], 5.0),  # in two steps
        # A scale-down and up again around the settled count does not move the lag.
        ([_event(1, 5, 7.0, 8.5), _event(5, 4, 18.0, 18.5), _event(4, 5, 21.0, 22.0)], 2.5),
        # A brief extra instance late in the window does not either.
        ([_event(1, 3, 7.0, 8.5), _event(3, 4, 18.0, 19.0), _event(4, 3, 24.0, 24.5)], 2.5),
        # Down and back up to the settled count: the first time it was reached counts.
        ([_event(1, 3, 7.0, 9.0), _event(3, 2, 15.0, 15.5), _event(2, 3, 16.0, 17.0)], 3.0),
        ([_event(1, 3, 27.0, 28.0)], None),  # after the fault window
    ],
)
def test_scale_up_lag(events: list[ScaleEvent], expected: float | None) -> None:
    """The lag runs from the fault's start to the first time the peak count was ready."""
    lag = scale_up_lag(events, 6.0, 26.0)
    assert lag == (None if expected is None else pytest.approx(expected))


class _FakeFigures:
    """Stands in for a platform: returns preset figures, one set per call."""

    def __init__(self, values: list[float]) -> None:
        self.values = values

    def service_figures(self, service: str) -> dict[str, float]:
        return {"instances": self.values.pop(0)}


@pytest.mark.parametrize(
    ("aggregation", "expected"),
    [("max", 4.0), ("min", 1.0), ("mean", 2.5), ("last", 3.0), ("increase", 2.0)],
)
def test_sampler_aggregations(aggregation: str, expected: float) -> None:
    """Samples within the window aggregate as asked; none in the window gives None."""
    sampler = PlatformSampler(_FakeFigures([1.0, 2.0, 4.0, 3.0]), ["api"])  # type: ignore[arg-type]
    for _ in range(4):
        sampler.sample()
    assert sampler.evaluate("api", "instances", aggregation, 0.0, 1e12) == expected
    assert sampler.evaluate("api", "instances", aggregation, 0.0, 1.0) is None
    assert sampler.evaluate("edge", "instances", aggregation, 0.0, 1e12) is None


class _NoPrometheus:
    """A platform whose Prometheus is unreachable because nothing listens on its port."""

    def __init__(self, port: int) -> None:
        self.port = port

    def prometheus(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def instances(self, service: str) -> list[str]:
        return ["api-1"]


def test_scaler_stops_without_prometheus() -> None:
    """A failed read stops the scaler with the error kept, instead of reading as idle."""
    from harness.autoscale import Autoscaler
    from harness.platforms.processes import free_port

    scaler = Autoscaler(_NoPrometheus(free_port()), RULE, origin=0.0)  # type: ignore[arg-type]
    scaler.start()
    deadline = time.monotonic() + 60
    while scaler.error is None and time.monotonic() < deadline:
        time.sleep(0.1)
    scaler.stop()
    assert scaler.error is not None
    assert "Connection" in scaler.error
    assert scaler.events == []
