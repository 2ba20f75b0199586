"""Scaling api instances behind the edge, and memory limits through cgroups."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import requests

from harness import net
from harness.platforms import cgroups
from harness.platforms.local import LocalPlatform
from harness.platforms.processes import port_listening

pytestmark = pytest.mark.integration


errors: list[str] = []


def _count_errors(edge: str, stop: threading.Event, results: dict[str, int]) -> None:
    deadline = time.monotonic() + 120
    while not stop.is_set() and time.monotonic() < deadline:
        try:
            # A connection per request: on reload nginx closes idle keep-alive connections of
            # its old workers, so a client that reuses one gets a closed connection.
            response = net.request("GET", f"{edge}/catalog", timeout=5,
                                   headers={"Connection": "close"})  # fmt: skip
            status = response.status_code
            ok = status == 200
            error = f"status {status}"
        except requests.RequestException as exc:
            ok = False
            error = repr(exc)
        results["ok" if ok else "failed"] += 1
        if not ok:
            errors.append(f"{time.monotonic():.3f} {error}")


def test_scale_up_and_down_drops_nothing(platform: LocalPlatform) -> None:
    """Scaling 3 -> 5 -> 2 under steady requests fails none and leaves the right instances."""
    platform.up(platform.stack.resolve_settings({}, "test"))
    edge = platform.endpoint("edge")
    stop = threading.Event()
    results = {"ok": 0, "failed": 0}
    worker = threading.Thread(target=_count_errors, args=(edge, stop, results))
    worker.start()
    try:
        platform.scale("api", 5)
        assert platform.instances("api") == ["api-1", "api-2", "api-3", "api-4", "api-5"]
        removed_port = platform.instance_port("api-5")
        platform.scale("api", 2)
        assert platform.instances("api") == ["api-1", "api-2"]
        time.sleep(0.5)
    finally:
        stop.set()
        worker.join()
    assert results["failed"] == 0, errors
    assert results["ok"] > 20
    assert removed_port is not None
    assert not port_listening(removed_port)
    conf = (platform.state_dir / "run" / "nginx.conf").read_text()
    assert conf.count("server 127.0.0.1:") == 2


def test_scale_rejects_other_services(platform: LocalPlatform) -> None:
    """Only api-like services scale, from 1 to 10 instances."""
    platform.up(platform.stack.resolve_settings({}, "test"))
    with pytest.raises(Exception, match="does not scale"):
        platform.scale("edge", 2)
    with pytest.raises(Exception, match="invalid count"):
        platform.scale("api", 0)


def test_memory_limit_puts_instance_in_cgroup(platform: LocalPlatform) -> None:
    """A memory limit setting puts each api instance in a cgroup of its own, removed on down."""
    platform.up(platform.stack.resolve_settings({"api": {"memory_limit_mb": 256}}, "test"))
    paths = [Path(p) for p in platform._cgroups]
    assert len(paths) == 3
    for path in paths:
        limit_file = "memory.max" if (path / "memory.max").exists() else "memory.limit_in_bytes"
        assert int((path / limit_file).read_text()) == 256 * 1024 * 1024
        assert (path / "cgroup.procs").read_text().strip() != ""
    memory = platform.instance_memory("api-1")
    assert memory is not None
    assert memory[1] == 0
    platform.down()
    for path in paths:
        assert not path.exists()
    assert cgroups.memory_cgroup("x").parent.exists()


def test_memory_limit_and_service_figures(platform: LocalPlatform) -> None:
    """The service figures count instances and resident memory, and the cgroup peak."""
    platform.up(platform.stack.resolve_settings({"api": {"memory_limit_mb": 256}}, "test"))
    figures = platform.service_figures("api")
    assert figures["instances"] == 3
    assert 10 < figures["rss_mb"] < 3 * 256
    assert 0 < figures["memory_peak_mb"] <= 256
    assert figures["oom_kills"] == 0
    assert "memory_peak_mb" not in platform.service_figures("edge")
    assert "oom_kills" not in platform.service_figures("edge")


def test_down_from_a_later_process_removes_cgroups(platform: LocalPlatform) -> None:
    """A new platform object on the same state folder, as after a killed run, removes them."""
    platform.up(platform.stack.resolve_settings({"api": {"memory_limit_mb": 256}}, "test"))
    paths = [Path(p) for p in platform._cgroups]
    assert len(paths) == 3
    later = LocalPlatform(platform.state_dir)
    later.down()
    for path in paths:
        assert not path.exists()


def test_reconcile_removes_memory_cgroups_of_a_killed_run(tmp_path: Path) -> None:
    """A journaled memory-limit action left open: reconcile removes its empty cgroups."""
    from harness.faults.memory import MemoryLimitAction
    from harness.journal import Journal

    platform = LocalPlatform(tmp_path / "state")
    prefix = platform.memory_cgroup_prefix()
    left = cgroups.memory_cgroup(f"{prefix}api-1-12345")
    left.mkdir()
    other = cgroups.memory_cgroup("someone-else-api-1-1")
    other.mkdir()
    try:
        journal = Journal(tmp_path / "state" / "journal.jsonl")
        data = MemoryLimitAction.data(prefix, {"api": 256})
        journal.record_apply("run", "run/treatment/memory", data)
        removed, failed = journal.reconcile()
        assert removed == ["run/treatment/memory"]
        assert failed == []
        assert not left.exists()
        assert other.exists()
        assert journal.outstanding() == {}
    finally:
        cgroups.remove(left)
        cgroups.remove(other)
