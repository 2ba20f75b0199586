"""Start the Locust worker as a child process and collect its request records."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from harness.platforms.processes import LOOPBACK
from harness.timeline import RequestRecord

# Far above any experiment's rate; it only stops a runaway loop.
MAX_REQUESTS_PER_SECOND = 2000


@dataclass
class LoadProgress:
    """The worker's last progress line."""

    requests_last_second: int = 0
    failures_total: int = 0
    users: int = 0


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
        env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        env["NO_PROXY"] = LOOPBACK
        log = self.records_path.with_suffix(".log").open("w")
        self._proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=log, text=True, env=env, start_new_session=True
        )
        log.close()
        self._reader = threading.Thread(target=self._read_progress, daemon=True)
        self._reader.start()

    def _read_progress(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                continue
            self.progress = LoadProgress(
                int(data.get("requests", 0)),
                int(data.get("failures_total", 0)),
                int(data.get("users", 0)),
            )

    def wait(self, timeout: float) -> None:
        """Wait for the worker to finish; stop it if it overruns."""
        assert self._proc is not None
        try:
            self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()

    def stop(self) -> None:
        """Stop the worker: SIGTERM, then SIGKILL after a grace time."""
        if self._proc is None or self._proc.poll() is not None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=5)

    def records(self) -> list[RequestRecord]:
        """Read every request record the worker wrote."""
        result: list[RequestRecord] = []
        if not self.records_path.exists():
            return result
        for line in self.records_path.read_text().splitlines():
            try:
                start, name, response_ms, ok, status = json.loads(line)
            except (json.JSONDecodeError, ValueError):
                continue
            result.append(RequestRecord(float(start), str(name), float(response_ms), bool(ok),
                                        int(status)))  # fmt: skip
        return result
