"""The backpressure experiment: the blobs service, the edge's route to it, and whole runs.

The whole runs are marked slow; the blobs app and the edge's configuration are checked cheaply.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tracemalloc
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from harness.experiment import EXPERIMENTS_DIR
from harness.platforms.local import LocalPlatform, UpOptions
from targets.blobs import app as blobs
from tests.experiments.test_experiment_runs import _failed, _run

GIB = 1024 * 1024 * 1024


@pytest.mark.parametrize(
    "size",
    [0, 1, blobs.CHUNK_BYTES - 1, blobs.CHUNK_BYTES, blobs.CHUNK_BYTES + 1, 3 * blobs.MIB],
)
def test_chunks_add_up_to_size(size: int) -> None:
    """The chunks of an object add up to its size, none larger than a chunk."""
    pieces = list(blobs.chunks(size))
    assert sum(len(p) for p in pieces) == size
    assert all(0 < len(p) <= blobs.CHUNK_BYTES for p in pieces)


def test_chunks_of_a_gib_are_lazy() -> None:
    """Iterating over 1 GiB of chunks never has more than 1 MiB allocated at once."""
    tracemalloc.start()
    try:
        total = sum(len(p) for p in blobs.chunks(GIB))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == GIB
    assert peak < blobs.MIB


@pytest.mark.parametrize("size_mib", [1, 8])
def test_build_body_allocates_the_object(size_mib: int) -> None:
    """Buffering keeps the whole object in memory at once."""
    tracemalloc.start()
    try:
        body = blobs.build_body(size_mib * blobs.MIB)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(body) == size_mib * blobs.MIB
    assert peak >= size_mib * blobs.MIB


async def _get(app: Any, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://blobs") as client:
        return await client.get(path)


def _produced(mode: str) -> float:
    value = blobs.PRODUCED.labels(mode)._value.get()
    return float(value)


@pytest.mark.parametrize("mode", ["buffer", "stream"])
def test_object_download_counts_bytes(monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    """`GET /blobs/object` sends the configured size and counts it as produced."""
    size = 2 * blobs.MIB + 5
    monkeypatch.setattr(blobs, "MODE", mode)
    monkeypatch.setattr(blobs, "SIZE_BYTES", size)
    before = _produced(mode)
    response = asyncio.run(_get(blobs.app, "/blobs/object"))
    assert response.status_code == 200
    assert len(response.content) == size
    assert response.headers["content-length"] == str(size)
    assert response.content[:256] == bytes(range(256))
    assert _produced(mode) - before == size


def _nginx_conf(tmp_path: Path, ports: dict[str, int]) -> str:
    platform = LocalPlatform(tmp_path / "state", options=UpOptions(services=["blobs"]))
    (tmp_path / "state" / "run").mkdir(parents=True)
    path = platform._write_nginx_conf("edge", ports, {}, frozenset())
    return path.read_text()


def test_edge_routes_blobs_through_link(tmp_path: Path) -> None:
    """With the edge->blobs link's port, the edge passes /blobs/ to it unbuffered."""
    conf = _nginx_conf(tmp_path, {"edge": 41000, "link:edge->blobs": 41001})
    block = conf[conf.index("location /blobs/ {") :]
    block = block[: block.index("}")]
    assert "proxy_pass http://127.0.0.1:41001;" in block
    assert "proxy_buffering off;" in block
    assert "proxy_read_timeout 300s;" in block


def test_edge_without_link_has_no_blobs_route(tmp_path: Path) -> None:
    """Without the link's port (blobs not running), the edge has only its api route."""
    conf = _nginx_conf(tmp_path, {"edge": 41000, "link:api->payments": 41002})
    assert "location /blobs/" not in conf
    assert conf.count("location ") == 1


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed")
def test_edge_conf_with_blobs_route_is_valid(tmp_path: Path) -> None:
    """nginx accepts the configuration with the blobs route (`nginx -t`)."""
    conf = _nginx_conf(tmp_path, {"edge": 41000, "link:edge->blobs": 41001})
    run = tmp_path / "state" / "run"
    # The upstream lists running api instances, and none run here; nginx needs one server.
    conf = conf.replace("keepalive 64;", "server 127.0.0.1:41003;\n        keepalive 64;")
    (run / "nginx.conf").write_text(conf)
    (tmp_path / "state" / "logs").mkdir()
    (tmp_path / "state" / "tmp").mkdir()
    nginx = shutil.which("nginx")
    assert nginx is not None
    result = subprocess.run(
        [nginx, "-t", "-e", str(tmp_path / "state" / "logs" / "edge.log"), "-p", str(run),
         "-c", str(run / "nginx.conf")],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


# Whole runs ---------------------------------------------------------------------------------


def _write_variant(tmp_path: Path, change: Any) -> Path:
    data = yaml.safe_load((EXPERIMENTS_DIR / "backpressure.yaml").read_text())
    data["phases"] = {"baseline": "4s", "fault": "20s", "recovery": "4s"}
    change(data)
    path = tmp_path / "backpressure-variant.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _fault_probes(report: dict[str, Any], arm: str) -> dict[str, Any]:
    probes: dict[str, Any] = report["arms"][arm]["phases"]["fault"]["probes"]
    return probes


@pytest.mark.slow
@pytest.mark.integration
def test_backpressure_passes(tmp_path: Path) -> None:
    """With short phases the experiment passes: buffering dies, streaming runs at link rate."""
    code, report, output = _run(tmp_path, _write_variant(tmp_path, lambda data: None))
    assert code == 0, (_failed(report), output[-3000:])
    control = _fault_probes(report, "control")
    treatment = _fault_probes(report, "treatment")
    assert control["ooms"] >= 1
    assert control["peak_mb"] > 200
    assert control["download_error_rate"] == 1.0
    assert treatment["ooms"] == 0
    assert treatment["download_error_rate"] == 0.0
    assert treatment["peak_mb"] < 128
    assert 0.8 < treatment["producer_vs_reader"] < 1.4
    assert LocalPlatform(tmp_path / "state").status().empty


@pytest.mark.slow
@pytest.mark.integration
def test_without_bandwidth_toxic_producer_runs_free(tmp_path: Path) -> None:
    """With no slow link the producer runs far above the link's rate and the run fails."""

    def no_toxic(data: dict[str, Any]) -> None:
        data["faults"] = [f for f in data["faults"] if f["kind"] != "toxic"]

    code, report, output = _run(tmp_path, _write_variant(tmp_path, no_toxic))
    assert code == 1, output[-3000:]
    failed = _failed(report)
    assert any("treatment/the producer is throttled" in f for f in failed), failed


@pytest.mark.slow
@pytest.mark.integration
def test_buffering_in_both_arms_fails(tmp_path: Path) -> None:
    """With buffering in the treatment too, the treatment's downloads fail and the run fails."""

    def buffer_both(data: dict[str, Any]) -> None:
        data["arms"]["treatment"]["target"] = data["arms"]["control"]["target"]

    code, report, output = _run(tmp_path, _write_variant(tmp_path, buffer_both))
    assert code == 1, output[-3000:]
    failed = _failed(report)
    assert any("treatment/streaming serves every download" in f for f in failed), failed
