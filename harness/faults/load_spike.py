"""A load spike: extra Locust users, of their own class, while the fault is on.

With `ramp_s` the spike's worker follows a Locust load shape: its users climb to `users` over
`ramp_s` seconds in one-second steps, as traffic does when a crowd arrives.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

from harness.errors import InvalidInput
from harness.faults.base import FaultContext, FaultSpec, JournalData
from harness.load import USER_CLASS_NAMES
from harness.load.runner import LoadRun
from harness.platforms.base import Platform
from harness.platforms.processes import ProcessRecord, process_start_time, signal_ours, stop
from harness.stack import Stack

# The spike ends when the fault is removed. This bound only ends a spike that is never removed.
MAX_SPIKE_S = 600.0

_running: dict[str, LoadRun] = {}


class LoadSpikeFault:
    """Starts a second Locust worker with `user_class` and `attributes.users` users."""

    name = "load_spike"

    def check(self, spec: FaultSpec, stack: Stack, where: str) -> None:
        """Raise InvalidInput unless a known user class and a user count are given."""
        if spec.user_class not in USER_CLASS_NAMES:
            known = ", ".join(USER_CLASS_NAMES)
            raise InvalidInput(f"{where}.user_class: unknown {spec.user_class!r}; known: {known}")
        for key, value in spec.attributes.items():
            if isinstance(value, bool):
                raise InvalidInput(f"{where}.attributes.{key}: invalid value {value!r}; "
                                   "expected a number")  # fmt: skip
            if key == "users" and value != int(value):
                raise InvalidInput(f"{where}.attributes.users: invalid value {value!r}; "
                                   "expected a whole number from 1 to 500")  # fmt: skip
            if key not in ("users", "spawn_rate", "ramp_s"):
                raise InvalidInput(f"{where}.attributes.{key}: unknown attribute; known: users, "
                                   "spawn_rate, ramp_s")  # fmt: skip
            if key == "ramp_s" and not 0 <= value <= 600:
                raise InvalidInput(f"{where}.attributes.ramp_s: invalid value {value!r}; "
                                   "expected 0 to 600 seconds")  # fmt: skip
            elif key != "ramp_s" and not 1 <= value <= 500:
                raise InvalidInput(f"{where}.attributes.{key}: invalid value {value!r}; "
                                   "expected 1 to 500")  # fmt: skip
        if "users" not in spec.attributes:
            raise InvalidInput(f"{where}.attributes.users: missing; give the spike's users")

    def services(self, spec: FaultSpec) -> list[str]:
        """Return the edge, which the spike loads."""
        return ["edge"]

    def describe(self, spec: FaultSpec) -> str:
        """Return the user class."""
        return f"{spec.user_class} x{int(spec.attributes.get('users', 0))}"

    def prepare(self, spec: FaultSpec, context: FaultContext) -> JournalData:
        """Name the spike's records file."""
        path = context.run_dir / f"{context.arm}.spike{context.index}.records.jsonl"
        return {"kind": self.name, "records": str(path), "key": f"{path}",
                "state_dir": str(context.state_dir), "pid": None, "start_time": None,
                "edge": context.platform.endpoint("edge"), "seed": context.seed}  # fmt: skip

    def apply(self, spec: FaultSpec, data: JournalData) -> None:
        """Start the spike's worker."""
        assert spec.user_class is not None
        users = int(spec.attributes["users"])
        load = LoadRun(
            host=str(data["edge"]), user_class=spec.user_class, users=users,
            spawn_rate=float(spec.attributes.get("spawn_rate", users)), duration=MAX_SPIKE_S,
            records_path=Path(str(data["records"])), seed=int(str(data["seed"])),
            state_dir=Path(str(data["state_dir"])), pid_name=_pid_file(data).name,
            ramp_s=float(spec.attributes["ramp_s"]) if "ramp_s" in spec.attributes else None,
        )  # fmt: skip
        load.start()
        _running[str(data["key"])] = load

    def took_effect(self, spec: FaultSpec, data: JournalData) -> bool:
        """Check that the spike's worker runs."""
        load = _running.get(str(data["key"]))
        return load is not None and load.running()

    def holder_gone(self, data: JournalData) -> bool:
        """Tell whether the worker is gone."""
        return str(data["key"]) not in _running and not _pid_alive(data)

    def remove(self, data: JournalData, platform: Platform | None = None) -> None:
        """Stop the spike's worker."""
        load = _running.pop(str(data["key"]), None)
        if load is not None:
            load.stop()
            return
        _stop_from_pid_file(data)


def _pid_file(data: JournalData) -> Path:
    return Path(str(data["state_dir"])) / f"spike-{Path(str(data['records'])).stem}.json"


def _pid_alive(data: JournalData) -> bool:
    path = _pid_file(data)
    if not path.exists():
        return False
    record = ProcessRecord(**json.loads(path.read_text()))
    return process_start_time(record.pid) == record.start_time


def _stop_from_pid_file(data: JournalData) -> None:
    path = _pid_file(data)
    if not path.exists():
        return
    record = ProcessRecord(**json.loads(path.read_text()))
    signal_ours(record, signal.SIGTERM)
    stop(record)
    path.unlink(missing_ok=True)
