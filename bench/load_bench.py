"""Benchmark the harness's Locust worker against bare `locust --headless` on the reference target.

Run: `python bench/load_bench.py [--seconds 15] [--users 20] [--rounds 2]`. It starts the
reference target on 127.0.0.1 in a temporary state folder. Then it runs the same closed-model load
(`CheckoutUser`: `POST /checkout`, 50 to 150 ms wait between tasks) two ways: through the
`locust` command line with `bench/locustfile.py` ("bare") and through
`harness.load.runner.LoadRun` ("harness"). The two alternate (bare, harness, bare, harness, ...)
so drift on a shared machine favours neither. It prints the requests per second of every trial
and the ratio harness / bare, whose goal is >= 0.95, and stops the target when it ends. Every
trial is bounded by its run time and by a request count.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit

from harness.load.runner import MAX_REQUESTS_PER_SECOND, LoadRun
from harness.platforms.local import LocalPlatform
from harness.platforms.processes import LOOPBACK

BENCH_DIR = Path(__file__).resolve().parent
LOCUSTFILE = BENCH_DIR / "locustfile.py"
LOCUST = Path(sys.executable).with_name("locust")
GOAL = 0.95
# Locust starts in a second or two, so a trial still running this long after its run time is hung
# and gets killed.
STARTUP_GRACE_S = 60.0


@dataclass
class Trial:
    """The outcome of one load run: which path drove it and what it counted."""

    path: str  # "bare" or "harness"
    round_number: int
    requests: int
    failures: int
    seconds: float
    cpu_s: float  # user + system CPU time of the load process
    mean_ms: float  # mean response time that Locust measured

    @property
    def rps(self) -> float:
        """Return requests per second over the configured run time."""
        return self.requests / self.seconds


def child_cpu_seconds() -> float:
    """Return the user + system CPU time of every child process that has been waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def child_environment() -> dict[str, str]:
    """Return this process's environment without proxy and `LOCUST_*` variables.

    Locust reads options from `LOCUST_*` variables, which could change the yardstick's load.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.lower().endswith("_proxy") and not key.startswith("LOCUST_")
    }
    env["NO_PROXY"] = LOOPBACK
    return env


def run_bare(host: str, users: int, seconds: int, workdir: Path, round_number: int) -> Trial:
    """Run bare `locust --headless` with `bench/locustfile.py` and read its final stats.

    The stats come from `--json-file`, which Locust writes at shutdown. The `--csv` files are no
    use here because Locust 2.47 rewrites them once a second and not at shutdown, so they miss up
    to the last second of requests.
    """
    prefix = workdir / f"bare-{round_number}"
    max_requests = int(MAX_REQUESTS_PER_SECOND * max(seconds, 1.0))
    argv = [
        str(LOCUST), "-f", str(LOCUSTFILE), "--headless",
        "-u", str(users), "-r", str(users), "-t", f"{seconds}s",
        "--host", host, "--json-file", str(prefix), "--only-summary",
        "--max-requests", str(max_requests),
    ]  # fmt: skip

    cpu_before = child_cpu_seconds()
    with prefix.with_suffix(".log").open("w") as log:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            env=child_environment(), cwd=workdir,
        )  # fmt: skip
        try:
            code = proc.wait(timeout=seconds + STARTUP_GRACE_S)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
    cpu = child_cpu_seconds() - cpu_before

    # Exit code 1 only means that some requests failed, and the failures column counts them.
    if code not in (0, 1):
        raise RuntimeError(
            f"locust failed with exit code {code}, output in {prefix.with_suffix('.log')}"
        )
    entries = json.loads(prefix.with_suffix(".json").read_text())
    requests = sum(int(entry["num_requests"]) for entry in entries)
    failures = sum(int(entry["num_failures"]) for entry in entries)
    total_ms = sum(float(entry["total_response_time"]) for entry in entries)
    mean_ms = total_ms / requests if requests else float("nan")
    return Trial("bare", round_number, requests, failures, seconds, cpu, mean_ms)


def run_harness(
    host: str, users: int, seconds: int, workdir: Path, state_dir: Path, round_number: int
) -> Trial:
    """Run the same load through `LoadRun` (the harness's Locust worker) and count its records."""
    load = LoadRun(
        host=host,
        user_class="CheckoutUser",
        users=users,
        spawn_rate=users,
        duration=seconds,
        records_path=workdir / f"harness-{round_number}.records.jsonl",
        seed=0,
        state_dir=state_dir,
    )

    cpu_before = child_cpu_seconds()
    try:
        load.start()
        load.wait(timeout=seconds + STARTUP_GRACE_S)
    finally:
        load.stop()
    cpu = child_cpu_seconds() - cpu_before

    records = load.records()
    failures = sum(1 for record in records if not record.ok)
    mean_ms = statistics.fmean(r.response_ms for r in records) if records else float("nan")
    return Trial("harness", round_number, len(records), failures, seconds, cpu, mean_ms)


def print_results(trials: list[Trial], users: int, seconds: float) -> None:
    """Print every trial, the ratio harness / bare per round and their medians."""
    print(f"\nClosed model, {users} users, {seconds:g} s per trial, CheckoutUser on the edge.")
    header = ("requests", "failures", "rps", "mean ms")
    print(f"{'round':>5}  {'path':<8} " + " ".join(f"{h:>8}" for h in header) + " CPU ms/req")
    for trial in trials:
        cpu_ms = 1000 * trial.cpu_s / trial.requests if trial.requests else float("nan")
        print(
            f"{trial.round_number:>5}  {trial.path:<8} {trial.requests:>8} {trial.failures:>8} "
            f"{trial.rps:>8.1f} {trial.mean_ms:>8.1f} {cpu_ms:>10.3f}"
        )

    bare = {t.round_number: t for t in trials if t.path == "bare"}
    harness = {t.round_number: t for t in trials if t.path == "harness"}
    ratios = [harness[r].rps / bare[r].rps for r in sorted(bare) if r in harness and bare[r].rps]
    print("\nratio harness / bare rps per round: " + ", ".join(f"{x:.3f}" for x in ratios))
    if ratios:
        median_ratio = statistics.median(ratios)
        verdict = "meets" if median_ratio >= GOAL else "misses"
        print(f"median ratio: {median_ratio:.3f} (goal >= {GOAL}: {verdict})")
        median_bare = statistics.median(t.rps for t in bare.values())
        median_harness = statistics.median(t.rps for t in harness.values())
        print(
            f"median rps: bare {median_bare:.1f}, harness {median_harness:.1f}, "
            f"ratio of medians {median_harness / median_bare:.3f}"
        )


def raise_on_sigterm(signum: int, frame: FrameType | None) -> None:
    """Turn SIGTERM into SystemExit so the `finally` blocks stop the load and the target."""
    raise SystemExit(128 + signum)


def main() -> None:
    """Start the target, run the alternating trials, print the results and stop the target."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=15, help="run time of each trial, s")
    parser.add_argument("--users", type=int, default=20, help="concurrent Locust users")
    parser.add_argument("--rounds", type=int, default=2, help="pairs of trials (bare, harness)")
    parser.add_argument(
        "--warmup", type=int, default=3, help="run time of an uncounted first bare run, s"
    )
    args = parser.parse_args()
    if args.seconds <= 0 or args.users <= 0 or args.rounds <= 0 or args.warmup < 0:
        parser.error("--seconds, --users and --rounds must be positive, --warmup at least 0")
    signal.signal(signal.SIGTERM, raise_on_sigterm)

    trials: list[Trial] = []
    with tempfile.TemporaryDirectory(prefix="load-bench-") as tmp_name:
        workdir = Path(tmp_name)
        platform = LocalPlatform(workdir / "state")
        try:
            started = time.monotonic()
            platform.up(platform.stack.resolve_settings({}, "defaults"))
            host = platform.endpoint("edge")
            if urlsplit(host).hostname != LOOPBACK:
                raise RuntimeError(
                    f"edge endpoint {host} is not on {LOOPBACK}, so it is not loaded"
                )
            print(f"target up in {time.monotonic() - started:.1f} s, edge {host}", flush=True)

            # The first requests after start meet cold connection pools and caches in every
            # service, so a short run that is not counted goes first.
            if args.warmup > 0:
                run_bare(host, args.users, args.warmup, workdir, 0)
            for round_number in range(1, args.rounds + 1):
                for run in ("bare", "harness"):
                    if run == "bare":
                        trial = run_bare(host, args.users, args.seconds, workdir, round_number)
                    else:
                        trial = run_harness(
                            host,
                            args.users,
                            args.seconds,
                            workdir,
                            platform.state_dir,
                            round_number,
                        )
                    trials.append(trial)
                    print(f"round {round_number} {run}: {trial.rps:.1f} rps", flush=True)
        finally:
            platform.down()

    print_results(trials, args.users, args.seconds)


if __name__ == "__main__":
    main()
