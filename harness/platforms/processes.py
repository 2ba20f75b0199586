"""Child processes of the local platform: start, identify by pid and start time, stop."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import requests

from harness import net
from harness.errors import TargetStartError

LOOPBACK = "127.0.0.1"


@dataclass
class ProcessRecord:
    """A process the harness started; the start time distinguishes it from a reused pid."""

    service: str
    name: str
    pid: int
    start_time: int
    port: int | None
    log: str

    def to_json(self) -> dict[str, object]:
        """Return the record as a JSON object."""
        return asdict(self)


_spawn_hooks: list[Callable[[ProcessRecord], None]] = []


@contextmanager
def tracking(hook: Callable[[ProcessRecord], None]) -> Iterator[None]:
    """Call a hook with every process spawned in the block, before any wait on it, so an
    interrupt during a health check still leaves the process recorded."""
    _spawn_hooks.append(hook)
    try:
        yield
    finally:
        _spawn_hooks.remove(hook)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def port_listening(port: int) -> bool:
    """Tell whether something accepts TCP connections on 127.0.0.1:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((LOOPBACK, port)) == 0


def process_start_time(pid: int) -> int | None:
    """Return the start time of a process in clock ticks since boot, or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name in field 2 may hold spaces, so split after its closing parenthesis.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":
        return None
    return int(fields[19])


def resident_bytes(pid: int) -> int:
    """Return the resident memory of a process in bytes, 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return 0
    return 0


def is_ours(record: ProcessRecord) -> bool:
    """Tell whether the recorded process is still the one the harness started."""
    return process_start_time(record.pid) == record.start_time


def group_members(record: ProcessRecord) -> list[int]:
    """Return live processes of the session the recorded process started, itself included.

    A child keeps its parent's session and group after the parent dies (an nginx worker
    whose master was killed, say). Members must also have started no earlier than the
    leader, so a session of a reused pid is never taken for ours.
    """
    members: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] == "Z":
            continue
        session, started = int(fields[3]), int(fields[19])
        if session == record.pid and started >= record.start_time:
            members.append(int(entry.name))
    return members


def is_alive(record: ProcessRecord) -> bool:
    """Tell whether the recorded process, or any process of its session, still runs."""
    return is_ours(record) or bool(group_members(record))


def spawn(
    service: str,
    name: str,
    argv: Sequence[str],
    log: Path,
    env: Mapping[str, str] | None = None,
    port: int | None = None,
    cwd: Path | None = None,
) -> ProcessRecord:
    """Start a child in its own session with output to its log file."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
    start_time = process_start_time(proc.pid)
    if start_time is None:
        raise TargetStartError(f"{service}: {name} exited at once; see its log {log}")
    record = ProcessRecord(service, name, proc.pid, start_time, port, str(log))
    for hook in _spawn_hooks:
        hook(record)
    return record


def signal_ours(record: ProcessRecord, signum: int) -> bool:
    """Send a signal to a recorded process if it is still ours; return whether it was sent."""
    if not is_ours(record):
        return False
    try:
        os.kill(record.pid, signum)
    except ProcessLookupError:
        return False
    return True


def signal_group_ours(record: ProcessRecord, signum: int) -> bool:
    """Signal the process group a recorded process leads (it started its own session)."""
    if not is_ours(record):
        return False
    try:
        os.killpg(record.pid, signum)
    except ProcessLookupError:
        return False
    return True


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _kill_members(record: ProcessRecord) -> None:
    for pid in group_members(record):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def stop(record: ProcessRecord, grace: float = 5.0) -> None:
    """Stop a recorded process: SIGTERM, then SIGKILL of its session after the grace time.

    Processes left of its session when the leader is gone are killed too.
    """
    if not signal_ours(record, signal.SIGTERM):
        _kill_members(record)
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        _reap(record.pid)
        if not is_ours(record):
            return
        time.sleep(0.05)
    # The process leads its own session (start_new_session), so its group contains its workers.
    if is_ours(record):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(record.pid, signal.SIGKILL)
    for _ in range(100):
        _reap(record.pid)
        if not is_ours(record):
            break
        time.sleep(0.02)
    _kill_members(record)


def log_tail(path: str, lines: int = 5) -> str:
    """Return the last lines of a log file joined by ' | ', for one-line error messages."""
    try:
        text = Path(path).read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])


def wait_until(record: ProcessRecord, check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll a health check until it passes; fail fast if the process exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        _reap(record.pid)
        if not is_ours(record):
            tail = log_tail(record.log)
            raise TargetStartError(
                f"{record.service}: {record.name} exited before {what}; log {record.log}: {tail}"
            )
        time.sleep(0.05)
    raise TargetStartError(
        f"{record.service}: {record.name} not healthy after {timeout:.0f} s ({what}); "
        f"see its log {record.log}"
    )


def http_ok(url: str) -> Callable[[], bool]:
    """Return a check that passes when a GET of the URL returns 2xx."""

    def check() -> bool:
        try:
            response = net.request("GET", url, timeout=1.0)
        except requests.RequestException:
            return False
        return response.ok

    return check
