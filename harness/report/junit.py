"""The CI report: junit.xml, one test case per hypothesis."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path

from harness.result import HypothesisResult, RunResult


def write_junit(result: RunResult, path: Path) -> None:
    """Write the hypotheses of a run to `path` as a JUnit XML test suite.

    The suite is named after the experiment. Each hypothesis becomes a test case with the
    class name `<experiment>.<arm>`, failing when its verdict is fail. Faults that could not
    be removed add one more failing case, named `rollback`, and each fault that did not take
    effect adds a failing case of its arm, so a CI job that reads only this file reports them.
    """
    experiment = result["experiment"]
    cases = [_hypothesis_case(experiment, hypothesis) for hypothesis in result["hypotheses"]]
    if result["rollback_failed"]:
        cases.append(_rollback_case(experiment, result["rollback_failed"]))
    for arm_name, arm in result["arms"].items():
        for fault in arm["faults"]:
            if not fault["took_effect"]:
                cases.append(_no_effect_case(experiment, arm_name, fault["kind"], fault["target"]))

    failures = sum(1 for case in cases if case.find("failure") is not None)
    suite = ET.Element(
        "testsuite",
        {
            "name": experiment,
            "tests": str(len(cases)),
            "failures": str(failures),
            "errors": "0",
            "skipped": "0",
            "timestamp": result["started_at"],
        },
    )
    duration = _duration(result["started_at"], result["finished_at"])
    if duration is not None:
        suite.set("time", f"{duration:.3f}")

    properties = ET.SubElement(suite, "properties")
    for name, value in (
        ("run_id", result["run_id"]),
        ("seed", str(result["seed"])),
        ("pattern", result["pattern"]),
        ("platform", result["platform"]),
        ("verdict", result["verdict"]),
    ):
        ET.SubElement(properties, "property", {"name": name, "value": value})
    suite.extend(cases)

    root = ET.Element("testsuites", {"tests": str(len(cases)), "failures": str(failures)})
    root.append(suite)
    tree = ET.ElementTree(root)
    ET.indent(tree)
    tree.write(path, encoding="utf-8", xml_declaration=True)


def failure_message(hypothesis: HypothesisResult) -> str:
    """Format the expression and observed value of a hypothesis as one line."""
    observed = hypothesis["observed"]
    evidence = "no value observed" if observed is None else f"observed {observed:g}"
    return f"{hypothesis['phase']}: {hypothesis['expression']}, {evidence}"


def _hypothesis_case(experiment: str, hypothesis: HypothesisResult) -> ET.Element:
    case = ET.Element(
        "testcase",
        {"classname": f"{experiment}.{hypothesis['arm']}", "name": hypothesis["name"]},
    )
    if hypothesis["verdict"] == "fail":
        message = failure_message(hypothesis)
        failure = ET.SubElement(case, "failure", {"message": message, "type": "hypothesis"})
        failure.text = message
    return case


def _rollback_case(experiment: str, rollback_failed: list[str]) -> ET.Element:
    case = ET.Element("testcase", {"classname": experiment, "name": "rollback"})
    message = f"{len(rollback_failed)} fault(s) not removed: " + ", ".join(rollback_failed)
    failure = ET.SubElement(case, "failure", {"message": message, "type": "rollback"})
    failure.text = "\n".join(rollback_failed)
    return case


def _no_effect_case(experiment: str, arm: str, kind: str, target: str) -> ET.Element:
    name = f"fault {kind} on {target} took effect"
    case = ET.Element("testcase", {"classname": f"{experiment}.{arm}", "name": name})
    message = f"fault {kind} on {target} did not take effect"
    ET.SubElement(case, "failure", {"message": message, "type": "fault"})
    return case


def _duration(started_at: str, finished_at: str) -> float | None:
    # The timestamps come from the runner as ISO 8601 text; a run without them still gets a
    # report, only without a suite time.
    try:
        started = datetime.fromisoformat(started_at)
        finished = datetime.fromisoformat(finished_at)
        return (finished - started).total_seconds()
    except (ValueError, TypeError):
        return None
