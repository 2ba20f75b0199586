"""Tests of the report writers: result.json, junit.xml, report.html and the console."""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.console import Console

from harness.report import load_result, write_reports
from harness.report.console import LiveView, format_status, print_summary
from harness.report.json_report import write_json
from harness.report.junit import write_junit
from harness.result import RunResult

HOSTILE = "<script>alert('x')</script>"
# Namespace URIs name XML vocabularies and are never fetched, so inline SVG may carry them.
NAMESPACE_URIS = {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}


def failed_names(result: RunResult) -> list[str]:
    """Return the names of the hypotheses whose verdict is fail."""
    return [h["name"] for h in result["hypotheses"] if h["verdict"] == "fail"]


def parse_junit(run_dir: Path) -> ET.Element:
    """Parse junit.xml of a run directory and return its only testsuite element."""
    root = ET.parse(run_dir / "junit.xml").getroot()
    suites = root.findall("testsuite")
    assert len(suites) == 1
    return suites[0]


@pytest.mark.parametrize("name", ["result.json", "junit.xml", "report.html"])
def test_write_reports_creates_file(run_dir: Path, name: str) -> None:
    """Each report file exists in the run directory and is not empty."""
    assert (run_dir / name).is_file()
    assert (run_dir / name).stat().st_size > 0


def test_run_dir_named_after_run_id(run_result: RunResult, run_dir: Path) -> None:
    """The run directory is results/<run_id>."""
    assert run_dir.name == run_result["run_id"]
    assert run_dir.parent.name == "results"


def test_json_round_trips(run_result: RunResult, run_dir: Path) -> None:
    """Loading result.json gives back the record that was written, tuples included."""
    assert load_result(run_dir / "result.json") == run_result


def test_json_writes_nan_as_null(run_result: RunResult, tmp_path: Path) -> None:
    """A NaN latency is written as null, because strict JSON parsers reject NaN."""
    run_result["arms"]["control"]["phases"]["fault"]["p95"] = float("nan")
    path = tmp_path / "result.json"
    write_json(run_result, path)

    assert "NaN" not in path.read_text()
    assert load_result(path)["arms"]["control"]["phases"]["fault"]["p95"] is None


def test_junit_one_case_per_hypothesis(run_result: RunResult, run_dir: Path) -> None:
    """Every hypothesis is one testcase named after it, with class <experiment>.<arm>."""
    suite = parse_junit(run_dir)
    cases = suite.findall("testcase")

    assert suite.get("name") == run_result["experiment"]
    assert [case.get("name") for case in cases] == [h["name"] for h in run_result["hypotheses"]]
    assert [case.get("classname") for case in cases] == [
        f"circuit-breaker.{h['arm']}" for h in run_result["hypotheses"]
    ]


def test_junit_failure_per_failed_hypothesis(run_result: RunResult, run_dir: Path) -> None:
    """Only failed hypotheses carry a <failure>, and the suite counts them."""
    suite = parse_junit(run_dir)
    failing = [
        case.get("name") for case in suite.iter("testcase") if case.find("failure") is not None
    ]

    assert failing == failed_names(run_result)
    assert suite.get("failures") == str(len(failing))
    assert suite.get("tests") == str(len(run_result["hypotheses"]))


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("blip error budget", "recovery: error_rate < 1%, observed 0.02"),
        ("treatment recovers", "recovery: time_to_recover < 10s, no value observed"),
    ],
)
def test_junit_failure_message(run_dir: Path, name: str, expected: str) -> None:
    """The failure message contains the phase, the expression and the observed value."""
    suite = parse_junit(run_dir)
    case = next(case for case in suite.iter("testcase") if case.get("name") == name)
    failure = case.find("failure")

    assert failure is not None
    assert failure.get("message") == expected


@pytest.mark.parametrize(
    ("rollback_failed", "extra_cases"),
    [
        ([], 0),
        (["latency on api->payments"], 1),
        (["latency on api->payments", "pause of payments-0"], 1),
    ],
)
def test_junit_rollback_case(
    run_result: RunResult, tmp_path: Path, rollback_failed: list[str], extra_cases: int
) -> None:
    """A failed rollback adds one failing testcase named rollback that lists the faults."""
    run_result["rollback_failed"] = rollback_failed
    write_junit(run_result, tmp_path / "junit.xml")
    suite = parse_junit(tmp_path)
    cases = suite.findall("testcase")
    rollback = [case for case in cases if case.get("name") == "rollback"]

    assert len(cases) == len(run_result["hypotheses"]) + extra_cases
    assert len(rollback) == extra_cases
    assert suite.get("failures") == str(len(failed_names(run_result)) + extra_cases)
    for case in rollback:
        failure = case.find("failure")
        assert failure is not None
        assert all(fault in failure.get("message", "") for fault in rollback_failed)


