"""The human report: a self-contained report.html with tables and inline SVG plots."""

from __future__ import annotations

from html import escape
from pathlib import Path

from harness.report.format import (
    describe_scaling,
    format_ms,
    format_number,
    format_probes,
    format_rate,
    format_seconds,
    ordered_phases,
)
from harness.report.plots import render_arm_plots
from harness.result import ArmResult, FaultRecord, HypothesisResult, RunResult

# Inline CSS only: the page must open from a CI artifact store or an offline laptop.
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; }
h1 { margin-bottom: 0.2rem; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: left; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f3f3f3; }
dl.header { display: grid; grid-template-columns: max-content auto; gap: 0.2rem 1rem; }
dl.header dt { font-weight: bold; }
dl.header dd { margin: 0; }
.pass { color: #176f2c; background: #e3f6e8; font-weight: bold; }
.fail { color: #a31515; background: #fde7e7; font-weight: bold; }
.warning { border: 2px solid #a31515; background: #fde7e7; padding: 0.5rem 1rem; }
figure { margin: 0 0 1.5rem; }
figure svg { max-width: 100%; height: auto; }
"""


def write_html(result: RunResult, path: Path) -> None:
    """Write the report page of a run to `path` as one HTML file with no external resources."""
    path.write_text(render_html(result), encoding="utf-8")


def render_html(result: RunResult) -> str:
    """Render the report page of a run: header, hypotheses, one section per arm, plots.

    Every string from the record is HTML-escaped, because experiment files and target
    responses are not trusted to be free of markup.
    """
    title = f"{result['experiment']}: {result['verdict']}"
    plots = render_arm_plots(result["arms"], id_prefix=result["run_id"])
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{escape(title)}</title>",
        f"<style>{_STYLE}</style>",
        "</head>",
        "<body>",
        _header(result),
        _rollback_warning(result["rollback_failed"]),
        "<h2>Hypotheses</h2>",
        _hypotheses_table(result["hypotheses"]),
    ]
    for name, arm in result["arms"].items():
        parts.append(_arm_section(name, arm, plots.get(name)))
    parts += ["</body>", "</html>", ""]
    return "\n".join(part for part in parts if part)


def _header(result: RunResult) -> str:
    verdict = result["verdict"]
    fields = [
        ("pattern", escape(result["pattern"])),
        ("verdict", f'<span class="{_verdict_class(verdict)}">{escape(verdict.upper())}</span>'),
        ("seed", escape(str(result["seed"]))),
        ("run id", escape(result["run_id"])),
        ("platform", escape(result["platform"])),
        ("started", escape(result["started_at"])),
        ("finished", escape(result["finished_at"])),
        ("exit code", escape(str(result["exit_code"]))),
    ]
    rows = "\n".join(f"<dt>{label}</dt><dd>{value}</dd>" for label, value in fields)
    description = result["description"]
    paragraph = f"<p>{escape(description)}</p>" if description else ""
    return (
        f"<header>\n<h1>{escape(result['experiment'])}</h1>\n{paragraph}\n"
        f'<dl class="header">\n{rows}\n</dl>\n</header>'
    )


def _rollback_warning(rollback_failed: list[str]) -> str:
    if not rollback_failed:
        return ""
    items = "".join(f"<li>{escape(fault)}</li>" for fault in rollback_failed)
    return (
        '<div class="warning"><strong>Rollback failed.</strong> These faults may still be '
        f"applied to the target:<ul>{items}</ul></div>"
    )


def _hypotheses_table(hypotheses: list[HypothesisResult]) -> str:
    if not hypotheses:
        return "<p>No hypotheses.</p>"
    rows = []
    for hypothesis in hypotheses:
        verdict = hypothesis["verdict"]
        name = escape(hypothesis["name"]) + (" (abort)" if hypothesis["abort"] else "")
        cells = [
            f"<td>{name}</td>",
            f"<td>{escape(hypothesis['arm'])}</td>",
            f"<td>{escape(hypothesis['phase'])}</td>",
            f"<td><code>{escape(hypothesis['expression'])}</code></td>",
            f'<td class="number">{format_number(hypothesis["observed"])}</td>',
            f'<td class="{_verdict_class(verdict)}">{escape(verdict)}</td>',
        ]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    head = _table_head(["hypothesis", "arm", "phase", "expression", "observed", "verdict"])
    return f"<table>\n{head}\n<tbody>\n" + "\n".join(rows) + "\n</tbody>\n</table>"


def _arm_section(name: str, arm: ArmResult, svg: str | None) -> str:
    parts = [f"<section>\n<h2>Arm: {escape(name)}</h2>"]
    aborted = arm.get("aborted")
    if aborted:
        parts.append(f'<p class="warning">Aborted: {escape(aborted)}</p>')
    parts.append(_phase_table(arm))
    parts.append(
        f"<p>Time to detect: {format_seconds(arm['time_to_detect'])}. "
        f"Time to recover: {format_seconds(arm['time_to_recover'])}.</p>"
    )
    scaling = describe_scaling(arm)
    if scaling:
        parts.append(f"<p>{escape(scaling)}</p>")
    if arm["faults"]:
        parts.append(_fault_table(arm["faults"]))
    if svg is None:
        parts.append("<p>No samples were recorded, so there is no plot.</p>")
    else:
        caption = "Latency and error rate per second; the shaded band is the fault window."
        parts.append(f"<figure>\n{svg}\n<figcaption>{caption}</figcaption>\n</figure>")
    parts.append("</section>")
    return "\n".join(parts)


def _phase_table(arm: ArmResult) -> str:
    rows = []
    for phase, stats in ordered_phases(arm["phases"]):
        numbers = [
            str(stats["requests"]),
            format_rate(stats["error_rate"]),
            f"{stats['rps']:.1f}",
            format_ms(stats["p50"]),
            format_ms(stats["p95"]),
            format_ms(stats["p99"]),
            format_ms(stats["max"]),
        ]
        cells = [
            f"<td>{escape(phase)}</td>",
            f'<td class="number">{stats["start"]:.0f}&ndash;{stats["end"]:.0f}</td>',
            *(f'<td class="number">{number}</td>' for number in numbers),
            f"<td>{escape(format_probes(stats['probes']))}</td>",
        ]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    head = _table_head(
        [
            "phase",
            "window (s)",
            "requests",
            "error rate",
            "req/s",
            "p50 (ms)",
            "p95 (ms)",
            "p99 (ms)",
            "max (ms)",
            "probes",
        ]
    )
    return f"<table>\n{head}\n<tbody>\n" + "\n".join(rows) + "\n</tbody>\n</table>"


def _fault_table(faults: list[FaultRecord]) -> str:
    rows = []
    for fault in faults:
        took_effect = "yes" if fault["took_effect"] else "no"
        attributes = fault["attributes"]
        settings = ", ".join(f"{key}={attributes[key]}" for key in sorted(attributes))
        cells = [
            f"<td>{escape(fault['kind'])}</td>",
            f"<td>{escape(fault['target'])}</td>",
            f"<td>{escape(settings)}</td>",
            f'<td class="number">{format_seconds(fault["applied_at"])}</td>',
            f'<td class="number">{format_seconds(fault["removed_at"])}</td>',
            f'<td class="{"pass" if fault["took_effect"] else "fail"}">{took_effect}</td>',
            f"<td>{escape(fault['removal_error'] or '')}</td>",
        ]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    head = _table_head(
        [
            "fault",
            "target",
            "attributes",
            "applied",
            "removed",
            "took effect",
            "removal error",
        ]
    )
    return f"<table>\n{head}\n<tbody>\n" + "\n".join(rows) + "\n</tbody>\n</table>"


def _table_head(columns: list[str]) -> str:
    return "<thead><tr>" + "".join(f"<th>{column}</th>" for column in columns) + "</tr></thead>"


def _verdict_class(verdict: str) -> str:
    return "pass" if verdict == "pass" else "fail"
