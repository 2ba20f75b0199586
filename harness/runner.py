"""Run one experiment: each arm's phases, faults journaled and removed in `finally`."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

import requests
import structlog

from harness import thresholds
from harness.autoscale import Autoscaler, scale_up_lag
from harness.clock import Clock, SystemClock
from harness.errors import ExitCode, FaultError, HarnessError
from harness.experiment import Autoscale, Experiment, Hypothesis
from harness.faults import FAULT_KINDS, FaultContext, FaultSpec, JournalData
from harness.faults.memory import MemoryLimitAction
from harness.journal import Journal, describe
from harness.load.runner import LoadProgress, LoadRun, read_records
from harness.observe.prometheus import PrometheusProbes
from harness.observe.sampler import PlatformSampler
from harness.platforms.base import Platform
from harness.result import (
    ArmResult,
    FaultRecord,
    HypothesisResult,
    PhaseStats,
    RunResult,
    Verdict,
)
from harness.stack import Stack
from harness.timeline import (
    RequestRecord,
    Window,
    baseline_of,
    phase_stats,
    samples,
    time_to_detect,
    time_to_recover,
)

log = structlog.get_logger(__name__)

# The first second of the baseline contains the users' ramp-up, so its figures leave it out.
WARM_UP_S = 1.0
# Prometheus scrapes every second; wait for one more scrape before reading a phase's end.
SCRAPE_SETTLE_S = 1.5


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived; unwinds to the rollback in `finally`."""


@dataclass
class Progress:
    """Receives a status line once a second while an arm runs."""

    callback: Callable[[str, str, float, float, LoadProgress], None] | None = None

    def update(
        self, arm: str, phase: str, elapsed: float, total: float, load: LoadProgress
    ) -> None:
        """Forward the status to the callback, if any."""
        if self.callback is not None:
            self.callback(arm, phase, elapsed, total, load)


@dataclass
class _Applied:
    fault_id: str
    spec: FaultSpec
    data: JournalData
    record: FaultRecord
    removal_tried: bool = False


