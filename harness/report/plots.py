"""Per-second plots of each arm, rendered to SVG for inline use in report.html."""

from __future__ import annotations

import io
import logging
import math
from typing import Literal

import matplotlib as mpl
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from harness.report.format import ordered_phases
from harness.result import ArmResult, Sample

# Text set as SVG text names font families (STIX among them) that this machine may lack; the
# viewer's browser picks a font, so matplotlib's "findfont" warnings say nothing useful here.
logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)

LatencyKey = Literal["p50", "p95", "p99"]
LATENCY_KEYS: tuple[LatencyKey, ...] = ("p50", "p95", "p99")


class _Scale:
    """Axis limits shared by every arm's figure, so arms compare at a glance."""

    def __init__(self, arms: dict[str, ArmResult]) -> None:
        ends = [1.0]
        latencies: list[float] = []
        error_rates = [0.01]
        for arm in arms.values():
            ends.extend(sample["t"] + 1 for sample in arm["timeline"])
            ends.extend(stats["end"] for stats in arm["phases"].values())
            if arm["fault_window"] is not None:
                ends.append(arm["fault_window"][1])
            for sample in arm["timeline"]:
                latencies.extend(_positive(sample[key]) for key in LATENCY_KEYS)
                if sample["error_rate"] is not None:
                    error_rates.append(sample["error_rate"])

        measured = [value for value in latencies if not math.isnan(value)] or [1.0, 10.0]
        self.time = (0.0, max(ends))
        self.latency = (min(measured) / 1.5, max(measured) * 1.5)
        self.error_percent = (0.0, min(100.0, max(error_rates) * 100 * 1.1))


def render_arm_plots(arms: dict[str, ArmResult], id_prefix: str) -> dict[str, str]:
    """Render one SVG figure per arm that has samples, keyed by arm name.

    Each figure stacks latency p50/p95/p99 per second (ms, log scale) over the error rate per
    second, with the fault window shaded and dotted lines at phase starts. All figures share
    their time and value axes. `id_prefix` seeds the SVG element ids, which keeps them stable
    between runs and distinct between the figures of one page.
    """
    scale = _Scale(arms)
    svgs: dict[str, str] = {}
    for name, arm in arms.items():
        if arm["timeline"]:
            svgs[name] = _render_arm(name, arm, scale, f"{id_prefix}-{name}")
    return svgs


def _render_arm(name: str, arm: ArmResult, scale: _Scale, salt: str) -> str:
    figure = Figure(figsize=(9.0, 4.2))
    FigureCanvasAgg(figure)
    # Fixed margins instead of constrained layout, which would double the render time.
    figure.subplots_adjust(left=0.08, right=0.98, top=0.93, bottom=0.11, hspace=0.08)
    latency_axes, error_axes = figure.subplots(2, 1, sharex=True, height_ratios=[2, 1])
    timeline = arm["timeline"]
    seconds = [sample["t"] for sample in timeline]

    for key in LATENCY_KEYS:
        # Markers keep a second between two empty ones visible, as when every user waits
        # two seconds per request and only every other second has requests.
        latency_axes.plot(seconds, [_positive(sample[key]) for sample in timeline], label=key,
                          marker="o", markersize=2.5)  # fmt: skip
    latency_axes.set_yscale("log")
    latency_axes.set_ylim(*scale.latency)
    latency_axes.set_ylabel("latency (ms)")
    latency_axes.set_title(f"arm: {_plain_text(name)}", loc="left")

    error_axes.plot(seconds, [_percent(sample) for sample in timeline], color="tab:red",
                    marker="o", markersize=2.5)  # fmt: skip
    error_axes.set_ylim(*scale.error_percent)
    error_axes.set_ylabel("errors (%)")
    error_axes.set_xlabel("time since arm start (s)")
    error_axes.set_xlim(*scale.time)

    for axes in (latency_axes, error_axes):
        _mark_phases(axes, arm)
        axes.grid(True, alpha=0.3)
    latency_axes.legend(loc="upper right", fontsize="small")

    buffer = io.StringIO()
    # Text stays as <text> elements, which keeps the page small and its words searchable.
    # Without the metadata block the SVG carries no date and no links to outside sites.
    no_metadata = {"Date": None, "Format": None, "Type": None, "Creator": None}
    with mpl.rc_context({"svg.hashsalt": salt, "svg.fonttype": "none"}):
        figure.savefig(buffer, format="svg", metadata=no_metadata)
    return _inline(buffer.getvalue())


def _mark_phases(axes: Axes, arm: ArmResult) -> None:
    window = arm["fault_window"]
    if window is not None:
        axes.axvspan(window[0], window[1], color="tab:red", alpha=0.12, label="fault")
    for _, stats in ordered_phases(arm["phases"])[1:]:
        axes.axvline(stats["start"], color="grey", linestyle=":", linewidth=1)


def _positive(value: float | None) -> float:
    # A log axis cannot show 0 or a missing value, so both become gaps in the line.
    return value if value is not None and value > 0 else math.nan


def _percent(sample: Sample) -> float:
    rate = sample["error_rate"]
    return math.nan if rate is None else rate * 100


def _plain_text(text: str) -> str:
    # Matplotlib reads text between two dollar signs as math, so escape them.
    return text.replace("$", r"\$")


def _inline(svg: str) -> str:
    # The XML declaration and DOCTYPE are only valid at the start of a standalone file.
    return svg[svg.index("<svg") :].strip()
