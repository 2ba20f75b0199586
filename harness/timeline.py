"""Client timeline maths: per-second samples, phase figures, time to detect and to recover.

Requests are placed in the second in which they started, not the one in which they ended, so a
request that hangs through a fault window counts against that window with its full latency.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from harness.result import EndpointSample, PhaseStats, Sample

# A return to baseline must hold this many seconds in a row to count as recovered.
SUSTAINED_SECONDS = 3


@dataclass(frozen=True)
class RequestRecord:
    """One request as the load generator saw it."""

    start: float
    name: str
    response_ms: float
    ok: bool
    status: int


@dataclass(frozen=True)
class Window:
    """A time window in seconds since the arm's start, end excluded."""

    start: float
    end: float

    def holds(self, t: float) -> bool:
        """Tell whether a time falls in the window."""
        return self.start <= t < self.end


def percentile(values: Sequence[float], q: float) -> float | None:
    """Return the nearest-rank percentile q (0-100) of values, always one of the values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = math.ceil(q / 100.0 * len(ordered))
    return ordered[min(max(rank, 1), len(ordered)) - 1]


def _rate(failures: int, requests: int) -> float | None:
    return failures / requests if requests else None


def samples(records: Iterable[RequestRecord], origin: float, duration: float) -> list[Sample]:
    """Bucket records by start second since origin into one sample per second of duration."""
    seconds = max(math.ceil(duration), 0)
    buckets: list[list[RequestRecord]] = [[] for _ in range(seconds)]
    for record in records:
        index = math.floor(record.start - origin)
        if 0 <= index < seconds:
            buckets[index].append(record)

    timeline: list[Sample] = []
    for index, bucket in enumerate(buckets):
        latencies = [r.response_ms for r in bucket]
        failures = sum(1 for r in bucket if not r.ok)
        endpoints: dict[str, EndpointSample] = {}
        for name in sorted({r.name for r in bucket}):
            mine = [r for r in bucket if r.name == name]
            times = [r.response_ms for r in mine]
            endpoints[name] = EndpointSample(
                requests=len(mine),
                failures=sum(1 for r in mine if not r.ok),
                p50=percentile(times, 50),
                p95=percentile(times, 95),
                p99=percentile(times, 99),
            )
        timeline.append(
            Sample(
                t=float(index),
                requests=len(bucket),
                failures=failures,
                error_rate=_rate(failures, len(bucket)),
                p50=percentile(latencies, 50),
                p95=percentile(latencies, 95),
                p99=percentile(latencies, 99),
                endpoints=endpoints,
            )
        )
    return timeline


def phase_stats(
    records: Iterable[RequestRecord], origin: float, window: Window, endpoint: str | None = None
) -> PhaseStats:
    """Return the client figures of every request that started within the window."""
    mine = [
        r
        for r in records
        if window.holds(r.start - origin) and (endpoint is None or r.name == endpoint)
    ]
    latencies = [r.response_ms for r in mine]
    failures = sum(1 for r in mine if not r.ok)
    length = window.end - window.start
    return PhaseStats(
        start=window.start,
        end=window.end,
        requests=len(mine),
        failures=failures,
        error_rate=_rate(failures, len(mine)),
        rps=len(mine) / length if length > 0 else 0.0,
        p50=percentile(latencies, 50),
        p90=percentile(latencies, 90),
        p95=percentile(latencies, 95),
        p99=percentile(latencies, 99),
        p999=percentile(latencies, 99.9),
        max=max(latencies) if latencies else None,
        mean=sum(latencies) / len(latencies) if latencies else None,
        probes={},
    )


@dataclass(frozen=True)
class Baseline:
    """Normal figures, taken from the baseline phase."""

    p95: float
    error_rate: float

    def is_good(self, sample: Sample) -> bool:
        """Tell whether a second looks like the baseline: traffic, few errors, usual p95."""
        if sample["requests"] == 0 or sample["p95"] is None:
            return False
        error_rate = sample["error_rate"] or 0.0
        if error_rate > max(self.error_rate + 0.05, 2 * self.error_rate):
            return False
        return sample["p95"] <= max(2 * self.p95, self.p95 + 50.0)


def baseline_of(stats: PhaseStats) -> Baseline | None:
    """Return the baseline reference of a phase, or None when it had no traffic."""
    if stats["p95"] is None:
        return None
    return Baseline(p95=stats["p95"], error_rate=stats["error_rate"] or 0.0)


def time_to_detect(timeline: Sequence[Sample], baseline: Baseline, fault: Window) -> float | None:
    """Return seconds from fault start to the first second unlike the baseline, or None."""
    for sample in timeline:
        in_window = fault.start <= sample["t"] + 1 and sample["t"] < fault.end
        if in_window and not baseline.is_good(sample):
            return max(sample["t"] - fault.start, 0.0)
    return None


def time_to_recover(
    timeline: Sequence[Sample], baseline: Baseline, fault_end: float
) -> float | None:
    """Return seconds from fault end to the first second of a sustained return, or None.

    The first whole second after the fault ends is the earliest candidate, and the return
    must hold for SUSTAINED_SECONDS seconds (fewer only when the timeline ends sooner).
    """
    after = [s for s in timeline if s["t"] >= math.floor(fault_end)]
    for index, sample in enumerate(after):
        run = after[index : index + SUSTAINED_SECONDS]
        if len(run) < min(SUSTAINED_SECONDS, len(after)):
            return None
        if all(baseline.is_good(s) for s in run):
            return max(sample["t"] - fault_end, 0.0)
    return None
