"""Experiment files: the shipped ones are valid, and bad input gives one clear line."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.errors import InvalidInput
from harness.experiment import (
    EXPERIMENTS_DIR,
    list_experiments,
    load_experiment,
    load_experiment_file,
    parse_experiment,
)

GOOD: dict[str, Any] = {
    "name": "demo",
    "description": "a demo",
    "pattern": "circuit breaker",
    "load": {"user_class": "CheckoutUser", "users": 5, "spawn_rate": 5},
    "phases": {"baseline": "2s", "fault": "3s", "recovery": "2s"},
    "faults": [
        {"kind": "toxic", "link": "api->payments", "toxic": "latency",
         "attributes": {"latency": 500}}
    ],
    "arms": {"control": {"target": {"api": {"breaker": False}}},
             "treatment": {"target": {"api": {"breaker": True}}}},
    "probes": {"calls": {"promql": "sum(payments_requests_total)"}},
    "hypotheses": [{"name": "slow", "arm": "control", "phase": "fault",
                    "expression": "p95 > 400ms"}],
}  # fmt: skip


def _with(path: str, value: object) -> dict[str, Any]:
    """Return GOOD with one dotted path set (or deleted when value is DELETE)."""
    data = copy.deepcopy(GOOD)
    keys = path.split(".")
    node: Any = data
    for key in keys[:-1]:
        node = node[int(key)] if isinstance(node, list) else node[key]
    last: Any = int(keys[-1]) if isinstance(node, list) else keys[-1]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return data


DELETE = object()

BAD_CASES: list[tuple[str, dict[str, Any] | str, str]] = [
    ("missing name", _with("name", DELETE), "field name"),
    ("missing description", _with("description", DELETE), "field description"),
    ("missing load", _with("load", DELETE), "field load"),
    ("missing phases", _with("phases", DELETE), "field phases"),
    ("missing faults", _with("faults", DELETE), "field faults"),
    ("missing arms", _with("arms", DELETE), "field arms"),
    ("missing hypotheses", _with("hypotheses", DELETE), "field hypotheses"),
    ("unknown top-level field", _with("colour", "red"), "field colour"),
    ("name with spaces", _with("name", "my experiment"), "field name"),
    ("name wrong type", _with("name", 42), "field name"),
    ("seed negative", _with("seed", -1), "field seed"),
    ("users zero", _with("load.users", 0), "field load.users"),
    ("users too many", _with("load.users", 100000), "field load.users"),
    ("users as text", _with("load.users", "ten"), "field load.users"),
    ("spawn rate negative", _with("load.spawn_rate", -1), "field load.spawn_rate"),
    ("unknown user class", _with("load.user_class", "Hacker"), "unknown user_class"),
    ("baseline zero", _with("phases.baseline", "0s"), "field phases.baseline"),
    ("fault negative", _with("phases.fault", -5), "field phases.fault"),
    ("recovery unparsable", _with("phases.recovery", "soon"), "field phases.recovery"),
    ("phase too long", _with("phases.fault", "100000s"), "field phases.fault"),
    ("phase unknown key", _with("phases.warmup", "1s"), "field phases.warmup"),
    ("faults empty", _with("faults", []), "field faults"),
    ("unknown fault kind", _with("faults.0.kind", "meteor"), "unknown fault kind 'meteor'"),
    ("unknown link", _with("faults.0.link", "api->bank"), "unknown link 'api->bank'"),
    ("missing link", _with("faults.0.link", DELETE), "link: missing"),
    ("unknown toxic", _with("faults.0.toxic", "lag"), "unknown toxic 'lag'"),
    ("bad stream", _with("faults.0.stream", "sideways"), "field faults[0].stream"),
    ("toxicity above 1", _with("faults.0.toxicity", 1.5), "field faults[0].toxicity"),
    ("negative latency", _with("faults.0.attributes.latency", -10), "invalid value -10"),
    ("huge latency", _with("faults.0.attributes.latency", 10**9), "invalid value"),
    ("latency as text", _with("faults.0.attributes.latency", "slow"), "attributes.latency"),
    ("unknown attribute", _with("faults.0.attributes.colour", 1), "unknown attribute"),
    ("control arm missing", _with("arms.control", DELETE), "missing arm 'control'"),
    ("treatment arm missing", _with("arms.treatment", DELETE), "missing arm 'treatment'"),
    ("unknown service", _with("arms.control.target", {"bank": {"x": 1}}), "unknown service"),
    (
        "unknown setting",
        _with("arms.control.target", {"api": {"turbo": True}}),
        "unknown setting 'turbo'",
    ),
    ("setting wrong type", _with("arms.control.target", {"api": {"breaker": "maybe"}}), "breaker"),
    ("setting bad choice", _with("arms.control.target", {"api": {"retry": "forever"}}), "retry"),
    ("arm name bad", _with("arms.Bad Arm", {}), "invalid arm name"),
    ("hypothesis unknown arm", _with("hypotheses.0.arm", "experimental"), "unknown arm"),
    ("hypothesis unknown phase", _with("hypotheses.0.phase", "warmup"), "phase"),
    ("hypothesis bad threshold", _with("hypotheses.0.expression", "p95 < fast"), "expression"),
    ("hypothesis unknown probe", _with("hypotheses.0.expression", "calls2 > 1"), "unknown metric"),
    ("hypotheses empty", _with("hypotheses", []), "field hypotheses"),
    (
        "duplicate hypothesis",
        {**GOOD, "hypotheses": GOOD["hypotheses"] * 2},
        "duplicate hypothesis",
    ),
    (
        "probe with both sources",
        _with("probes.calls", {"promql": "x", "ratio": ["a", "b"]}),
        "exactly one",
    ),
    ("probe bad aggregation", _with("probes.calls.aggregation", "median"), "aggregation"),
    (
        "probe ratio unknown",
        _with("probes.r", {"ratio": ["calls", "nothing"]}),
        "unknown metric 'nothing'",
    ),
    ("probe named like a metric", _with("probes.p95", {"promql": "x"}), "taken by"),
    (
        "platform probe without service",
        _with("probes.n", {"platform": "instances"}),
        "needs a service",
    ),
    (
        "platform probe unknown figure",
        _with("probes.n", {"platform": "cpu", "service": "api"}),
        "field probes.n.platform",
    ),
    (
        "platform probe service not running",
        _with("probes.n", {"platform": "rss_mb", "service": "blobs"}),
        "'blobs' does not run",
    ),
    (
        "platform probe rate",
        _with("probes.n", {"platform": "instances", "service": "api", "aggregation": "rate"}),
        "takes aggregation",
    ),
    (
        "promql probe with service",
        _with("probes.n", {"promql": "x", "service": "api"}),
        "only it takes one",
    ),
    (
        "autoscale edge",
        _with("arms.treatment.autoscale", {"service": "edge", "promql": "x", "target": 1}),
        "autoscale.service: 'edge' does not scale",
    ),
    (
        "autoscale min above max",
        _with(
            "arms.treatment.autoscale",
            {"service": "api", "promql": "x", "target": 1, "min": 4, "max": 2},
        ),
        "min 4 is above max 2",
    ),
    (
        "autoscale zero target",
        _with("arms.treatment.autoscale", {"service": "api", "promql": "x", "target": 0}),
        "field arms.treatment.autoscale.target",
    ),
    (
        "autoscale max 11",
        _with(
            "arms.treatment.autoscale", {"service": "api", "promql": "x", "target": 1, "max": 11}
        ),
        "field arms.treatment.autoscale.max",
    ),
    (
        "autoscale interval too short",
        _with(
            "arms.treatment.autoscale",
            {"service": "api", "promql": "x", "target": 1, "interval": "100ms"},
        ),
        "field arms.treatment.autoscale.interval",
    ),
    (
        "autoscale unknown key",
        _with(
            "arms.treatment.autoscale",
            {"service": "api", "promql": "x", "target": 1, "cooldown": 3},
        ),
        "field arms.treatment.autoscale.cooldown",
    ),
    (
        "spike ramp negative",
        _with(
            "faults.0",
            {
                "kind": "load_spike",
                "user_class": "WorkUser",
                "attributes": {"users": 5, "ramp_s": -1},
            },
        ),
        "ramp_s: invalid value -1",
    ),
    (
        "autoscale target true",
        _with("arms.treatment.autoscale", {"service": "api", "promql": "x", "target": True}),
        "autoscale.target: Input should be a valid number",
    ),
    (
        "autoscale target text",
        _with("arms.treatment.autoscale", {"service": "api", "promql": "x", "target": "2"}),
        "autoscale.target: Input should be a valid number",
    ),
    (
        "spike users true",
        _with(
            "faults.0",
            {"kind": "load_spike", "user_class": "WorkUser", "attributes": {"users": True}},
        ),
        "field faults[0].attributes.users: Input should be a valid",
    ),
    (
        "spike users fraction",
        _with(
            "faults.0",
            {"kind": "load_spike", "user_class": "WorkUser", "attributes": {"users": 2.5}},
        ),
        "users: invalid value 2.5; expected a whole number",
    ),
    (
        "spike ramp longer than the fault",
        _with(
            "faults.0",
            {
                "kind": "load_spike",
                "user_class": "WorkUser",
                "attributes": {"users": 5, "ramp_s": 30},
            },
        ),
        "ramp must fit in arm control's fault phase of 3 s",
    ),
    (
        "memory limit on a service not running",
        _with("arms.control.target", {"blobs": {"memory_limit_mb": 256}}),
        "memory_limit_mb: 'blobs' does not run",
    ),
    (
        "client probe of an arm metric",
        _with("probes.n", {"client": "scale_up_lag", "endpoint": "/work"}),
        "client metric must be one of",
    ),
    ("not a mapping", "- just\n- a list\n", "expected a mapping"),
    ("empty file", "", "expected a mapping"),
    ("invalid yaml", "name: [unclosed\n", "invalid YAML"),
    ("tab indentation", "name: x\n\tdescription: y\n", "invalid YAML"),
    ("binary garbage", "\x00\x01\x02\xff", "invalid YAML"),
    (
        "yaml bomb",
        "a: &a [x, x, x, x, x, x, x, x, x]\n"
        + "".join(
            f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 9) + "]\n"
            for i in range(8)
        ),
        "aliases",
    ),
    ("python object tag", "name: !!python/object/apply:os.system [echo]\n", "invalid YAML"),
    ("huge file", "description: " + "x" * (300 * 1024) + "\n", "larger than"),
]


@pytest.mark.parametrize(("case", "data", "message"), BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_experiment_one_line(case: str, data: dict[str, Any] | str, message: str) -> None:
    """Each bad input raises InvalidInput with one line naming the file and the problem."""
    text = data if isinstance(data, str) else yaml.safe_dump(data)
    with pytest.raises(InvalidInput) as caught:
        parse_experiment(text, "bad.yaml")
    line = str(caught.value)
    assert "\n" not in line
    assert line.startswith("bad.yaml")
    assert message in line
    assert len(line) < 600


def test_bad_input_corpus_size() -> None:
    """The corpus of bad experiment inputs stays large."""
    assert len(BAD_CASES) >= 40


def test_good_experiment_parses() -> None:
    """The reference document of this module is valid."""
    experiment = parse_experiment(yaml.safe_dump(GOOD), "good.yaml")
    assert experiment.phases.total == 7.0
    assert experiment.arm_faults("control")[0].attributes == {"latency": 500}


@pytest.mark.parametrize("path", list_experiments(), ids=lambda p: p.stem)
def test_shipped_experiments_valid(path: Path) -> None:
    """Every shipped experiment file validates and names itself after its file."""
    experiment = load_experiment(path.stem)
    assert experiment.name == path.stem
    assert {"control", "treatment"} <= set(experiment.arms)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "no-such-experiment"], "unknown experiment 'no-such-experiment'"),
        (["run", "circuit-breaker", "--seed", "-4"], "--seed"),
        (["run", "circuit-breaker", "--platform", "mars"], "--platform"),
        (["run", "circuit-breaker", "--log-level", "loud"], "--log-level"),
        (["validate", "/nonexistent/file.yaml"], "cannot read"),
    ],
)
def test_cli_bad_input_exit_2(args: list[str], message: str, tmp_path: Path) -> None:
    """Bad flags and names exit 2 with one message and no traceback, starting nothing."""
    state = tmp_path / "state"
    result = subprocess.run(
        [sys.executable, "-m", "harness.cli", *args, "--state-dir", str(state)]
        if args[0] == "run"
        else [sys.executable, "-m", "harness.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (state / "state.json").exists()


def _alias_bomb(levels: int) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for level in range(1, levels):
        refs = ", ".join([f"*a{level - 1}"] * 9)
        lines.append(f"a{level}: &a{level} [{refs}]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("case", "text", "message"),
    [
        ("duplicate key", "name: a\nname: b\n", "duplicate key 'name'"),
        ("users as boolean", yaml.safe_dump(_with("load.users", True)), "load.users"),
        ("phase too short", yaml.safe_dump(_with("phases.fault", "0.0001ms")), "phases.fault"),
        (
            "control character in name",
            yaml.safe_dump(_with("hypotheses.0.name", "bad\x1bname")),
            "hypotheses[0].name",
        ),
        ("alias expansion", _alias_bomb(6), "expands to more than"),
        ("unknown optional service", yaml.safe_dump(_with("services", ["mongodb"])), "services[0]"),
        ("required service listed", yaml.safe_dump(_with("services", ["api"])), "services[0]"),
        (
            "scale of a database",
            yaml.safe_dump(_with("arms.control.scale", {"edge": 2})),
            "'edge' does not scale; services behind the edge do: api",
        ),
        (
            "scale of a linked service",
            yaml.safe_dump(_with("arms.control.scale", {"payments": 3})),
            "'payments' does not scale",
        ),
        (
            "autoscale of a linked service",
            yaml.safe_dump(
                _with("arms.control.autoscale", {"service": "payments", "promql": "x", "target": 1})
            ),
            "'payments' does not scale",
        ),
        (
            "worker concurrency zero",
            yaml.safe_dump(_with("arms.control.target", {"worker": {"concurrency": 0}})),
            "expected a number from 1 to 64",
        ),
        (
            "memory limit infinite",
            yaml.safe_dump(
                _with("arms.control.target", {"api": {"memory_limit_mb": float("inf")}})
            ),
            "expected a number from 0 to 65536",
        ),
        ("scale of zero", yaml.safe_dump(_with("arms.control.scale", {"api": 0})), "scale"),
        ("scale too large", yaml.safe_dump(_with("arms.control.scale", {"api": 11})), "scale"),
        (
            "unknown balance",
            yaml.safe_dump(_with("arms.control.target", {"edge": {"balance": "x"}})),
            "balance",
        ),
        (
            "link to a service not started",
            yaml.safe_dump(_with("faults.0.link", "api->redis")),
            "add it under services",
        ),
    ],
)
def test_more_bad_input(case: str, text: str, message: str) -> None:
    """Inputs found by breaking the loader give one line too."""
    with pytest.raises(InvalidInput) as caught:
        parse_experiment(text, "bad.yaml")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("kind", ["directory", "device", "fifo"])
def test_not_a_regular_file(tmp_path: Path, kind: str) -> None:
    """A folder, a device or a FIFO named like an experiment file is rejected unread."""
    path = tmp_path / "thing.yaml"
    if kind == "directory":
        path.mkdir()
    elif kind == "device":
        path.symlink_to("/dev/zero")
    else:
        os.mkfifo(path)
    with pytest.raises(InvalidInput, match="not a regular file"):
        load_experiment_file(path)


def test_catalog_name_checked_by_path(tmp_path: Path) -> None:
    """A relative path into the catalog gets the same name check as a name."""
    relative = os.path.relpath(EXPERIMENTS_DIR / "circuit-breaker.yaml")
    assert load_experiment_file(Path(relative)).name == "circuit-breaker"
