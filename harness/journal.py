"""The append-only journal of applied faults, and the reconcile that removes leftovers.

Each fault gets an `apply` line before it is applied and a `removed` line after it is gone,
both fsync'd, so a run killed at any point leaves enough on disk to roll the fault back.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Literal, TypedDict

import structlog

from harness.errors import HarnessError
from harness.faults.base import JournalData, holder_gone, remove_journaled
from harness.platforms.base import Platform

log = structlog.get_logger(__name__)

REMOVE_ATTEMPTS = 3
REMOVE_BACKOFF_S = 0.3


class JournalEntry(TypedDict):
    """One line of the journal."""

    ts: float
    run_id: str
    fault_id: str
    event: Literal["apply", "removed", "remove_failed"]
    data: JournalData
    error: str | None


class Journal:
    """The journal file of one state directory."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _append(self, entry: JournalEntry) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(entry) + "\n"
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise HarnessError(f"{self.path}: cannot write the journal: {exc.strerror}") from None
        try:
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    def record_apply(self, run_id: str, fault_id: str, data: JournalData) -> None:
        """Record a fault that is about to be applied."""
        self._append(JournalEntry(ts=time.time(), run_id=run_id, fault_id=fault_id,
                                  event="apply", data=data, error=None))  # fmt: skip

    def record_removed(self, run_id: str, fault_id: str, data: JournalData) -> None:
        """Record a fault that is gone."""
        self._append(JournalEntry(ts=time.time(), run_id=run_id, fault_id=fault_id,
                                  event="removed", data=data, error=None))  # fmt: skip

    def record_failure(self, run_id: str, fault_id: str, data: JournalData, error: str) -> None:
        """Record a removal that failed; the fault stays outstanding."""
        self._append(JournalEntry(ts=time.time(), run_id=run_id, fault_id=fault_id,
                                  event="remove_failed", data=data, error=error))  # fmt: skip

    def entries(self) -> list[JournalEntry]:
        """Read every entry; a torn last line from a crash, or any malformed line, is skipped."""
        if not self.path.exists():
            return []
        try:
            text = self.path.read_bytes().decode("utf-8", errors="replace")
        except OSError as exc:
            raise HarnessError(f"{self.path}: cannot read the journal: {exc.strerror}") from None
        result: list[JournalEntry] = []
        for line in text.splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if _well_formed(entry):
                result.append(entry)
            else:
                log.warning("journal.line_skipped", line=line[:200])
        return result

    def outstanding(self) -> dict[str, JournalEntry]:
        """Return faults recorded as applied and not yet recorded as removed."""
        open_faults: dict[str, JournalEntry] = {}
        for entry in self.entries():
            if entry["event"] == "apply":
                open_faults[entry["fault_id"]] = entry
            elif entry["event"] == "removed":
                open_faults.pop(entry["fault_id"], None)
        return open_faults

    def remove(
        self, run_id: str, fault_id: str, data: JournalData, platform: Platform | None = None
    ) -> str | None:
        """Remove a fault with bounded retries; return None, or the last error."""
        error: str | None = None
        for attempt in range(1, REMOVE_ATTEMPTS + 1):
            try:
                remove_journaled(data, platform)
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                log.warning("fault.remove_failed", fault_id=fault_id, attempt=attempt,
                            error=error)  # fmt: skip
                time.sleep(REMOVE_BACKOFF_S * attempt)
                continue
            self.record_removed(run_id, fault_id, data)
            log.info("fault.removed", fault_id=fault_id, kind=data.get("kind"))
            return None
        assert error is not None
        self.record_failure(run_id, fault_id, data, error)
        return error

    def settle_if_holder_gone(self, run_id: str, fault_id: str, data: JournalData) -> bool:
        """Record a fault as removed when the process that held it has stopped."""
        if not holder_gone(data):
            return False
        self.record_removed(run_id, fault_id, {**data, "removed_by": "holder stopped"})
        log.info("fault.settled", fault_id=fault_id, reason="holder stopped")
        return True

    def reconcile(self) -> tuple[list[str], list[str]]:
        """Remove every outstanding fault; return the removed ids and the ones left."""
        removed: list[str] = []
        left: list[str] = []
        for fault_id, entry in self.outstanding().items():
            error = self.remove(entry["run_id"], fault_id, entry["data"])
            if error is None:
                removed.append(fault_id)
            elif self.settle_if_holder_gone(entry["run_id"], fault_id, entry["data"]):
                removed.append(f"{fault_id} (its fault proxy is no longer running)")
            else:
                left.append(f"{fault_id} ({describe(entry['data'])}): {error}")
        return removed, left


def _well_formed(entry: object) -> bool:
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("fault_id"), str)
        and isinstance(entry.get("run_id"), str)
        and entry.get("event") in ("apply", "removed", "remove_failed")
        and isinstance(entry.get("data"), dict)
    )


def describe(data: JournalData) -> str:
    """Return a short description of a journaled fault and how to remove it by hand."""
    if data.get("kind") == "toxic":
        return (
            f"toxic {data.get('toxic')} on proxy {data.get('proxy')}; remove with "
            f"curl -X DELETE {data.get('toxiproxy')}/proxies/{data.get('proxy')}/toxics/"
            f"{data.get('toxic')}"
        )
    return json.dumps(data)
