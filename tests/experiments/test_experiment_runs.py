"""Whole experiment runs through the command line, with short phases, on real processes.

`make test` runs the circuit-breaker pass and one negative control; the rest are marked slow.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.experiment import EXPERIMENTS_DIR
from harness.platforms.local import LocalPlatform
from tests.conftest import harness_cli

pytestmark = pytest.mark.integration


def _write_variant(tmp_path: Path, name: str, change: Any = None) -> Path:
    """Copy a shipped experiment into tmp_path, changed by a function of its data."""
    data = yaml.safe_load((EXPERIMENTS_DIR / f"{name}.yaml").read_text())
    if change is not None:
        change(data)
    path = tmp_path / f"{name}-variant.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _run(tmp_path: Path, path: Path) -> tuple[int, dict[str, Any], str]:
    result = harness_cli(
        "run", str(path), "--state-dir", str(tmp_path / "state"),
        "--results-dir", str(tmp_path / "results"), cwd=tmp_path, timeout=900,
    )  # fmt: skip
    latest = tmp_path / "results" / "latest"
    report = json.loads((latest / "result.json").read_text()) if latest.exists() else {}
    return result.returncode, report, result.stdout + result.stderr


def _failed(report: dict[str, Any]) -> list[str]:
    return [
        f"{h['arm']}/{h['name']}: {h['expression']} observed {h['observed']}"
        for h in report.get("hypotheses", [])
        if h["verdict"] != "pass"
    ]


def _assert_nothing_left(tmp_path: Path) -> None:
    target = LocalPlatform(tmp_path / "state")
    assert target.status().empty
    journal = tmp_path / "state" / "journal.jsonl"
    from harness.journal import Journal

    assert Journal(journal).outstanding() == {}


def _shorten(data: dict[str, Any]) -> None:
    """Cut phases so a run of three arms takes about a minute."""
    data["phases"] = {"baseline": "4s", "fault": "6s", "recovery": "7s"}


def test_circuit_breaker_passes(tmp_path: Path) -> None:
    """The circuit-breaker experiment passes with short phases and leaves nothing behind."""
    code, report, output = _run(tmp_path, _write_variant(tmp_path, "circuit-breaker", _shorten))
    assert code == 0, (_failed(report), output[-3000:])
    assert report["verdict"] == "pass"
    control = report["arms"]["control"]["phases"]["fault"]
    treatment = report["arms"]["treatment"]["phases"]["fault"]
    assert control["p95"] > 1800
    assert treatment["p50"] < 50
    run_dir = (tmp_path / "results" / "latest").resolve()
    assert (run_dir / "junit.xml").exists()
    assert (run_dir / "report.html").exists()
    _assert_nothing_left(tmp_path)


def test_breaker_off_in_both_arms_fails(tmp_path: Path) -> None:
    """With the breaker off in the treatment too, the experiment fails with exit code 1."""

    def breaker_off(data: dict[str, Any]) -> None:
        _shorten(data)
        data["arms"]["treatment"]["target"] = data["arms"]["control"]["target"]
        del data["arms"]["blip"]
        data["hypotheses"] = [h for h in data["hypotheses"] if h["arm"] != "blip"]

    code, report, output = _run(tmp_path, _write_variant(tmp_path, "circuit-breaker", breaker_off))
    assert code == 1, output[-3000:]
    failed = _failed(report)
    assert any("treatment/breaker fails fast" in f for f in failed), failed
    _assert_nothing_left(tmp_path)


@pytest.mark.slow
def test_circuit_breaker_without_fault_fails(tmp_path: Path) -> None:
    """With a noop toxic instead of latency, nothing degrades and the experiment fails."""

    def no_fault(data: dict[str, Any]) -> None:
        _shorten(data)
        data["faults"] = [{"kind": "toxic", "link": "api->payments", "toxic": "noop"}]
        del data["arms"]["blip"]
        data["hypotheses"] = [h for h in data["hypotheses"] if h["arm"] != "blip"]

    code, report, output = _run(tmp_path, _write_variant(tmp_path, "circuit-breaker", no_fault))
    assert code == 1, output[-3000:]
    assert any("control/every checkout waits" in f for f in _failed(report))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["timeouts", "retries"])
def test_experiment_passes(tmp_path: Path, name: str) -> None:
    """The timeouts and retries experiments pass as shipped."""
    code, report, output = _run(tmp_path, _write_variant(tmp_path, name))
    assert code == 0, (_failed(report), output[-3000:])
    _assert_nothing_left(tmp_path)


@pytest.mark.slow
def test_retries_off_in_both_arms_fails(tmp_path: Path) -> None:
    """With retries off in the treatment too, the experiment fails."""

    def retries_off(data: dict[str, Any]) -> None:
        data["arms"]["treatment"]["target"] = data["arms"]["control"]["target"]

    code, report, output = _run(tmp_path, _write_variant(tmp_path, "retries", retries_off))
    assert code == 1, output[-3000:]
    assert any("treatment/retries hide the flakiness" in f for f in _failed(report))


@pytest.mark.slow
def test_timeouts_off_in_both_arms_fails(tmp_path: Path) -> None:
    """With no deadline in the treatment too, the experiment fails."""

    def deadline_off(data: dict[str, Any]) -> None:
        data["arms"]["treatment"]["target"] = data["arms"]["control"]["target"]

    code, report, output = _run(tmp_path, _write_variant(tmp_path, "timeouts", deadline_off))
    assert code == 1, output[-3000:]
    assert any("treatment/deadline bounds latency" in f for f in _failed(report))


def test_sharding_passes(tmp_path: Path) -> None:
    """The sharding experiment (small seed data) passes and leaves nothing behind."""
    code, report, output = _run(tmp_path, _write_variant(tmp_path, "sharding"))
    assert code == 0, (_failed(report), output[-3000:])
    treatment = report["arms"]["treatment"]["phases"]["fault"]["probes"]
    assert treatment["odd_tenants_error_rate"] < 0.05
    assert treatment["even_tenants_error_rate"] > 0.9
    _assert_nothing_left(tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    ["cache-aside", "read-replicas", "indexing", "pagination", "rate-limiting", "load-balancing"],
)
def test_data_experiment_passes(tmp_path: Path, name: str) -> None:
    """Each data experiment passes as shipped."""
    code, report, output = _run(tmp_path, _write_variant(tmp_path, name))
    assert code == 0, (_failed(report), output[-3000:])
    _assert_nothing_left(tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "failing"),
    [
        ("cache-aside", "treatment/hits are fast"),
        ("read-replicas", "treatment/the replica takes the reads"),
        ("sharding", "treatment/the other shard's tenants are served"),
    ],
)
def test_data_pattern_off_fails(tmp_path: Path, name: str, failing: str) -> None:
    """With the pattern off in the treatment too, the data experiment fails."""

    def pattern_off(data: dict[str, Any]) -> None:
        data["arms"]["treatment"]["target"] = data["arms"]["control"]["target"]
        if name == "sharding":
            data["arms"]["treatment"]["faults"] = data["arms"]["control"]["faults"]

    code, report, output = _run(tmp_path, _write_variant(tmp_path, name, pattern_off))
    assert code == 1, output[-3000:]
    assert any(failing in f for f in _failed(report)), _failed(report)
