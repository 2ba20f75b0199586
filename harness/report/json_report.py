"""The machine-readable report: result.json."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import cast

from harness.result import RunResult


def write_json(result: RunResult, path: Path) -> None:
    """Write the run record to `path` as JSON indented by 2 spaces.

    NaN and infinite floats become null, because JSON has no literal for them and strict
    parsers reject the `NaN` that Python would otherwise write. Values that JSON cannot
    represent, such as a Path in a fault's attributes, are written as their `str()`.
    """
    text = json.dumps(_finite(result), indent=2, default=str, allow_nan=False)
    path.write_text(text + "\n", encoding="utf-8")


def load_result(path: Path) -> RunResult:
    """Read a result.json written by `write_json` back into a run record.

    JSON has no tuples, so each arm's `fault_window` is turned back from a list into a tuple.
    The record is not validated beyond that.
    """
    result = cast(RunResult, json.loads(path.read_text(encoding="utf-8")))
    for arm in result["arms"].values():
        window = arm["fault_window"]
        if window is not None:
            arm["fault_window"] = (window[0], window[1])
    return result


def _finite(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value
