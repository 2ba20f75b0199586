"""Records of a finished experiment run, as written to result.json."""

from __future__ import annotations

from typing import Literal, NotRequired, TypedDict

Verdict = Literal["pass", "fail"]


class EndpointSample(TypedDict):
    """Client figures of one endpoint within one second."""

    requests: int
    failures: int
    p50: float | None
    p95: float | None
    p99: float | None


class Sample(TypedDict):
    """Client figures of one second of an arm, bucketed by request start time."""

    t: float
    requests: int
    failures: int
    error_rate: float | None
    p50: float | None
    p95: float | None
    p99: float | None
    endpoints: dict[str, EndpointSample]


class PhaseStats(TypedDict):
    """Observed values of one phase of one arm; latencies in ms, times in s since arm start."""

    start: float
    end: float
    requests: int
    failures: int
    error_rate: float | None
    rps: float
    p50: float | None
    p90: float | None
    p95: float | None
    p99: float | None
    p999: float | None
    max: float | None
    mean: float | None
    probes: dict[str, float | None]


class FaultRecord(TypedDict):
    """One fault of an arm as it was applied and removed."""

    kind: str
    target: str
    attributes: dict[str, object]
    applied_at: float | None
    removed_at: float | None
    took_effect: bool
    removal_error: str | None


class ScaleEvent(TypedDict):
    """One change of an autoscaled service, in seconds since the arm's start."""

    service: str
    before: int
    after: int
    reading: float | None
    decided_at: float
    ready_at: float


class ArmResult(TypedDict):
    """Everything observed in one arm."""

    target: dict[str, dict[str, object]]
    faults: list[FaultRecord]
    fault_window: tuple[float, float] | None
    phases: dict[str, PhaseStats]
    time_to_detect: float | None
    time_to_recover: float | None
    timeline: list[Sample]
    aborted: NotRequired[str | None]
    scaling: NotRequired[list[ScaleEvent]]
    scale_up_lag: NotRequired[float | None]
    failures_after_scale_up: NotRequired[int | None]


class HypothesisResult(TypedDict):
    """One hypothesis with the observed value that decided it."""

    name: str
    arm: str
    phase: str
    expression: str
    observed: float | None
    verdict: Verdict
    abort: bool


class RunResult(TypedDict):
    """The whole record of one experiment run."""

    run_id: str
    experiment: str
    pattern: str
    description: str
    seed: int
    platform: str
    started_at: str
    finished_at: str
    verdict: Verdict
    exit_code: int
    rollback_failed: list[str]
    arms: dict[str, ArmResult]
    hypotheses: list[HypothesisResult]
