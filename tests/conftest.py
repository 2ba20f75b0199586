"""Shared fixtures: an isolated state folder per test and the harness command line."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.platforms.local import LocalPlatform

REPO = Path(__file__).resolve().parent.parent


def harness_cli(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run the `harness` command line in a folder and capture its output."""
    env = dict(os.environ)
    env.pop("HARNESS_SEED", None)
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[LocalPlatform]:
    """A local platform with its own state folder, stopped after the test."""
    target = LocalPlatform(tmp_path / "state")
    try:
        yield target
    finally:
        target.down()