@dataclass
class Runner:
    """Runs an experiment on a platform and returns its result record."""

    platform: Platform
    stack: Stack
    state_dir: Path
    clock: Clock = field(default_factory=SystemClock)
    progress: Progress = field(default_factory=Progress)
    seed: int | None = None
    data_rows: int = 10_000

    def __post_init__(self) -> None:
        self.journal = Journal(self.state_dir / "journal.jsonl")
        self.rollback_failed: list[str] = []
        # Failures of the harness's own parts in an arm (a stopped scaler): the run fails.
        self.harness_failures: list[str] = []
        self._unremoved: list[_Applied] = []
        self._endpoint_stats: dict[str, dict[int, PhaseStats]] = {}
        self._scaler_journaled: _Applied | None = None
        self._memory_journaled: tuple[str, JournalData] | None = None

    def run(self, experiment: Experiment, run_id: str) -> RunResult:
        """Run every arm in turn and evaluate the hypotheses."""
        started = datetime.now(UTC).isoformat()
        seed = self.seed if self.seed is not None else experiment.seed
        arms: dict[str, ArmResult] = {}
        with _signals_raise_interrupted():
            for arm_name in experiment.arms:
                arms[arm_name] = self._run_arm(experiment, arm_name, run_id, seed)
                if self.rollback_failed:
                    log.error("run.stopped", reason="rollback failed", arm=arm_name)
                    break

        _add_ratio_probes(experiment, arms)
        hypotheses = self._evaluate(experiment, arms)
        failed_effect = any(not f["took_effect"] for arm in arms.values() for f in arm["faults"])
        passed = (
            all(h["verdict"] == "pass" for h in hypotheses)
            and not failed_effect
            and not self.harness_failures
        )
        for failure in self.harness_failures:
            log.error("run.failed", reason=failure)
        if self.rollback_failed:
            exit_code = ExitCode.ROLLBACK_FAILED
        elif passed:
            exit_code = ExitCode.OK
        else:
            exit_code = ExitCode.HYPOTHESIS_FAILED
        return RunResult(
            run_id=run_id,
            experiment=experiment.name,
            pattern=experiment.pattern,
            description=experiment.description,
            seed=seed,
            platform=self.platform.name,
            started_at=started,
            finished_at=datetime.now(UTC).isoformat(),
            verdict="pass" if exit_code == ExitCode.OK else "fail",
            exit_code=int(exit_code),
            rollback_failed=list(self.rollback_failed),
            arms=arms,
            hypotheses=hypotheses,
        )

    # One arm -----------------------------------------------------------------------------------

    def _run_arm(self, experiment: Experiment, arm_name: str, run_id: str, seed: int) -> ArmResult:
        arm = experiment.arms[arm_name]
        phases = experiment.arm_phases(arm_name)
        variant = self.stack.resolve_settings(
            {k: dict(v) for k, v in arm.target.items()}, f"arms.{arm_name}.target"
        )
        bound = log.bind(run_id=run_id, arm=arm_name)
        bound.info("arm.started", total_s=phases.total)

        run_dir = self.state_dir / "runs" / run_id
        run_dir.mkdir(parents=True, exist_ok=True)
        self._journal_memory_limits(variant, run_id, arm_name)
        self.platform.up(variant, arm.scale)
        load: LoadRun | None = None
        applied: list[_Applied] = []
        origin = self.clock.now()
        abort_reason: str | None = None
        sampled = [p.service for p in experiment.probes.values() if p.service is not None]
        sampler = PlatformSampler(self.platform, sampled)
        scaler: Autoscaler | None = None
        try:
            load = LoadRun(
                host=self.platform.endpoint("edge"),
                user_class=",".join(experiment.arm_load(arm_name).user_classes),
                users=experiment.arm_load(arm_name).users,
                spawn_rate=experiment.arm_load(arm_name).spawn_rate,
                duration=phases.total,
                records_path=run_dir / f"{arm_name}.records.jsonl",
                seed=seed,
                state_dir=self.state_dir,
                data_rows=self.data_rows,
            )
            origin = self.clock.now()
            sampler.start()
            if arm.autoscale is not None:
                scaler = self._start_autoscaler(arm.autoscale, run_id, arm_name, origin)
            load.start()
            self._wait_until(arm_name, "baseline", origin, phases.baseline, phases.total, load)

            fault_start = self.clock.now() - origin
            try:
                for index, spec in enumerate(experiment.arm_faults(arm_name)):
                    self._apply(spec, index, run_id, arm_name, origin, applied)
                bound.info("phase.fault", faults=len(applied))
                abort_reason = self._wait_fault(
                    experiment, arm_name, origin, fault_start, phases.baseline + phases.fault,
                    phases.total, load,
                )  # fmt: skip
            finally:
                fault_end = self.clock.now() - origin
                self._remove_all(applied, run_id, origin)

            self._wait_until(arm_name, "recovery", origin, phases.total, phases.total, load)
            load.wait(timeout=30.0)
            records = load.records() + _spike_records(run_dir, arm_name)
            if scaler is not None:
                scaler.stop()
            self.clock.sleep(SCRAPE_SETTLE_S)
            sampler.stop()
            result = self._arm_result(
                experiment, arm_name, variant, records, origin, phases.total,
                Window(fault_start, fault_end), applied, sampler,
            )  # fmt: skip
            result["aborted"] = abort_reason
            if scaler is not None:
                _add_scaling(result, scaler, records, origin, Window(fault_start, fault_end))
                if scaler.error is not None:
                    # The treatment ran without its scaler: no verdict on the pattern holds.
                    result["aborted"] = f"the autoscaler stopped: {scaler.error}"
                    self.harness_failures.append(f"arm {arm_name}: the autoscaler stopped: "
                                                 f"{scaler.error}")  # fmt: skip
            self._endpoint_stats[arm_name] = _endpoint_stats(experiment, arm_name, result,
                                                              records, origin)  # fmt: skip
        finally:
            with _signals_deferred():
                if scaler is not None:
                    scaler.stop()
                sampler.stop()
                # Catches a fault whose removal a signal skipped at the edge of the inner finally.
                self._remove_all(applied, run_id, origin)
                self._stop_and_audit(load, arm_name, run_id)
        bound.info("arm.finished")
        return result

    def _journal_memory_limits(
        self, variant: Mapping[str, Mapping[str, object]], run_id: str, arm_name: str
    ) -> None:
        """Journal the arm's memory limits before any cgroup for them exists."""
        limits: dict[str, float] = {}
        for service, settings in variant.items():
            value = settings.get("memory_limit_mb")
            if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
                limits[service] = float(value)
        if not limits:
            return
        fault_id = f"{run_id}/{arm_name}/memory"
        data = MemoryLimitAction.data(self.platform.memory_cgroup_prefix(), limits)
        self.journal.record_apply(run_id, fault_id, data)
        self._memory_journaled = (fault_id, data)

    def _start_autoscaler(
        self, rule: Autoscale, run_id: str, arm_name: str, origin: float
    ) -> Autoscaler:
        """Journal the scaler like a fault, so its instances go back to the count it found."""
        before = len(self.platform.instances(rule.service))
        fault_id = f"{run_id}/{arm_name}/autoscale"
        data: JournalData = {"kind": "scale", "service": rule.service, "before": before,
                             "count": before}  # fmt: skip
        spec = FaultSpec(kind="scale", service=rule.service, attributes={"count": before})
        record = FaultRecord(kind="autoscale", target=rule.service,
                             attributes={"min": rule.min, "max": rule.max}, applied_at=None,
                             removed_at=None, took_effect=True, removal_error=None)  # fmt: skip
        self.journal.record_apply(run_id, fault_id, data)
        self._scaler_journaled = _Applied(fault_id, spec, data, record)
        scaler = Autoscaler(self.platform, rule, origin)
        scaler.check_query()
        scaler.start()
        return scaler

    def _stop_and_audit(self, load: LoadRun | None, arm_name: str, run_id: str) -> None:
        """Stop the load and the target, then record anything left behind as a leak."""
        leaks: list[str] = []
        try:
            toxics = self.platform.toxics_left()
            leaks.extend(f"toxic {t} still on the fault proxy" for t in toxics)
        except (HarnessError, requests.RequestException, ValueError) as exc:
            # An unreachable proxy has no toxic once the target is down.
            log.warning("audit.toxics_unreadable", arm=arm_name, error=str(exc))
        if load is not None:
            load.stop()
            if load.running():
                leaks.append("the Locust worker is still running")
        scaled = self._scaler_journaled
        if scaled is not None:
            # The target stops next, so the scaled instances go with it.
            self.journal.record_removed(run_id, scaled.fault_id, scaled.data)
            self._scaler_journaled = None
        self.platform.down()
        memory = self._memory_journaled
        if memory is not None:
            # `down` removed the arm's memory cgroups with its instances.
            self.journal.record_removed(run_id, memory[0], memory[1])
            self._memory_journaled = None
        self._settle_unremoved(run_id)
        leaks.extend(self.platform.audit())
        for leak in leaks:
            log.error("audit.leak", arm=arm_name, leak=leak)
            self.rollback_failed.append(f"leak after arm {arm_name}: {leak}")

    def _apply(
        self,
        spec: FaultSpec,
        index: int,
        run_id: str,
        arm_name: str,
        origin: float,
        applied: list[_Applied],
    ) -> None:
        kind = FAULT_KINDS[spec.kind]
        context = FaultContext(self.platform, run_id, index, arm_name,
                               self.state_dir / "runs" / run_id, self.state_dir,
                               self.seed or 0)  # fmt: skip
        data = kind.prepare(spec, context)
        fault_id = f"{run_id}/{arm_name}/{index}"
        record = FaultRecord(
            kind=spec.toxic or spec.kind,
            target=kind.describe(spec),
            attributes=dict(spec.attributes),
            applied_at=None,
            removed_at=None,
            took_effect=False,
            removal_error=None,
        )
        item = _Applied(fault_id, spec, data, record)
        self.journal.record_apply(run_id, fault_id, data)
        # Tracked before it is applied, so an interrupt at any later point still removes it.
        applied.append(item)
        kind.apply(spec, data)
        record["applied_at"] = self.clock.now() - origin
        record["took_effect"] = kind.took_effect(spec, data)
        log.info("fault.applied", fault_id=fault_id, kind=record["kind"], target=record["target"],
                 attributes=record["attributes"], took_effect=record["took_effect"])  # fmt: skip
        if not record["took_effect"]:
            raise FaultError(f"fault {record['kind']} on {record['target']} did not take effect")

    def _remove_all(self, applied: list[_Applied], run_id: str, origin: float) -> None:
        # A signal during rollback must not cut it short.
        with _signals_deferred():
            for item in reversed(applied):
                if item.removal_tried:
                    continue
                item.removal_tried = True
                error = self.journal.remove(run_id, item.fault_id, item.data, self.platform)
                item.record["removed_at"] = self.clock.now() - origin
                if error is not None:
                    item.record["removal_error"] = error
                    self._unremoved.append(item)

    def _settle_unremoved(self, run_id: str) -> None:
        """Report faults whose removal failed, once the target is down, saying what is left."""
        for item in self._unremoved:
            error = item.record["removal_error"]
            if self.journal.settle_if_holder_gone(run_id, item.fault_id, item.data):
                left = "nothing is left: the fault proxy holding it was stopped with the target"
            else:
                left = f"it may still be applied: {describe(item.data)}"
            self.rollback_failed.append(
                f"{item.record['kind']} on {item.record['target']} was not removed ({error}); "
                f"{left}"
            )
        self._unremoved.clear()

    def _wait_until(
        self, arm: str, phase: str, origin: float, until: float, total: float, load: LoadRun
    ) -> None:
        while True:
            elapsed = self.clock.now() - origin
            if elapsed >= until:
                return
            self.progress.update(arm, phase, elapsed, total, load.progress)
            self.clock.sleep(min(1.0, until - elapsed))

    def _wait_fault(
        self,
        experiment: Experiment,
        arm_name: str,
        origin: float,
        fault_start: float,
        until: float,
        total: float,
        load: LoadRun,
    ) -> str | None:
        """Wait out the fault window; end it early when an abort hypothesis stops holding."""
        aborts = [
            h for h in experiment.hypotheses if h.abort and h.arm == arm_name and h.phase == "fault"
        ]
        probe_names = frozenset(experiment.probes)
        while True:
            elapsed = self.clock.now() - origin
            if elapsed >= until:
                return None
            for hypothesis in aborts:
                threshold = thresholds.parse(hypothesis.expression, probe_names)
                window = Window(fault_start, elapsed)
                stats = phase_stats(load.records(), origin, window, hypothesis.endpoint)
                observed = _client_value(stats, threshold.metric)
                if stats["requests"] >= 5 and not threshold.holds(observed):
                    reason = (f"abort: {hypothesis.name} ({hypothesis.expression}) observed "
                              f"{observed} at {elapsed:.1f} s")  # fmt: skip
                    log.warning("fault.aborted", arm=arm_name, reason=reason)
                    return reason
            self.progress.update(arm_name, "fault", elapsed, total, load.progress)
            self.clock.sleep(min(0.5, until - elapsed))

    # Figures and verdicts -----------------------------------------------------------------------

    def _arm_result(
        self,
        experiment: Experiment,
        arm_name: str,
        variant: dict[str, dict[str, object]] | dict[str, dict[str, float | bool | str]],
        records: list[RequestRecord],
        origin: float,
        total: float,
        fault: Window,
        applied: list[_Applied],
        sampler: PlatformSampler | None = None,
    ) -> ArmResult:
        windows = {
            "baseline": Window(min(WARM_UP_S, fault.start), fault.start),
            "fault": fault,
            "recovery": Window(fault.end, total),
        }
        phases: dict[str, PhaseStats] = {
            name: phase_stats(records, origin, window) for name, window in windows.items()
        }
        self._add_probes(experiment, phases, origin, records, sampler)
        timeline = samples(records, origin, total)
        baseline = baseline_of(phases["baseline"])
        detect = time_to_detect(timeline, baseline, fault) if baseline else None
        recover = time_to_recover(timeline, baseline, fault.end) if baseline else None
        return ArmResult(
            target={k: dict(v) for k, v in variant.items()},
            faults=[a.record for a in applied],
            fault_window=(fault.start, fault.end),
            phases=phases,
            time_to_detect=detect,
            time_to_recover=recover,
            timeline=timeline,
        )

    def _add_probes(
        self,
        experiment: Experiment,
        phases: dict[str, PhaseStats],
        origin: float,
        records: list[RequestRecord],
        sampler: PlatformSampler | None = None,
    ) -> None:
        for stats in phases.values():
            for name, probe in experiment.probes.items():
                if probe.platform is None or probe.service is None or sampler is None:
                    continue
                stats["probes"][name] = sampler.evaluate(
                    probe.service, probe.platform, probe.aggregation, origin + stats["start"],
                    origin + stats["end"],
                )  # fmt: skip
        for stats in phases.values():
            window = Window(stats["start"], stats["end"])
            for name, probe in experiment.probes.items():
                if probe.client is None:
                    continue
                scoped = phase_stats(records, origin, window, probe.endpoint)
                stats["probes"][name] = _client_value(scoped, probe.client)
        promql = {n: p for n, p in experiment.probes.items() if p.promql is not None}
        if promql:
            client = PrometheusProbes(self.platform.prometheus())
            for stats in phases.values():
                for name, probe in promql.items():
                    assert probe.promql is not None
                    stats["probes"][name] = client.evaluate(
                        probe.promql, probe.aggregation, origin + stats["start"],
                        origin + stats["end"],
                    )  # fmt: skip

    def _evaluate(
        self, experiment: Experiment, arms: dict[str, ArmResult]
    ) -> list[HypothesisResult]:
        """Decide every hypothesis; one of an arm that did not run fails with no value."""
        probe_names = frozenset(experiment.probes)
        results: list[HypothesisResult] = []
        for index, hypothesis in enumerate(experiment.hypotheses):
            threshold = thresholds.parse(hypothesis.expression, probe_names)
            arm = arms.get(hypothesis.arm)
            observed: float | None = None
            if arm is not None:
                scoped = self._endpoint_stats.get(hypothesis.arm, {}).get(index)
                observed = _observed(hypothesis, threshold.metric, arm, scoped)
            verdict: Verdict = "pass" if threshold.holds(observed) else "fail"
            results.append(
                HypothesisResult(
                    name=hypothesis.name,
                    arm=hypothesis.arm,
                    phase=hypothesis.phase,
                    expression=hypothesis.expression,
                    observed=observed,
                    verdict=verdict,
                    abort=hypothesis.abort,
                )
            )
        return results


