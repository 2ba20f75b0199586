"""Start the Locust worker as a child process and collect its request records."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from harness.platforms.processes import LOOPBACK, ProcessRecord, process_start_time, stop
from harness.timeline import RequestRecord

LOAD_PID_FILE = "load.json"

# Far above any experiment's rate; it only stops a runaway loop.
MAX_REQUESTS_PER_SECOND = 2000


@dataclass
class LoadProgress:
    """The worker's last progress line."""

    requests_last_second: int = 0
    failures_last_second: int = 0
    p95_last_second: float | None = None
    users: int = 0

    @property
    def error_rate(self) -> float | None:
        """Return the error rate of the last second, or None without requests."""
        if not self.requests_last_second:
            return None
        return self.failures_last_second / self.requests_last_second


@dataclass
class LoadRun:
    """One headless Locust run against the edge, bounded in time and request count."""

    host: str
    user_class: str
    users: int
    spawn_rate: float
    duration: float
    records_path: Path
    seed: int
    state_dir: Path
    pid_name: str = LOAD_PID_FILE
    data_rows: int = 10_000
    ramp_s: float | None = None
    progress: LoadProgress = field(default_factory=LoadProgress)
    _proc: subprocess.Popen[str] | None = None
    _reader: threading.Thread | None = None

    def start(self) -> None:
        """Start the worker."""
        max_requests = int(MAX_REQUESTS_PER_SECOND * max(self.duration, 1.0))
        argv = [
            sys.executable, "-m", "harness.load.worker",
            "--host", self.host, "--user-class", self.user_class,
            "--users", str(self.users), "--spawn-rate", str(self.spawn_rate),
            "--duration", str(self.duration), "--max-requests", str(max_requests),
            "--records", str(self.records_path), "--seed", str(self.seed),
        ]  # fmt: skip
        if self.ramp_s is not None:
            argv += ["--ramp", str(self.ramp_s)]
        env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        env["NO_PROXY"] = LOOPBACK
        env["HARNESS_DATA_ROWS"] = str(self.data_rows)
        log = self.records_path.with_suffix(".log").open("w")
        self._proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=log, text=True, env=env, start_new_session=True
        )
        log.close()
        start_time = process_start_time(self._proc.pid) or 0
        record = ProcessRecord("load", "locust", self._proc.pid, start_time, None, log.name)
        self.pid_file.write_text(json.dumps(record.to_json()))
        self._reader = threading.Thread(target=self._read_progress, daemon=True)
        self._reader.start()

    def _read_progress(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                continue
            p95 = data.get("p95")
            self.progress = LoadProgress(
                int(data.get("requests", 0)),
                int(data.get("failures", 0)),
                float(p95) if p95 is not None else None,
                int(data.get("users", 0)),
            )

    def wait(self, timeout: float) -> None:
        """Wait for the worker to finish; stop it if it overruns."""
        assert self._proc is not None
        try:
            self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()

    @property
    def pid_file(self) -> Path:
        """Return where the worker's pid is kept while it runs."""
        return self.state_dir / self.pid_name

    def running(self) -> bool:
        """Tell whether the worker process is still running."""
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> None:
        """Stop the worker: SIGTERM, then SIGKILL after a grace time."""
        if self.running():
            assert self._proc is not None
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)
        self.pid_file.unlink(missing_ok=True)

    def records(self) -> list[RequestRecord]:
        """Read every request record the worker wrote."""
        return read_records(self.records_path)


def stop_stray_load(state_dir: Path) -> bool:
    """Stop a Locust worker left by a run that was killed; return whether one was running."""
    path = state_dir / LOAD_PID_FILE
    if not path.exists():
        return False
    try:
        record = ProcessRecord(**json.loads(path.read_text()))
    except (ValueError, TypeError):
        path.unlink(missing_ok=True)
        return False
    was_running = process_start_time(record.pid) == record.start_time
    stop(record)
    path.unlink(missing_ok=True)
    return was_running


def read_records(path: Path) -> list[RequestRecord]:
    """Read a worker's records file; a torn last line is skipped."""
    result: list[RequestRecord] = []
    if not path.exists():
        return result
    for line in path.read_text().splitlines():
        try:
            start, name, response_ms, ok, status = json.loads(line)
        except (json.JSONDecodeError, ValueError):
            continue
        result.append(RequestRecord(float(start), str(name), float(response_ms), bool(ok),
                                    int(status)))  # fmt: skip
    return result
