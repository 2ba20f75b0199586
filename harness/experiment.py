"""The experiment model, its loader and the checks that run before anything starts."""

from __future__ import annotations

import re
import stat
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    model_validator,
)

from harness import thresholds
from harness.errors import InvalidInput
from harness.faults import FAULT_KINDS, FaultSpec
from harness.load import USER_CLASS_NAMES
from harness.stack import SettingValue, Stack, load_stack

EXPERIMENTS_DIR = Path(__file__).resolve().parent.parent / "experiments"
MAX_FILE_BYTES = 256 * 1024
PHASES = ("baseline", "fault", "recovery")
REQUIRED_ARMS = ("control", "treatment")
NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
MAX_PHASE_S = 3600.0
MIN_PHASE_S = 0.5
# Aliases let a small file expand into a huge document, so only a few are accepted, and the
# loaded document may hold at most MAX_NODES values counting each use of a shared one.
MAX_ALIASES = 50
MAX_NODES = 20_000


def _seconds(value: object) -> object:
    """Turn `5s`, `500ms` or a number of seconds into seconds."""
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s)?\s*", value)
        if match is None:
            raise ValueError("expected a duration such as 10s or 500ms")
        number = float(match[1])
        return number / 1000.0 if match[2] == "ms" else number
    return value


Seconds = Annotated[float, BeforeValidator(_seconds), Field(ge=MIN_PHASE_S, le=MAX_PHASE_S)]


class Phases(BaseModel):
    """Durations of the three phases of an arm, in seconds."""

    model_config = ConfigDict(extra="forbid")

    baseline: Seconds
    fault: Seconds
    recovery: Seconds

    @property
    def total(self) -> float:
        """Return the length of the whole arm."""
        return self.baseline + self.fault + self.recovery


class LoadProfile(BaseModel):
    """The Locust user class and how many users run it."""

    model_config = ConfigDict(extra="forbid")

    user_class: str | list[str]
    users: StrictInt = Field(ge=1, le=500)
    spawn_rate: float = Field(gt=0, le=500)

    @property
    def user_classes(self) -> list[str]:
        """Return the user class names; Locust spreads users over them by their weights."""
        return [self.user_class] if isinstance(self.user_class, str) else self.user_class

    @model_validator(mode="after")
    def _known_user_class(self) -> LoadProfile:
        if not self.user_classes:
            raise ValueError("user_class needs at least one name")
        for name in self.user_classes:
            if name not in USER_CLASS_NAMES:
                known = ", ".join(USER_CLASS_NAMES)
                raise ValueError(f"unknown user_class {name!r}; known: {known}")
        return self


InstanceCount = Annotated[StrictInt, Field(ge=1, le=10)]


class Autoscale(BaseModel):
    """A scaler in the harness: it sizes `service` from a PromQL total, like an autoscaler.

    Every `interval` it reads `promql` (a total over the instances, such as requests in flight)
    and wants `ceil(value / target)` instances within `min` and `max`. It adds instances at once
    and removes them only once the wanted count stayed lower for `down_after`.
    """

    model_config = ConfigDict(extra="forbid")

    service: str
    promql: str = Field(min_length=1, max_length=2000)
    target: float = Field(gt=0, le=1_000_000, strict=True, allow_inf_nan=False)
    min: InstanceCount = 1
    max: InstanceCount = 5
    interval: Annotated[float, BeforeValidator(_seconds), Field(ge=0.5, le=60, strict=True)] = 1.0
    down_after: Annotated[float, BeforeValidator(_seconds), Field(ge=0, le=600, strict=True)] = 5.0

    @model_validator(mode="after")
    def _bounds(self) -> Autoscale:
        if self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self


class Arm(BaseModel):
    """One arm: the target's settings, and optionally its own faults and phases."""

    model_config = ConfigDict(extra="forbid")

    description: str = ""
    target: dict[str, dict[str, SettingValue]] = {}
    faults: list[FaultSpec] | None = None
    phases: Phases | None = None
    load: LoadProfile | None = None
    scale: dict[str, InstanceCount] = {}
    autoscale: Autoscale | None = None


