"""Text forms of observed values, shared by the console and HTML reports."""

from __future__ import annotations

from harness.result import ArmResult, PhaseStats

PHASE_ORDER = ("baseline", "fault", "recovery")
MISSING = "-"


def ordered_phases(phases: dict[str, PhaseStats]) -> list[tuple[str, PhaseStats]]:
    """Sort phases into run order: baseline, fault, recovery, then any other by start time."""
    known = [(name, phases[name]) for name in PHASE_ORDER if name in phases]
    others = sorted(
        ((name, stats) for name, stats in phases.items() if name not in PHASE_ORDER),
        key=lambda item: item[1]["start"],
    )
    return known + others


def format_ms(value: float | None) -> str:
    """Format a latency in ms with one decimal, or a dash when nothing was measured."""
    return MISSING if value is None else f"{value:.1f}"


def format_rate(value: float | None) -> str:
    """Format an error rate, a fraction of requests, as a percentage."""
    return MISSING if value is None else f"{value * 100:.2f}%"


def format_seconds(value: float | None) -> str:
    """Format a duration in seconds, or a dash when it was not measured."""
    return MISSING if value is None else f"{value:.1f} s"


def format_number(value: float | None) -> str:
    """Format a value of unknown unit, such as an observed value or a probe, to 4 digits."""
    return MISSING if value is None else f"{value:.4g}"


def format_probes(probes: dict[str, float | None]) -> str:
    """Format probe values as `name=value` pairs, sorted by name."""
    return ", ".join(f"{name}={format_number(probes[name])}" for name in sorted(probes))


def describe_scaling(arm: ArmResult) -> str:
    """Describe an autoscaled arm's changes and lag in one line, or return '' without one."""
    events = arm.get("scaling")
    if events is None:
        return ""
    changes = ", ".join(
        f"{e['service']} {e['before']}->{e['after']} at {e['decided_at']:.1f} s "
        f"(ready {e['ready_at']:.1f} s)"
        for e in events
    )
    after = arm.get("failures_after_scale_up")
    return (
        f"autoscaler: {changes or 'no change'}; scale-up lag "
        f"{format_seconds(arm.get('scale_up_lag'))}, failed requests once scaled up "
        f"{MISSING if after is None else after}"
    )
