"""The auto-scaling experiment on real processes: the scaler's verdicts and its negative control.

`make test` runs the pass run as the compute tier's representative; the negative is slow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.experiments.test_experiment_runs import (
    _assert_nothing_left,
    _failed,
    _run,
    _write_variant,
)

pytestmark = pytest.mark.integration


def _shorten(data: dict[str, Any]) -> None:
    data["phases"] = {"baseline": "5s", "fault": "14s", "recovery": "12s"}


def test_auto_scaling_passes(tmp_path: Path) -> None:
    """The scaler adds instances after a lag with refused requests, then scales back down."""
    code, report, output = _run(tmp_path, _write_variant(tmp_path, "auto-scaling", _shorten))
    assert code == 0, (_failed(report), output[-3000:])
    treatment = report["arms"]["treatment"]
    ups = [e for e in treatment["scaling"] if e["after"] > e["before"]]
    assert ups and ups[0]["before"] == 1
    assert treatment["scale_up_lag"] > 0
    assert treatment["phases"]["fault"]["failures"] > 0
    assert treatment["phases"]["recovery"]["probes"]["instances_min"] == 1
    assert report["arms"]["control"]["phases"]["fault"]["probes"]["instances_max"] == 1
    _assert_nothing_left(tmp_path)


@pytest.mark.slow
def test_without_the_scaler_fails(tmp_path: Path) -> None:
    """With the scaler off in the treatment too, the experiment fails with exit code 1."""

    def no_scaler(data: dict[str, Any]) -> None:
        _shorten(data)
        del data["arms"]["treatment"]["autoscale"]

    code, report, output = _run(tmp_path, _write_variant(tmp_path, "auto-scaling", no_scaler))
    assert code == 1, output[-3000:]
    failed = {h["name"] for h in report["hypotheses"] if h["verdict"] == "fail"}
    assert "the scaler adds instances" in failed
    assert "the scaled service carries the spike" in failed
    _assert_nothing_left(tmp_path)


def test_rejected_scaler_query_is_invalid_input(tmp_path: Path) -> None:
    """A query Prometheus rejects ends the run with exit code 2 and leaves nothing behind."""

    def bad_query(data: dict[str, Any]) -> None:
        data["phases"] = {"baseline": "1s", "fault": "1s", "recovery": "1s"}
        data["arms"]["treatment"]["autoscale"]["promql"] = "sum(("

    code, _, output = _run(tmp_path, _write_variant(tmp_path, "auto-scaling", bad_query))
    assert code == 2, output[-3000:]
    assert "autoscale.promql: invalid value 'sum(('" in output
    _assert_nothing_left(tmp_path)