def _add_scaling(
    result: ArmResult,
    scaler: Autoscaler,
    records: list[RequestRecord],
    origin: float,
    fault: Window,
) -> None:
    """Add the scaler's changes, its scale-up lag and the failures once capacity was there."""
    result["scaling"] = list(scaler.events)
    lag = scale_up_lag(scaler.events, fault.start, fault.end)
    result["scale_up_lag"] = lag
    if lag is None:
        result["failures_after_scale_up"] = None
        return
    # Requests already queued when the instances came up may still fail; one second covers them.
    after = Window(min(fault.start + lag + 1.0, fault.end), fault.end)
    result["failures_after_scale_up"] = phase_stats(records, origin, after)["failures"]


def _spike_records(run_dir: Path, arm_name: str) -> list[RequestRecord]:
    """Read the records of the load spikes of an arm."""
    records: list[RequestRecord] = []
    for path in sorted(run_dir.glob(f"{arm_name}.spike*.records.jsonl")):
        records.extend(read_records(path))
    return records


def _client_value(stats: PhaseStats, metric: str) -> float | None:
    value = stats.get(metric)
    if isinstance(value, int | float):
        return float(value)
    return None


def _phase_value(stats: PhaseStats, metric: str) -> float | None:
    if metric in stats["probes"]:
        return stats["probes"][metric]
    return _client_value(stats, metric)


