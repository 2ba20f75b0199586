"""The terminal report: a run summary and a live status line while a run goes on."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from rich.console import Console
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from harness.report.format import (
    MISSING,
    describe_scaling,
    format_ms,
    format_number,
    format_probes,
    format_rate,
    format_seconds,
    ordered_phases,
)
from harness.result import ArmResult, RunResult

_VERDICT_STYLE = {"pass": "bold green", "fail": "bold red"}


def print_summary(result: RunResult, console: Console, run_dir: Path | None = None) -> None:
    """Print the verdict panel, the hypotheses, each arm's phases and where the reports are.

    Strings from the record are printed as `Text`, so square brackets in a hypothesis name
    are shown as written rather than read as rich markup.
    """
    console.print(_verdict_panel(result))
    console.print(_hypotheses_table(result))
    for name, arm in result["arms"].items():
        console.print(_phase_table(name, arm))
    if run_dir is not None:
        console.print(Text.assemble("Reports: ", (str(run_dir), "bold")))


def _verdict_panel(result: RunResult) -> Panel:
    verdict = result["verdict"]
    style = _VERDICT_STYLE.get(verdict, "bold red")
    body = Text.assemble(
        (verdict.upper(), style),
        f"  {result['experiment']} ({result['pattern']})\n",
        f"seed {result['seed']}  run {result['run_id']}  platform {result['platform']}",
    )
    for fault in result["rollback_failed"]:
        body.append(f"\nrollback failed: {fault}", style="bold red")
    return Panel(body, title="verdict", border_style=style, expand=False)


def _hypotheses_table(result: RunResult) -> Table:
    table = Table(title="Hypotheses", title_justify="left")
    for column in ("hypothesis", "arm", "phase", "expression"):
        table.add_column(column)
    table.add_column("observed", justify="right")
    table.add_column("verdict")
    for hypothesis in result["hypotheses"]:
        verdict = hypothesis["verdict"]
        table.add_row(
            Text(hypothesis["name"] + (" (abort)" if hypothesis["abort"] else "")),
            Text(hypothesis["arm"]),
            Text(hypothesis["phase"]),
            Text(hypothesis["expression"]),
            format_number(hypothesis["observed"]),
            Text(verdict, style=_VERDICT_STYLE.get(verdict, "bold red")),
        )
    return table


def _phase_table(name: str, arm: ArmResult) -> Table:
    caption = (
        f"time to detect {format_seconds(arm['time_to_detect'])}, "
        f"time to recover {format_seconds(arm['time_to_recover'])}"
    )
    aborted = arm.get("aborted")
    if aborted:
        caption += f", aborted: {aborted}"
    scaling = describe_scaling(arm)
    if scaling:
        caption += f"\n{scaling}"
    table = Table(
        title=Text(f"Arm {name}"),
        title_justify="left",
        caption=Text(caption),
        caption_justify="left",
    )
    table.add_column("phase")
    for column in ("requests", "error rate", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms"):
        table.add_column(column, justify="right")
    table.add_column("probes")
    for phase, stats in ordered_phases(arm["phases"]):
        table.add_row(
            Text(phase),
            str(stats["requests"]),
            format_rate(stats["error_rate"]),
            f"{stats['rps']:.1f}",
            format_ms(stats["p50"]),
            format_ms(stats["p95"]),
            format_ms(stats["p99"]),
            format_ms(stats["max"]),
            Text(format_probes(stats["probes"])),
        )
    return table


class LiveView:
    """A one-line status of the running arm, redrawn at most once per second.

    On a terminal the line is redrawn in place. On any other output, such as a CI log, each
    shown status is printed as a plain line, at most one per second, and updates in between
    are dropped. `clock` returns seconds and exists so tests can drive time without sleeping.
    """

    def __init__(
        self,
        console: Console,
        interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.console = console
        self.interval = interval
        self.clock = clock
        self._live: Live | None = None
        self._last_shown: float | None = None

    def __enter__(self) -> LiveView:
        if self.console.is_terminal:
            self._live = Live(
                Text("starting"), console=self.console, auto_refresh=False, transient=False
            )
            self._live.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # Stopping draws the latest status once more, so the terminal keeps the final line.
        if self._live is not None:
            self._live.stop()
            self._live = None

    def update(
        self,
        arm: str,
        phase: str,
        elapsed: float,
        total: float,
        rps: float,
        error_rate: float | None,
        p95: float | None,
    ) -> None:
        """Show the status of the running arm, unless a status was shown less than a second ago.

        `error_rate` is a fraction of requests and `p95` is in ms. None shows as a dash.
        """
        line = format_status(arm, phase, elapsed, total, rps, error_rate, p95)
        now = self.clock()
        due = self._last_shown is None or now - self._last_shown >= self.interval

        if self._live is not None:
            # The line is kept even when not due, so the final redraw on exit shows it.
            self._live.update(Text(line), refresh=due)
        elif due:
            self.console.print(line, markup=False, highlight=False, soft_wrap=True)
        if due:
            self._last_shown = now


def format_status(
    arm: str,
    phase: str,
    elapsed: float,
    total: float,
    rps: float,
    error_rate: float | None,
    p95: float | None,
) -> str:
    """Format one live status line: arm, phase, elapsed/total seconds, req/s, errors, p95."""
    p95_text = MISSING if p95 is None else f"{p95:.1f}ms"
    return (
        f"arm={arm} phase={phase} {elapsed:.0f}/{total:.0f}s "
        f"rps={rps:.1f} errors={format_rate(error_rate)} p95={p95_text}"
    )
