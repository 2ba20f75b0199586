"""Reports of a finished run: result.json, junit.xml and report.html in the run's directory."""

from __future__ import annotations

import os
from pathlib import Path

from harness.report.html import write_html
from harness.report.json_report import load_result, write_json
from harness.report.junit import write_junit
from harness.result import RunResult

__all__ = ["load_result", "point_latest", "write_reports"]

LATEST = "latest"


def write_reports(result: RunResult, results_dir: Path) -> Path:
    """Write result.json, junit.xml and report.html to `results_dir/<run_id>/`.

    Points `results_dir/latest` at that directory afterwards and returns the directory.
    Raises ValueError when the run id is not a plain directory name.
    """
    run_id = result["run_id"]
    if run_id in ("", ".", "..", LATEST) or "/" in run_id or "\\" in run_id or "\0" in run_id:
        raise ValueError(
            f"invalid run id {run_id!r}: it must be a plain directory name, "
            f"not empty, not {LATEST!r} and without path separators"
        )

    run_dir = results_dir / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(result, run_dir / "result.json")
    write_junit(result, run_dir / "junit.xml")
    write_html(result, run_dir / "report.html")

    point_latest(results_dir, run_dir)
    return run_dir


def point_latest(results_dir: Path, run_dir: Path) -> None:
    """Point the `latest` symlink in `results_dir` at `run_dir`, replacing it atomically.

    The link is relative, so it stays valid when the results directory is moved or copied.
    A reader sees either the old or the new target, never a missing link, because the new
    link is made under a temporary name and renamed over the old one.
    """
    link = results_dir / LATEST
    temporary = results_dir / f".{LATEST}.{os.getpid()}"
    temporary.unlink(missing_ok=True)
    temporary.symlink_to(os.path.relpath(run_dir, results_dir))
    try:
        os.replace(temporary, link)
    except OSError:
        temporary.unlink(missing_ok=True)
        raise