@pytest.mark.parametrize(
    ("name", "value"), [("seed", "42"), ("run_id", "20250101T120000-circuit-breaker-42")]
)
def test_junit_property(run_dir: Path, name: str, value: str) -> None:
    """The suite properties record the seed and the run id."""
    properties = {
        prop.get("name"): prop.get("value") for prop in parse_junit(run_dir).iter("property")
    }
    assert properties[name] == value


def test_html_has_no_external_references(run_dir: Path) -> None:
    """No src, href or CSS url() points to an http(s) address, so the page works offline."""
    html = (run_dir / "report.html").read_text()
    references = re.findall(r"""(?:src|href)\s*=\s*["']?\s*(https?://[^"'\s>]*)""", html)
    css_urls = re.findall(r"url\(\s*['\"]?https?://", html)

    assert references == []
    assert css_urls == []


def test_html_http_only_in_namespaces(run_dir: Path) -> None:
    """Any http(s) address left in the page is an SVG namespace URI."""
    html = (run_dir / "report.html").read_text()
    addresses = set(re.findall(r"https?://[^\"'\s<>]*", html))

    assert addresses <= NAMESPACE_URIS


def test_html_one_svg_per_arm(run_result: RunResult, run_dir: Path) -> None:
    """Each arm with samples gets exactly one inline SVG plot."""
    html = (run_dir / "report.html").read_text()

    assert html.count("<svg") == len(run_result["arms"])
    assert "<?xml" not in html


def test_html_skips_plot_without_samples(run_result: RunResult, tmp_path: Path) -> None:
    """An arm without samples gets a sentence in place of a plot."""
    run_result["arms"]["blip"]["timeline"] = []
    html = (write_reports(run_result, tmp_path) / "report.html").read_text()

    assert html.count("<svg") == len(run_result["arms"]) - 1
    assert "No samples were recorded" in html


@pytest.mark.parametrize(
    "text",
    [
        "control slows down",
        "treatment fails fast",
        "blip error budget",
        "circuit-breaker",
        "circuit breaker",
        "20250101T120000-circuit-breaker-42",
        "time_to_recover &lt; 10s",
        "payments_inflight=3",
    ],
)
def test_html_contains(run_dir: Path, text: str) -> None:
    """The page shows hypothesis names, the header fields, expressions and probes."""
    assert text in (run_dir / "report.html").read_text()


@pytest.mark.parametrize("verdict", ["pass", "fail"])
def test_html_verdict_coloured(run_result: RunResult, tmp_path: Path, verdict: str) -> None:
    """The run verdict in the header carries the CSS class that colours it."""
    run_result["verdict"] = verdict  # type: ignore[typeddict-item]
    html = (write_reports(run_result, tmp_path) / "report.html").read_text()

    assert f'<span class="{verdict}">{verdict.upper()}</span>' in html


def set_hypothesis_name(result: RunResult) -> None:
    """Put the hostile string in the first hypothesis name."""
    result["hypotheses"][0]["name"] = HOSTILE


def set_experiment(result: RunResult) -> None:
    """Put the hostile string in the experiment name."""
    result["experiment"] = HOSTILE


def set_description(result: RunResult) -> None:
    """Put the hostile string in the description."""
    result["description"] = HOSTILE


def set_arm_name(result: RunResult) -> None:
    """Rename the control arm to the hostile string, in the arms and in the hypotheses."""
    result["arms"][HOSTILE] = result["arms"].pop("control")
    for hypothesis in result["hypotheses"]:
        if hypothesis["arm"] == "control":
            hypothesis["arm"] = HOSTILE


def set_rollback_failed(result: RunResult) -> None:
    """Put the hostile string in the list of faults not removed."""
    result["rollback_failed"] = [HOSTILE]


@pytest.mark.parametrize(
    "make_hostile",
    [set_hypothesis_name, set_experiment, set_description, set_arm_name, set_rollback_failed],
)
def test_html_escapes_hostile_string(
    run_result: RunResult, tmp_path: Path, make_hostile: Callable[[RunResult], None]
) -> None:
    """A string with markup from the record is shown as text, never run as a script."""
    make_hostile(run_result)
    html = (write_reports(run_result, tmp_path) / "report.html").read_text()

    assert "<script" not in html
    assert "&lt;script&gt;" in html


def test_latest_points_to_run_dir(run_dir: Path) -> None:
    """results/latest is a relative symlink that resolves to the run directory."""
    latest = run_dir.parent / "latest"

    assert latest.is_symlink()
    assert not Path(latest.readlink()).is_absolute()
    assert latest.resolve() == run_dir.resolve()


def test_latest_moves_to_next_run(run_result: RunResult, tmp_path: Path) -> None:
    """A second run replaces the latest symlink and leaves no temporary link behind."""
    first = write_reports(run_result, tmp_path)
    run_result["run_id"] = "20250101T130000-circuit-breaker-42"
    second = write_reports(run_result, tmp_path)

    assert (tmp_path / "latest").resolve() == second.resolve()
    assert first.is_dir()
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        [first.name, second.name, "latest"]
    )


