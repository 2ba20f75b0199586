"""Memory limits for local instances through the cgroup memory controller (v2 or v1).

Each limited instance gets its own cgroup named `harness-<id>`. The kernel kills the instance
when it grows past the limit, and the cgroup counts those kills.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from harness.errors import HarnessError

CGROUP_ROOT = Path("/sys/fs/cgroup")


def _v2() -> bool:
    controllers = CGROUP_ROOT / "cgroup.controllers"
    return controllers.exists() and "memory" in controllers.read_text().split()


def memory_cgroup(name: str) -> Path:
    """Return the path of the cgroup for one instance."""
    base = CGROUP_ROOT if _v2() else CGROUP_ROOT / "memory"
    return base / f"harness-{name}"


def find(prefix: str) -> list[Path]:
    """Return the cgroups whose name starts with `harness-<prefix>`."""
    base = memory_cgroup("x").parent
    try:
        return sorted(base.glob(f"harness-{prefix}*"))
    except OSError:
        return []


def limit_memory(name: str, pid: int, limit_bytes: int) -> Path:
    """Put a process in a cgroup of its own limited to limit_bytes; return the cgroup."""
    path = memory_cgroup(name)
    limit_file = "memory.max" if _v2() else "memory.limit_in_bytes"
    try:
        path.mkdir(exist_ok=True)
        (path / limit_file).write_text(str(limit_bytes))
        if not _v2():
            # Without swap accounting the limit covers memory only; ignore a missing file.
            with contextlib.suppress(OSError):
                (path / "memory.swappiness").write_text("0")
        (path / "cgroup.procs").write_text(str(pid))
    except OSError as exc:
        raise HarnessError(
            f"memory limit for {name}: cannot write {path} ({exc.strerror}); memory limits need "
            "a writable cgroup v2 or v1 memory controller, usually root"
        ) from None
    return path


def oom_kills(path: Path) -> int:
    """Return how many times the kernel killed a process of the cgroup for memory."""
    try:
        if _v2():
            for line in (path / "memory.events").read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
            return 0
        # Kernels before 4.13 do not count kills in memory.oom_control; then this stays 0.
        for line in (path / "memory.oom_control").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0
    except (OSError, ValueError):
        return 0


def peak_bytes(path: Path) -> int:
    """Return the most memory the cgroup used."""
    name = "memory.peak" if _v2() else "memory.max_usage_in_bytes"
    try:
        return int((path / name).read_text())
    except (OSError, ValueError):
        return 0


def remove(path: Path) -> None:
    """Remove an empty cgroup. A cgroup that still contains processes stays."""
    with contextlib.suppress(OSError):
        os.rmdir(path)
