"""A realistic run record of a circuit breaker experiment with three arms."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from harness.report import write_reports
from harness.result import (
    ArmResult,
    FaultRecord,
    HypothesisResult,
    PhaseStats,
    RunResult,
    Sample,
)

FAULT_WINDOW = (10.0, 20.0)
SECONDS = 30


def make_sample(t: float, requests: int, failures: int, p50: float) -> Sample:
    """Build one second of client figures, without latency when there were no requests."""
    if requests == 0:
        return {
            "t": t,
            "requests": 0,
            "failures": 0,
            "error_rate": None,
            "p50": None,
            "p95": None,
            "p99": None,
            "endpoints": {},
        }
    return {
        "t": t,
        "requests": requests,
        "failures": failures,
        "error_rate": failures / requests,
        "p50": p50,
        "p95": p50 * 3,
        "p99": p50 * 5,
        "endpoints": {
            "GET /checkout": {
                "requests": requests,
                "failures": failures,
                "p50": p50,
                "p95": p50 * 3,
                "p99": None,
            }
        },
    }


def make_timeline(fault_p50: float, fault_error_rate: float, idle_second: int) -> list[Sample]:
    """Build 30 one-second samples with slower, failing requests inside the fault window."""
    timeline = []
    for second in range(SECONDS):
        t = float(second)
        if second == idle_second:
            timeline.append(make_sample(t, 0, 0, 0.0))
        elif FAULT_WINDOW[0] <= t < FAULT_WINDOW[1]:
            timeline.append(make_sample(t, 100, round(100 * fault_error_rate), fault_p50))
        else:
            timeline.append(make_sample(t, 120, 0, 12.0 + second % 3))
    return timeline


def make_phase(start: float, end: float, p95: float | None, error_rate: float) -> PhaseStats:
    """Build the figures of one phase, without latency when `p95` is None."""
    return {
        "start": start,
        "end": end,
        "requests": 1100,
        "failures": round(1100 * error_rate),
        "error_rate": error_rate,
        "rps": 110.0,
        "p50": None if p95 is None else p95 / 3,
        "p90": None if p95 is None else p95 * 0.9,
        "p95": p95,
        "p99": None if p95 is None else p95 * 1.6,
        "p999": None,
        "max": None if p95 is None else p95 * 2,
        "mean": None if p95 is None else p95 / 2.5,
        "probes": {"payments_inflight": 3.0, "breaker_open": None},
    }


def make_arm(
    fault_p50: float, fault_error_rate: float, idle_second: int, time_to_recover: float | None
) -> ArmResult:
    """Build one arm with a latency fault on the api->payments link from 10 s to 20 s."""
    fault: FaultRecord = {
        "kind": "latency",
        "target": "api->payments",
        "attributes": {"latency_ms": 2000, "jitter_ms": 0},
        "applied_at": FAULT_WINDOW[0],
        "removed_at": FAULT_WINDOW[1],
        "took_effect": True,
        "removal_error": None,
    }
    return {
        "target": {"api": {"instances": 2}, "payments": {"instances": 1}},
        "faults": [fault],
        "fault_window": FAULT_WINDOW,
        "phases": {
            "baseline": make_phase(0.0, 10.0, 40.0, 0.0),
            "fault": make_phase(10.0, 20.0, fault_p50 * 3, fault_error_rate),
            "recovery": make_phase(20.0, 30.0, None, 0.0),
        },
        "time_to_detect": 1.0,
        "time_to_recover": time_to_recover,
        "timeline": make_timeline(fault_p50, fault_error_rate, idle_second),
    }


def make_hypothesis(
    name: str, arm: str, phase: str, expression: str, observed: float | None, passed: bool
) -> HypothesisResult:
    """Build one hypothesis result."""
    return {
        "name": name,
        "arm": arm,
        "phase": phase,
        "expression": expression,
        "observed": observed,
        "verdict": "pass" if passed else "fail",
        "abort": False,
    }


RUN_RESULT: RunResult = {
    "run_id": "20250101T120000-circuit-breaker-42",
    "experiment": "circuit-breaker",
    "pattern": "circuit breaker",
    "description": "Payments slows down; the breaker opens and calls fail fast.",
    "seed": 42,
    "platform": "local",
    "started_at": "2025-01-01T12:00:00+00:00",
    "finished_at": "2025-01-01T12:01:35+00:00",
    "verdict": "fail",
    "exit_code": 1,
    "rollback_failed": [],
    "arms": {
        "control": make_arm(
            fault_p50=2000.0, fault_error_rate=0.35, idle_second=25, time_to_recover=2.0
        ),
        "treatment": make_arm(
            fault_p50=8.0, fault_error_rate=0.9, idle_second=3, time_to_recover=None
        ),
        "blip": make_arm(
            fault_p50=400.0, fault_error_rate=0.05, idle_second=15, time_to_recover=4.0
        ),
    },
    "hypotheses": [
        make_hypothesis("control slows down", "control", "fault", "p95 > 1000ms", 6000.0, True),
        make_hypothesis("treatment fails fast", "treatment", "fault", "p95 < 50ms", 24.0, True),
        make_hypothesis(
            "treatment recovers", "treatment", "recovery", "time_to_recover < 10s", None, False
        ),
        make_hypothesis(
            "blip keeps breaker closed", "blip", "fault", "error_rate < 10%", 0.05, True
        ),
        make_hypothesis("baseline is healthy", "control", "baseline", "p95 < 50ms", 40.0, True),
        make_hypothesis("blip error budget", "blip", "recovery", "error_rate < 1%", 0.02, False),
    ],
}


@pytest.fixture
def run_result() -> RunResult:
    """Return a fresh copy of the three-arm run record, so a test may change it."""
    return copy.deepcopy(RUN_RESULT)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Write the reports of the run record once per module and return the run directory.

    Rendering the plots takes most of a second, so tests that only read the reports share it.
    """
    return write_reports(copy.deepcopy(RUN_RESULT), tmp_path_factory.mktemp("run") / "results")