@pytest.mark.parametrize("run_id", ["", ".", "..", "latest", "a/b", "../escape"])
def test_write_reports_rejects_run_id(run_result: RunResult, tmp_path: Path, run_id: str) -> None:
    """A run id that is not a plain directory name is rejected before anything is written."""
    run_result["run_id"] = run_id
    with pytest.raises(ValueError, match="invalid run id"):
        write_reports(run_result, tmp_path / "results")

    assert not (tmp_path / "results").exists()


def summary_text(result: RunResult, run_dir: Path | None = None) -> str:
    """Print the summary into a recording console and return the plain text."""
    console = Console(record=True, width=120)
    print_summary(result, console, run_dir)
    return console.export_text()


def test_summary_shows_verdict(run_result: RunResult) -> None:
    """The verdict panel shows the run verdict in capitals."""
    assert "FAIL" in summary_text(run_result)


@pytest.mark.parametrize(
    "name",
    [
        "control slows down",
        "treatment fails fast",
        "treatment recovers",
        "blip keeps breaker closed",
        "baseline is healthy",
        "blip error budget",
    ],
)
def test_summary_shows_hypothesis(run_result: RunResult, name: str) -> None:
    """Each hypothesis name appears in the summary."""
    assert name in summary_text(run_result)


@pytest.mark.parametrize("text", ["Arm control", "Arm treatment", "Arm blip", "recovery"])
def test_summary_shows_phase_tables(run_result: RunResult, text: str) -> None:
    """Each arm has a phase table."""
    assert text in summary_text(run_result)


def test_summary_shows_reports_path(run_result: RunResult, run_dir: Path) -> None:
    """The summary shows the directory of the reports."""
    text = summary_text(run_result, run_dir)

    assert "Reports:" in text
    assert run_dir.name in text


def test_summary_prints_markup_literally(run_result: RunResult) -> None:
    """Square brackets in a hypothesis name are printed, not read as rich markup."""
    run_result["hypotheses"][0]["name"] = "[red]bracketed[/red]"

    assert "[red]bracketed[/red]" in summary_text(run_result)


class FakeClock:
    """A clock that tests move forward by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("times", "printed"),
    [
        ([0.0], 1),
        ([0.0, 0.5, 0.99], 1),
        ([0.0, 1.0, 2.0], 3),
        ([0.0, 0.4, 1.2, 1.9, 2.3], 3),
    ],
)
def test_live_view_plain_lines_throttled(times: list[float], printed: int) -> None:
    """On a non-terminal console, at most one plain line is printed per second."""
    output = io.StringIO()
    console = Console(file=output, force_terminal=False, width=120)
    clock = FakeClock()

    with LiveView(console, clock=clock) as view:
        for now in times:
            clock.now = now
            view.update("control", "fault", now, 30.0, 118.25, 0.125, 183.0)

    lines = output.getvalue().splitlines()
    assert len(lines) == printed
    assert "\x1b" not in output.getvalue()


def test_live_view_terminal_keeps_last_status() -> None:
    """On a terminal the last status is drawn when the view closes, even if not yet due."""
    output = io.StringIO()
    console = Console(file=output, force_terminal=True, width=120)
    clock = FakeClock()

    with LiveView(console, clock=clock) as view:
        view.update("control", "baseline", 0.0, 30.0, 100.0, 0.0, 12.0)
        clock.now = 0.5
        view.update("treatment", "recovery", 29.5, 30.0, 90.0, None, None)

    assert "arm=treatment phase=recovery" in output.getvalue()


@pytest.mark.parametrize(
    ("error_rate", "p95", "expected"),
    [
        (0.125, 183.0, "arm=control phase=fault 12/30s rps=118.2 errors=12.50% p95=183.0ms"),
        (None, None, "arm=control phase=fault 12/30s rps=118.2 errors=- p95=-"),
    ],
)
def test_status_line(error_rate: float | None, p95: float | None, expected: str) -> None:
    """The status line shows arm, phase, seconds, req/s, errors and p95, dashes for None."""
    assert format_status("control", "fault", 12.0, 30.0, 118.25, error_rate, p95) == expected


def test_junit_fault_without_effect_fails(run_result: RunResult, tmp_path: Path) -> None:
    """A fault that did not take effect adds a failing testcase in its arm's class."""
    run_result["arms"]["control"]["faults"][0]["took_effect"] = False
    write_junit(run_result, tmp_path / "junit.xml")
    suite = parse_junit(tmp_path)
    cases = [case for case in suite.findall("testcase") if "took effect" in str(case.get("name"))]

    assert len(cases) == 1
    assert cases[0].get("classname") == "circuit-breaker.control"
    failure = cases[0].find("failure")
    assert failure is not None
    assert "did not take effect" in str(failure.get("message"))