def _observed(
    hypothesis: Hypothesis, metric: str, arm: ArmResult, scoped: PhaseStats | None
) -> float | None:
    if metric == "time_to_detect":
        return arm["time_to_detect"]
    if metric == "time_to_recover":
        return arm["time_to_recover"]
    if metric == "scale_up_lag":
        return arm.get("scale_up_lag")
    if metric == "failures_after_scale_up":
        value = arm.get("failures_after_scale_up")
        return float(value) if value is not None else None
    stats = arm["phases"][hypothesis.phase]
    if scoped is not None:
        scoped["probes"] = stats["probes"]
        stats = scoped
    return _phase_value(stats, metric)


def _endpoint_stats(
    experiment: Experiment,
    arm_name: str,
    arm: ArmResult,
    records: list[RequestRecord],
    origin: float,
) -> dict[int, PhaseStats]:
    """Return the figures of each endpoint-scoped hypothesis of an arm, by hypothesis index."""
    scoped: dict[int, PhaseStats] = {}
    for index, hypothesis in enumerate(experiment.hypotheses):
        if hypothesis.arm != arm_name or hypothesis.endpoint is None:
            continue
        stats = arm["phases"][hypothesis.phase]
        window = Window(stats["start"], stats["end"])
        scoped[index] = phase_stats(records, origin, window, hypothesis.endpoint)
    return scoped


