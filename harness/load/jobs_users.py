"""Locust users of the job queue: `POST /jobs`, then `GET /jobs/{id}` until the job ends.

Each job's outcome is recorded as a check of its own name, dated at the job's submission. Its
latency is the time from submission to the outcome. The checks are `job done`, failed as lost
when the job is not done within JOB_LIMIT_S, and `poison dead-lettered`.
"""

from __future__ import annotations

import time
from typing import Any

from locust import between, task

from harness.load.users import REQUEST_TIMEOUT_S, USER_CLASSES, _fire, _LoopbackUser

POLL_INTERVAL_S = 0.25
# A job a killed worker held is redelivered after the 3 s visibility timeout, once a slot is
# free, and runs again for 5 s: done up to 16 s after its submission in our runs of the
# message-queue experiment. Past this limit the job counts as lost.
JOB_LIMIT_S = 30.0
POISON_POLL_INTERVAL_S = 0.5
POISON_LIMIT_S = 30.0


def _job_state(user: _LoopbackUser, job_id: str) -> dict[str, Any] | None:
    """Return the job's status record, or None when the api did not return one."""
    response = user.client.get(f"/jobs/{job_id}", name="/jobs/{id}", timeout=REQUEST_TIMEOUT_S)
    if response.status_code != 200:
        return None
    state: dict[str, Any] = response.json()
    return state


class JobUser(_LoopbackUser):
    """Submits a slow job and waits until it is done, polling its status."""

    wait_time = between(0.1, 0.3)

    @task
    def submit_and_wait(self) -> None:
        """Submit one job and record `job done` with the time until it was done."""
        submitted = time.time()
        response = self.client.post("/jobs", json={}, name="/jobs", timeout=REQUEST_TIMEOUT_S)
        if response.status_code == 200:
            # Done inline: the request itself took the job's time.
            _fire(self, "job done", submitted, (time.time() - submitted) * 1000, None)
            return
        if response.status_code != 202:
            return
        job_id = response.json()["id"]
        while time.time() < submitted + JOB_LIMIT_S:
            time.sleep(POLL_INTERVAL_S)
            state = _job_state(self, job_id)
            if state is None:
                continue
            elapsed = (time.time() - submitted) * 1000
            if state["status"] == "done":
                _fire(self, "job done", submitted, elapsed, None)
                return
            if state["status"] == "dead":
                _fire(self, "job done", submitted, elapsed, "job dead-lettered")
                return
        _fire(self, "job done", submitted, JOB_LIMIT_S * 1000,
              f"job lost: not done {JOB_LIMIT_S:.0f} s after submission")  # fmt: skip


class PoisonUser(_LoopbackUser):
    """Submits a job that always fails and checks it is dead-lettered after max_attempts runs."""

    wait_time = between(0.5, 1.0)

    @task
    def submit_poison(self) -> None:
        """Submit one poison job and record `poison dead-lettered` with the time it took."""
        submitted = time.time()
        response = self.client.post("/jobs", json={"poison": True}, name="/jobs poison",
                                    timeout=REQUEST_TIMEOUT_S)  # fmt: skip
        if response.status_code != 202:
            return
        job_id = response.json()["id"]
        while time.time() < submitted + POISON_LIMIT_S:
            time.sleep(POISON_POLL_INTERVAL_S)
            state = _job_state(self, job_id)
            if state is None or state["status"] not in ("dead", "done"):
                continue
            elapsed = (time.time() - submitted) * 1000
            error = None
            if state["status"] == "done":
                error = "poison job done"
            elif state["attempts"] != state["max_attempts"]:
                error = (f"dead-lettered after {state['attempts']} attempts, "
                         f"limit {state['max_attempts']}")  # fmt: skip
            _fire(self, "poison dead-lettered", submitted, elapsed, error)
            return
        _fire(self, "poison dead-lettered", submitted, POISON_LIMIT_S * 1000,
              f"not dead-lettered {POISON_LIMIT_S:.0f} s after submission")  # fmt: skip


USER_CLASSES.update({cls.__name__: cls for cls in (JobUser, PoisonUser)})
