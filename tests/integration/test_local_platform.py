"""The local platform against real processes on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from harness import net
from harness.errors import TargetStartError
from harness.faults import FAULT_KINDS, FaultContext, FaultSpec
from harness.journal import Journal
from harness.platforms.local import LocalPlatform
from harness.platforms.processes import (
    ProcessRecord,
    group_members,
    port_listening,
    process_start_time,
    signal_ours,
    spawn,
)
from harness.stack import load_stack

pytestmark = pytest.mark.integration


def _defaults(target: LocalPlatform) -> dict[str, dict[str, float | bool | str]]:
    return target.stack.resolve_settings({}, "defaults")


def test_up_status_down(platform: LocalPlatform) -> None:
    """Every service comes up healthy on loopback, and down leaves nothing running."""
    platform.up(_defaults(platform))
    status = platform.status()
    services = sorted({i.service for i in status.instances})
    assert services == ["api", "edge", "payments", "prometheus", "toxiproxy"]
    assert len([i for i in status.instances if i.service == "api"]) == 3
    assert all(i.healthy for i in status.instances), status.instances
    pids = [i.pid for i in status.instances]

    response = net.request("POST", f"{platform.endpoint('edge')}/checkout", json={})
    assert response.status_code == 200
    assert (platform.state_dir / "logs" / "api-1.log").exists()

    platform.down()
    assert platform.status().empty
    for pid in pids:
        assert pid is not None
        assert process_start_time(pid) is None


def test_checkout_goes_through_the_link(platform: LocalPlatform) -> None:
    """The api reaches payments only through the fault proxy: disabling the link fails checkout."""
    platform.up(_defaults(platform))
    toxiproxy = platform.toxiproxy()
    proxies = net.request("GET", f"{toxiproxy}/proxies").json()
    assert list(proxies) == ["api_to_payments"]

    net.request("POST", f"{toxiproxy}/proxies/api_to_payments", json={"enabled": False})
    failed = net.request("POST", f"{platform.endpoint('edge')}/checkout", json={})
    assert failed.status_code == 502
    net.request("POST", f"{toxiproxy}/proxies/api_to_payments", json={"enabled": True})
    ok = net.request("POST", f"{platform.endpoint('edge')}/checkout", json={})
    assert ok.status_code == 200


def test_up_twice_is_refused(platform: LocalPlatform) -> None:
    """A second up while a stack runs names the running instances instead of starting more."""
    platform.up(_defaults(platform))
    with pytest.raises(TargetStartError, match="already running"):
        platform.up(_defaults(platform))


def test_service_that_fails_names_its_log(tmp_path: Path) -> None:
    """A service that cannot start fails with its name and log file, and nothing is left."""
    stack = load_stack()
    broken = stack.model_copy(deep=True)
    broken.services["payments"].app = "targets.payments.no_such_module:app"
    target = LocalPlatform(tmp_path / "state", broken)
    with pytest.raises(TargetStartError) as caught:
        target.up(_defaults(target))
    message = str(caught.value)
    assert message.startswith("payments:")
    assert "payments-1.log" in message
    assert "\n" not in message
    assert target.status().empty


def test_reused_pid_is_never_signalled(tmp_path: Path) -> None:
    """A record whose start time differs from the live process is left alone."""
    record = spawn("demo", "sleeper", ["sleep", "30"], tmp_path / "sleeper.log")
    try:
        stale = ProcessRecord(record.service, record.name, record.pid, record.start_time + 1,
                              None, record.log)  # fmt: skip
        assert signal_ours(stale, signal.SIGTERM) is False
        assert process_start_time(record.pid) == record.start_time
    finally:
        os.kill(record.pid, signal.SIGKILL)
        os.waitpid(record.pid, 0)


def test_kill_pause_resume_instance(platform: LocalPlatform) -> None:
    """Kill removes one api instance; pause and resume freeze and thaw another."""
    platform.up(_defaults(platform))
    platform.pause("api-2")
    api2 = next(i for i in platform.status().instances if i.name == "api-2")
    assert api2.healthy is False
    platform.resume("api-2")
    platform.kill("api-1")
    deadline = time.monotonic() + 5
    while "api-1" in platform.instances("api") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert platform.instances("api") == ["api-2", "api-3"]


def _toxic_spec(toxic: str = "latency", **attributes: int) -> FaultSpec:
    return FaultSpec(kind="toxic", link="api->payments", toxic=toxic, attributes=attributes)


def test_toxic_without_traffic_has_no_effect(platform: LocalPlatform) -> None:
    """A toxic that no connection picks up is reported as not taking effect."""
    platform.up(_defaults(platform))
    kind = FAULT_KINDS["toxic"]
    spec = _toxic_spec(latency=100)
    data = kind.prepare(spec, FaultContext(platform, "test", 0))
    kind.apply(spec, data)
    assert kind.took_effect(spec, data) is False


def test_toxic_with_traffic_takes_effect_and_is_removed(platform: LocalPlatform) -> None:
    """With checkouts flowing the toxic takes effect; the journal removes it again."""
    platform.up(_defaults(platform))
    kind = FAULT_KINDS["toxic"]
    spec = _toxic_spec(latency=200)
    data = kind.prepare(spec, FaultContext(platform, "test", 0))
    journal = Journal(platform.state_dir / "journal.jsonl")
    journal.record_apply("test", "test/0", data)
    kind.apply(spec, data)

    edge = platform.endpoint("edge")
    started = time.monotonic()
    net.request("POST", f"{edge}/checkout", json={})
    assert time.monotonic() - started >= 0.2
    assert kind.took_effect(spec, data) is True
    assert platform.toxics_left() == ["api_to_payments/harness_0_latency_downstream"]

    assert journal.remove("test", "test/0", data) is None
    assert platform.toxics_left() == []
    assert journal.outstanding() == {}


def test_killed_nginx_master_leaves_no_worker(platform: LocalPlatform) -> None:
    """Workers of a killed nginx master are found by their session and stopped by down."""
    platform.up(_defaults(platform))
    edge = next(r for r in platform.records() if r.service == "edge")
    os.kill(edge.pid, signal.SIGKILL)
    time.sleep(0.2)
    assert group_members(edge) != []
    assert any(i.service == "edge" for i in platform.status().instances)
    platform.down()
    assert group_members(edge) == []
    assert not port_listening(edge.port or 0)
    assert platform.audit() == []