PlatformFigure = Literal["instances", "rss_mb", "memory_peak_mb", "oom_kills"]


class Probe(BaseModel):
    """A value per phase: a PromQL series, a client metric of one endpoint, a figure the
    platform reports of a service (sampled four times a second), or a ratio.

    A ratio's parts are metric or probe names; `arm:name` reads the same phase of another arm.
    """

    model_config = ConfigDict(extra="forbid")

    promql: str | None = None
    aggregation: Literal["increase", "rate", "max", "min", "mean", "last"] = "increase"
    client: str | None = None
    endpoint: str | None = None
    platform: PlatformFigure | None = None
    service: str | None = None
    ratio: tuple[str, str] | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Probe:
        sources = [self.promql, self.client, self.platform, self.ratio]
        if sum(source is not None for source in sources) != 1:
            raise ValueError("give exactly one of promql, client, platform or ratio")
        if (self.platform is None) != (self.service is None):
            raise ValueError("a platform probe needs a service, and only it takes one")
        if self.platform is not None and self.aggregation == "rate":
            raise ValueError("a platform probe takes aggregation max, min, mean, last or increase")
        if self.client is not None:
            usable = sorted(thresholds.CLIENT_METRICS - thresholds.ARM_METRICS)
            if self.client not in usable:
                raise ValueError(f"client metric must be one of {', '.join(usable)}")
            if self.endpoint is None:
                raise ValueError("a client probe needs an endpoint")
        return self


class Hypothesis(BaseModel):
    """A threshold on a metric of one arm within one phase."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")
    arm: str
    phase: Literal["baseline", "fault", "recovery"]
    expression: str
    endpoint: str | None = None
    abort: bool = False


class DataSpec(BaseModel):
    """Seed data of the database services."""

    model_config = ConfigDict(extra="forbid")

    rows: int = Field(default=10_000, ge=100, le=5_000_000)


class Experiment(BaseModel):
    """An experiment file."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    description: str
    pattern: str
    seed: int = Field(default=42, ge=0, le=2**31 - 1)
    services: list[str] = []
    data: DataSpec = DataSpec()
    load: LoadProfile
    phases: Phases
    faults: list[FaultSpec] = Field(min_length=1)
    arms: dict[str, Arm]
    probes: dict[str, Probe] = {}
    hypotheses: list[Hypothesis] = Field(min_length=1)

    def arm_faults(self, arm: str) -> list[FaultSpec]:
        """Return the faults of an arm: its own, or the experiment's."""
        own = self.arms[arm].faults
        return own if own is not None else self.faults

    def arm_load(self, arm: str) -> LoadProfile:
        """Return the load profile of an arm: its own, or the experiment's."""
        return self.arms[arm].load or self.load

    def arm_phases(self, arm: str) -> Phases:
        """Return the phases of an arm: its own, or the experiment's."""
        return self.arms[arm].phases or self.phases