def _add_ratio_probes(experiment: Experiment, arms: dict[str, ArmResult]) -> None:
    """Compute ratio probes once every arm ran; `arm:metric` reads another arm's phase."""
    for arm in arms.values():
        for phase_name, stats in arm["phases"].items():
            for name, probe in experiment.probes.items():
                if probe.ratio is None:
                    continue
                values = []
                for part in probe.ratio:
                    other, _, metric = part.rpartition(":")
                    source: PhaseStats | None = stats
                    if other:
                        other_arm = arms.get(other)
                        source = other_arm["phases"].get(phase_name) if other_arm else None
                    values.append(_phase_value(source, metric) if source else None)
                top, bottom = values
                stats["probes"][name] = top / bottom if top is not None and bottom else None


_state = threading.local()


@contextmanager
def _signals_raise_interrupted() -> Iterator[None]:
    """Turn the first SIGINT or SIGTERM into Interrupted; later ones only log."""

    def handler(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if getattr(_state, "interrupted", False):
            log.warning("signal.ignored", signal=name, reason="rollback in progress")
            return
        if getattr(_state, "deferred", False):
            log.warning("signal.deferred", signal=name, reason="rollback in progress")
            _state.pending = name
            return
        _state.interrupted = True
        raise Interrupted(name)

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    _state.interrupted = False
    _state.pending = None
    for signum in previous:
        signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold back SIGINT and SIGTERM until the block ends, then raise Interrupted."""
    depth = getattr(_state, "deferred", 0)
    _state.deferred = depth + 1
    try:
        yield
    finally:
        _state.deferred = depth
    if depth:
        return
    pending = getattr(_state, "pending", None)
    if pending is not None and not getattr(_state, "interrupted", False):
        _state.pending = None
        _state.interrupted = True
        raise Interrupted(pending)
