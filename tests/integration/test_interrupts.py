"""Interrupted and killed runs leave nothing behind; a failed rollback exits 4."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness import net
from harness.journal import Journal
from harness.platforms.local import LocalPlatform
from harness.platforms.processes import free_port, process_start_time
from tests.conftest import harness_cli

pytestmark = pytest.mark.integration

EXPERIMENT: dict[str, Any] = {
    "name": "interrupt-me",
    "description": "a long fault window to interrupt",
    "pattern": "circuit breaker",
    "load": {"user_class": "CheckoutUser", "users": 4, "spawn_rate": 4},
    "phases": {"baseline": "2s", "fault": "60s", "recovery": "2s"},
    "faults": [{"kind": "toxic", "link": "api->payments", "toxic": "latency",
                "attributes": {"latency": 300}}],
    "arms": {"control": {}, "treatment": {"target": {"api": {"breaker": True}}}},
    "hypotheses": [{"name": "slow", "arm": "control", "phase": "fault",
                    "expression": "p95 > 200ms"}],
}  # fmt: skip


def _start_run(tmp_path: Path, experiment: dict[str, Any]) -> subprocess.Popen[str]:
    path = tmp_path / "interrupt-me.yaml"
    path.write_text(yaml.safe_dump(experiment))
    return subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "run", str(path), "--state-dir",
         str(tmp_path / "state"), "--results-dir", str(tmp_path / "results")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
    )  # fmt: skip


def _wait_for_fault(tmp_path: Path, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    """Wait until the journal shows an applied fault and the proxy lists it."""
    journal = Journal(tmp_path / "state" / "journal.jsonl")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        if journal.outstanding():
            target = LocalPlatform(tmp_path / "state")
            if target.toxics_left():
                return
        time.sleep(0.05)
    raise AssertionError("no fault was applied in time")


def _pids(tmp_path: Path) -> list[int]:
    state = json.loads((tmp_path / "state" / "state.json").read_text())
    return [r["pid"] for r in state["records"]]


def _assert_clean(tmp_path: Path, pids: list[int]) -> None:
    assert Journal(tmp_path / "state" / "journal.jsonl").outstanding() == {}
    assert LocalPlatform(tmp_path / "state").status().empty
    for pid in pids:
        assert process_start_time(pid) is None, f"pid {pid} still running"
    assert not (tmp_path / "state" / "load.json").exists()


@pytest.mark.parametrize(
    "signals",
    [
        [signal.SIGINT],
        [signal.SIGTERM],
        [signal.SIGINT, signal.SIGINT],
        [signal.SIGTERM, signal.SIGINT],
    ],
    ids=["sigint", "sigterm", "double-sigint", "sigterm-then-sigint"],
)
def test_signal_in_fault_window_rolls_back(tmp_path: Path, signals: list[int]) -> None:
    """A signal in the fault window removes the toxic, stops the target and exits 130."""
    proc = _start_run(tmp_path, EXPERIMENT)
    _wait_for_fault(tmp_path, proc)
    pids = _pids(tmp_path)
    for signum in signals:
        proc.send_signal(signum)
        time.sleep(0.05)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "interrupted" in stderr
    _assert_clean(tmp_path, pids)


@pytest.mark.parametrize("leftovers", ["stop", "adopt"])
def test_sigkill_then_reconcile(tmp_path: Path, leftovers: str) -> None:
    """After SIGKILL of the runner, the next start removes the toxic and stops or adopts."""
    proc = _start_run(tmp_path, EXPERIMENT)
    _wait_for_fault(tmp_path, proc)
    pids = _pids(tmp_path)
    proc.kill()
    proc.communicate(timeout=10)
    target = LocalPlatform(tmp_path / "state")
    assert target.toxics_left() != []

    result = harness_cli("reconcile", "--state-dir", str(tmp_path / "state"), "--leftovers",
                         leftovers, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "removed fault left by an earlier run" in result.stderr
    assert "stopped the Locust worker" in result.stderr
    assert Journal(tmp_path / "state" / "journal.jsonl").outstanding() == {}
    if leftovers == "adopt":
        assert not target.status().empty
        assert target.toxics_left() == []
        ok = net.request("POST", f"{target.endpoint('edge')}/checkout", json={})
        assert ok.status_code == 200
        target.down()
    _assert_clean(tmp_path, pids)


def test_fault_proxy_gone_is_a_failed_rollback(tmp_path: Path) -> None:
    """Killing the fault proxy in the fault window makes removal fail: exit 4, never a pass.

    An abort hypothesis breaches once checkouts fail, so the fault window ends early.
    """
    experiment = {
        **EXPERIMENT,
        "hypotheses": [
            {"name": "checkouts mostly work", "arm": "control", "phase": "fault",
             "expression": "error_rate < 50%", "abort": True},
        ],
    }  # fmt: skip
    proc = _start_run(tmp_path, experiment)
    _wait_for_fault(tmp_path, proc)
    target = LocalPlatform(tmp_path / "state")
    holder = target.toxiproxy_process()
    assert holder is not None
    os.kill(holder[0], signal.SIGKILL)
    _, stderr = proc.communicate(timeout=120)

    assert proc.returncode == 4, stderr
    assert "rollback failed" in stderr
    assert "was not removed" in stderr
    assert "nothing is left" in stderr
    report = json.loads((tmp_path / "results" / "latest" / "result.json").read_text())
    assert report["verdict"] == "fail"
    assert report["exit_code"] == 4
    control = report["arms"]["control"]
    assert control["aborted"] is not None
    start, end = control["fault_window"]
    assert end - start < 30
    assert "treatment" not in report["arms"]
    assert Journal(tmp_path / "state" / "journal.jsonl").outstanding() == {}
    assert target.status().empty


def test_second_run_on_same_state_is_refused(tmp_path: Path) -> None:
    """A run while another locks the state folder fails at once with exit 3."""
    proc = _start_run(tmp_path, EXPERIMENT)
    try:
        _wait_for_fault(tmp_path, proc)
        path = tmp_path / "interrupt-me.yaml"
        result = harness_cli("run", str(path), "--state-dir", str(tmp_path / "state"),
                             cwd=tmp_path, timeout=30)  # fmt: skip
        assert result.returncode == 3
        assert "in use by another harness process" in result.stderr
        status = harness_cli("status", "--state-dir", str(tmp_path / "state"), cwd=tmp_path)
        assert status.returncode == 0
        assert "api-1" in status.stdout
        assert LocalPlatform(tmp_path / "state").toxics_left() != []
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    assert proc.returncode == 130


def _wait_for_record(tmp_path: Path, service: str, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    path = tmp_path / "state" / "state.json"
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError):
            state = {}
        if any(r["service"] == service for r in state.get("records", [])):
            return
        time.sleep(0.02)
    raise AssertionError(f"{service} never started")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGKILL], ids=["sigint", "sigkill"])
def test_signal_during_startup_leaves_nothing(tmp_path: Path, signum: int) -> None:
    """A signal while Prometheus is still getting ready leaves no process once reconciled."""
    proc = _start_run(tmp_path, EXPERIMENT)
    _wait_for_record(tmp_path, "prometheus", proc)
    pids = _pids(tmp_path)
    proc.send_signal(signum)
    proc.communicate(timeout=60)
    if signum == signal.SIGINT:
        assert proc.returncode == 130
    else:
        result = harness_cli("reconcile", "--state-dir", str(tmp_path / "state"), cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    _assert_clean(tmp_path, pids)


def test_stale_journal_entry_is_settled(tmp_path: Path) -> None:
    """A journaled toxic on an API port where nothing listens no longer blocks runs."""
    state = tmp_path / "state"
    journal = Journal(state / "journal.jsonl")
    port = free_port()
    journal.record_apply("old", "old/control/0", {
        "kind": "toxic", "toxiproxy": f"http://127.0.0.1:{port}", "proxy": "api_to_payments",
        "toxic": "harness_0_latency_downstream", "link": "api->payments",
        "holder_pid": None, "holder_start": None,
    })  # fmt: skip
    with (state / "journal.jsonl").open("a") as handle:
        handle.write('[]\n{"event": "apply"}\nnot json at all\n')
    result = harness_cli("reconcile", "--state-dir", str(state), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "no longer running" in result.stderr
    assert journal.outstanding() == {}


@pytest.mark.parametrize(
    "content",
    ["garbage", "", "[]", '{"records": [{"bogus": 1}]}'],
    ids=["garbage", "empty", "list", "bad-record"],
)
def test_corrupt_state_file(tmp_path: Path, content: str) -> None:
    """A corrupt state file gives one line and a documented exit code, not a traceback."""
    state = tmp_path / "state"
    state.mkdir()
    (state / "state.json").write_text(content)
    result = harness_cli("status", "--state-dir", str(state), cwd=tmp_path)
    assert "Traceback" not in result.stderr
    assert result.returncode in (0, 3), result.stderr
    if result.returncode == 3:
        assert "state.json" in result.stderr