class _StrictLoader(yaml.SafeLoader):
    """A safe loader that rejects a key given twice in one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str | int) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _node_count(data: object, budget: int) -> int:
    """Count values, shared ones each time they appear, stopping past the budget."""
    count = 0
    stack = [data]
    while stack and count <= budget:
        item = stack.pop()
        count += 1
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return count


# Names pydantic adds to an error's location for the member of a union that failed.
_UNION_MEMBERS = frozenset({"int", "float", "str", "bool", "list[str]"})


def _field_path(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for part in loc:
        if isinstance(part, str) and part in _UNION_MEMBERS:
            continue
        if isinstance(part, int):
            parts.append(f"[{part}]")
        elif parts:
            parts.append(f".{part}")
        else:
            parts.append(str(part))
    return "".join(parts)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_cross_references(experiment: Experiment, stack: Stack, where: str) -> None:
    """Check what pydantic cannot: arms, links, settings, hypotheses against probes."""
    for index, service in enumerate(experiment.services):
        spec = stack.services.get(service)
        if spec is None or not spec.optional:
            known = ", ".join(n for n, s in stack.services.items() if s.optional)
            raise InvalidInput(
                f"{where}: field services[{index}]: {service!r} is not an optional service; "
                f"known: {known}"
            )
    running = stack.running_services(experiment.services)
    for required in REQUIRED_ARMS:
        if required not in experiment.arms:
            raise InvalidInput(
                f"{where}: field arms: missing arm {required!r}; every experiment needs "
                "control and treatment"
            )
    for arm_name, arm in experiment.arms.items():
        if not re.fullmatch(NAME_PATTERN, arm_name):
            raise InvalidInput(
                f"{where}: field arms: invalid arm name {arm_name!r}; use lower-case letters, "
                "digits and dashes"
            )
        stack.resolve_settings(
            {k: dict(v) for k, v in arm.target.items()}, f"{where}: field arms.{arm_name}.target"
        )
        for service, settings in arm.target.items():
            if settings.get("memory_limit_mb") and service not in running:
                raise InvalidInput(
                    f"{where}: field arms.{arm_name}.target.{service}.memory_limit_mb: "
                    f"{service!r} does not run in this experiment; add it under services"
                )
        scalable = ", ".join(n for n in stack.services if stack.scalable(n))
        for service in arm.scale:
            if not stack.scalable(service):
                raise InvalidInput(
                    f"{where}: field arms.{arm_name}.scale.{service}: {service!r} does not "
                    f"scale; services behind the edge do: {scalable}"
                )
        if arm.autoscale is not None:
            service = arm.autoscale.service
            if not stack.scalable(service) or service not in running:
                raise InvalidInput(
                    f"{where}: field arms.{arm_name}.autoscale.service: {service!r} does not "
                    f"scale; services behind the edge do: {scalable}"
                )
        own = experiment.arms[arm_name].faults is not None
        for index, fault in enumerate(experiment.arm_faults(arm_name)):
            field = f"arms.{arm_name}.faults[{index}]" if own else f"faults[{index}]"
            kind = FAULT_KINDS.get(fault.kind)
            if kind is None:
                known = ", ".join(FAULT_KINDS)
                raise InvalidInput(
                    f"{where}: field {field}.kind: unknown fault kind {fault.kind!r}; "
                    f"known: {known}"
                )
            kind.check(fault, stack, f"{where}: field {field}")
            ramp = fault.attributes.get("ramp_s", 0)
            fault_s = experiment.arm_phases(arm_name).fault
            if ramp > fault_s:
                raise InvalidInput(
                    f"{where}: field {field}.attributes.ramp_s: invalid value {ramp!r}; the "
                    f"ramp must fit in arm {arm_name}'s fault phase of {fault_s:g} s"
                )
            for service in kind.services(fault):
                if service not in running:
                    raise InvalidInput(
                        f"{where}: field {field}: service {service!r} is not running in this "
                        "experiment; add it under services"
                    )

    for name, probe in experiment.probes.items():
        if name in thresholds.CLIENT_METRICS:
            raise InvalidInput(f"{where}: field probes.{name}: name taken by a client metric")
        if probe.service is not None and probe.service not in running:
            raise InvalidInput(
                f"{where}: field probes.{name}.service: {probe.service!r} does not run in this "
                f"experiment; running: {', '.join(running)}"
            )
        if probe.ratio is not None:
            for part in probe.ratio:
                other, _, metric = part.rpartition(":")
                if other and other not in experiment.arms:
                    raise InvalidInput(f"{where}: field probes.{name}.ratio: unknown arm {other!r}")
                if metric not in thresholds.CLIENT_METRICS and metric not in experiment.probes:
                    raise InvalidInput(
                        f"{where}: field probes.{name}.ratio: unknown metric {metric!r}"
                    )

    seen: set[str] = set()
    probe_names = frozenset(experiment.probes)
    for index, hypothesis in enumerate(experiment.hypotheses):
        field = f"{where}: field hypotheses[{index}]"
        if hypothesis.arm not in experiment.arms:
            known = ", ".join(experiment.arms)
            raise InvalidInput(f"{field}.arm: unknown arm {hypothesis.arm!r}; known: {known}")
        key = f"{hypothesis.arm}/{hypothesis.name}"
        if key in seen:
            raise InvalidInput(f"{field}.name: duplicate hypothesis name {hypothesis.name!r}")
        seen.add(key)
        try:
            thresholds.parse(hypothesis.expression, probe_names)
        except ValueError as exc:
            raise InvalidInput(
                f"{field}.expression: invalid value {_short(hypothesis.expression)}: {exc}"
            ) from None


def parse_experiment(text: str, where: str, stack: Stack | None = None) -> Experiment:
    """Validate the text of an experiment file; raise InvalidInput with one line on error."""
    if len(text.encode("utf-8", errors="replace")) > MAX_FILE_BYTES:
        raise InvalidInput(f"{where}: file larger than {MAX_FILE_BYTES} bytes")
    try:
        aliases = sum(1 for event in yaml.parse(text) if isinstance(event, yaml.AliasEvent))
        if aliases > MAX_ALIASES:
            raise InvalidInput(
                f"{where}: {aliases} YAML aliases, more than {MAX_ALIASES}; "
                "expand them or split the file"
            )
        data = yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise InvalidInput(f"{where}: invalid YAML{at}: {problem}") from None
    except RecursionError:
        raise InvalidInput(f"{where}: invalid YAML: nested too deeply") from None
    if _node_count(data, MAX_NODES) > MAX_NODES:
        raise InvalidInput(f"{where}: document expands to more than {MAX_NODES} values")
    if not isinstance(data, dict):
        raise InvalidInput(
            f"{where}: expected a mapping with name, description, pattern, load, phases, "
            f"faults, arms and hypotheses, got {type(data).__name__}"
        )
    try:
        experiment = Experiment.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = _field_path(first["loc"]) or "(top level)"
        value = first.get("input")
        raise InvalidInput(
            f"{where}: field {field}: {first['msg']} (got {_short(value)})"
        ) from None
    _check_cross_references(experiment, stack or load_stack(), where)
    return experiment


def resolve_path(name_or_path: str, directory: Path = EXPERIMENTS_DIR) -> Path:
    """Find an experiment by name in the experiments folder, or take a path as it is."""
    candidate = Path(name_or_path)
    if candidate.suffix in {".yaml", ".yml"}:
        return candidate
    path = directory / f"{name_or_path}.yaml"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in directory.glob("*.yaml"))) or "none"
        raise InvalidInput(f"unknown experiment {name_or_path!r}; known experiments: {known}")
    return path


def read_experiment_text(path: Path) -> str:
    """Read an experiment file: a regular file of at most MAX_FILE_BYTES of UTF-8 text."""
    try:
        info = path.stat()
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read experiment file: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise InvalidInput(f"{path}: not a regular file; give a YAML experiment file")
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read experiment file: {exc.strerror}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise InvalidInput(f"{path}: file larger than {MAX_FILE_BYTES} bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"{path}: not UTF-8 text; an experiment file is YAML") from None


def load_experiment(name_or_path: str, stack: Stack | None = None) -> Experiment:
    """Load and validate an experiment by name or path."""
    return load_experiment_file(resolve_path(name_or_path), stack)


def load_experiment_file(path: Path, stack: Stack | None = None) -> Experiment:
    """Load and validate an experiment file; one in the catalog must be named as its file."""
    text = read_experiment_text(path)
    experiment = parse_experiment(text, str(path), stack)
    in_catalog = path.resolve().parent == EXPERIMENTS_DIR.resolve()
    if in_catalog and experiment.name != path.stem:
        raise InvalidInput(
            f"{path}: field name: {experiment.name!r} differs from the file name {path.stem!r}"
        )
    return experiment


def list_experiments(directory: Path = EXPERIMENTS_DIR) -> list[Path]:
    """Return the experiment files of a folder, sorted by name."""
    return sorted(directory.glob("*.yaml"))
