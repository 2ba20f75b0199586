"""The `harness` command: up, down, status, list, run, gameday, reconcile."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import structlog
import typer
from rich.console import Console
from rich.table import Table
from typer.exceptions import TyperException

from harness.errors import ExitCode, HarnessError, InvalidInput
from harness.experiment import list_experiments, load_experiment, parse_experiment
from harness.journal import Journal
from harness.platforms.local import LocalPlatform
from harness.runner import Interrupted, Progress, Runner
from harness.stack import load_stack

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Chaos and load experiments for production design patterns.",
)
console = Console(stderr=False)
errors = Console(stderr=True)

StateDir = Annotated[
    Path,
    typer.Option(envvar="HARNESS_STATE_DIR", help="Folder for pids, ports, logs and journal."),
]
ResultsDir = Annotated[
    Path, typer.Option(envvar="HARNESS_RESULTS_DIR", help="Folder for run reports.")
]
Platform = Annotated[
    str, typer.Option(envvar="HARNESS_PLATFORM", help="Where the target runs: local.")
]
LogLevel = Annotated[
    str, typer.Option(envvar="HARNESS_LOG_LEVEL", help="Log level: debug, info, warning.")
]


def _configure_logging(level: str) -> None:
    names = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}
    if level not in names:
        raise InvalidInput(f"--log-level: invalid value {level!r}; expected debug, info, warning")
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="%H:%M:%S"),
            structlog.processors.KeyValueRenderer(key_order=["timestamp", "level", "event"]),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(names[level]),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )


def _platform(name: str, state_dir: Path) -> LocalPlatform:
    if name != "local":
        # NOTE: the kubernetes platform is not built yet; only local runs.
        raise InvalidInput(f"--platform: invalid value {name!r}; available platforms: local")
    return LocalPlatform(state_dir.resolve(), load_stack())


def _reconcile(state_dir: Path) -> list[str]:
    """Remove faults left by an earlier run; return what could not be removed."""
    journal = Journal(state_dir / "journal.jsonl")
    removed, left = journal.reconcile()
    for fault_id in removed:
        errors.print(f"reconcile: removed fault left by an earlier run: {fault_id}")
    for line in left:
        errors.print(f"reconcile: could not remove {line}")
    return left


@app.command()
def up(
    state_dir: StateDir = Path(".harness"),
    platform: Platform = "local",
    log_level: LogLevel = "warning",
) -> None:
    """Start the reference target with default settings and wait until it is healthy."""
    _configure_logging(log_level)
    _reconcile(state_dir)
    target = _platform(platform, state_dir)
    target.up(target.stack.resolve_settings({}, "defaults"))
    _print_status(target)


@app.command()
def down(
    state_dir: StateDir = Path(".harness"),
    platform: Platform = "local",
    log_level: LogLevel = "warning",
) -> None:
    """Stop every process the harness started for the target."""
    _configure_logging(log_level)
    _platform(platform, state_dir).down()
    console.print("stack stopped")


@app.command()
def status(
    state_dir: StateDir = Path(".harness"),
    platform: Platform = "local",
    log_level: LogLevel = "warning",
) -> None:
    """Show the target's services, instances, pids, ports and health."""
    _configure_logging(log_level)
    _reconcile(state_dir)
    _print_status(_platform(platform, state_dir))


def _print_status(target: LocalPlatform) -> None:
    current = target.status()
    if current.empty:
        console.print("nothing running")
        return
    table = Table(title="target")
    for column in ("service", "instance", "pid", "port", "health"):
        table.add_column(column)
    for item in current.instances:
        health = "[green]healthy[/]" if item.healthy else "[red]unhealthy[/]"
        table.add_row(item.service, item.name, str(item.pid), str(item.port or "-"), health)
    console.print(table)


@app.command("list")
def list_command() -> None:
    """List the experiments with their pattern and description."""
    table = Table(title="experiments")
    for column in ("name", "pattern", "arms", "description"):
        table.add_column(column)
    for path in list_experiments():
        try:
            experiment = load_experiment(path.stem)
        except HarnessError as exc:
            table.add_row(path.stem, "-", "-", f"[red]invalid: {exc}[/]")
            continue
        table.add_row(experiment.name, experiment.pattern, ", ".join(experiment.arms),
                      experiment.description.strip().splitlines()[0])  # fmt: skip
    console.print(table)


@app.command()
def reconcile(
    state_dir: StateDir = Path(".harness"),
    platform: Platform = "local",
    log_level: LogLevel = "warning",
) -> None:
    """Remove faults and stop processes left by an earlier run that was killed."""
    _configure_logging(log_level)
    left = _reconcile(state_dir)
    target = _platform(platform, state_dir)
    if not target.status().empty:
        target.down()
        console.print("stopped the processes of an earlier run")
    if left:
        raise typer.Exit(int(ExitCode.ROLLBACK_FAILED))
    console.print("nothing left behind")


@app.command()
def run(
    name: Annotated[str, typer.Argument(help="Experiment name, or path to a YAML file.")],
    seed: Annotated[
        int | None,
        typer.Option(
            envvar="HARNESS_SEED",
            min=0,
            max=2**31 - 1,
            help="Seed for load and faults; default: the file's.",
        ),
    ] = None,
    state_dir: StateDir = Path(".harness"),
    results_dir: ResultsDir = Path("results"),
    platform: Platform = "local",
    log_level: LogLevel = "warning",
) -> None:
    """Run one experiment, write its reports and exit with its verdict."""
    _configure_logging(log_level)
    stack = load_stack()
    experiment = load_experiment(name, stack)
    target = _platform(platform, state_dir)
    code = _run_one(experiment.name, name, seed, target, state_dir, results_dir)
    raise typer.Exit(code)


def _run_one(
    label: str,
    name: str,
    seed: int | None,
    target: LocalPlatform,
    state_dir: Path,
    results_dir: Path,
) -> int:
    from harness.report import write_reports
    from harness.report.console import LiveView, print_summary

    experiment = load_experiment(name, target.stack)
    left = _reconcile(state_dir)
    if left:
        errors.print("harness: error: faults of an earlier run are still applied; see above")
        return int(ExitCode.ROLLBACK_FAILED)
    if not target.status().empty:
        errors.print("harness: stopping the target left running by an earlier run")
        target.down()

    run_id = f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}-{experiment.name}"
    with LiveView(console) as live:

        def show(arm: str, phase: str, elapsed: float, total: float, rps: float,
                 failures: float | None) -> None:  # fmt: skip
            live.update(arm, phase, elapsed, total, rps, None, None)

        runner = Runner(target, target.stack, state_dir.resolve(), progress=Progress(show),
                        seed=seed)  # fmt: skip
        result = runner.run(experiment, run_id)
    run_dir = write_reports(result, results_dir)
    print_summary(result, console)
    console.print(f"reports: {run_dir}")
    return result["exit_code"]


@app.command()
def gameday(
    seed: Annotated[int | None, typer.Option(envvar="HARNESS_SEED", min=0)] = None,
    state_dir: StateDir = Path(".harness"),
    results_dir: ResultsDir = Path("results"),
    platform: Platform = "local",
    log_level: LogLevel = "warning",
) -> None:
    """Run every experiment in turn; exit with the worst verdict."""
    _configure_logging(log_level)
    target = _platform(platform, state_dir)
    for path in list_experiments():
        load_experiment(path.stem, target.stack)
    worst = 0
    summary: list[tuple[str, int]] = []
    for path in list_experiments():
        code = _run_one(path.stem, path.stem, seed, target, state_dir, results_dir)
        summary.append((path.stem, code))
        worst = max(worst, code)
    table = Table(title="game day")
    table.add_column("experiment")
    table.add_column("verdict")
    for experiment_name, code in summary:
        table.add_row(experiment_name, "[green]pass[/]" if code == 0 else f"[red]fail ({code})[/]")
    console.print(table)
    raise typer.Exit(worst)


@app.command()
def validate(
    path: Annotated[Path, typer.Argument(help="Experiment file to check.")],
) -> None:
    """Check an experiment file without starting anything."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{path}: cannot read experiment file: {exc}") from None
    experiment = parse_experiment(text, str(path))
    console.print(f"{path}: valid experiment {experiment.name!r}")


def main() -> None:
    """Run the CLI, mapping harness errors and interrupts to documented exit codes."""
    try:
        code = app(standalone_mode=False)
    except HarnessError as exc:
        errors.print(f"harness: error: {exc}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(int(exc.exit_code))
    except (Interrupted, KeyboardInterrupt):
        errors.print("harness: interrupted; faults removed and target stopped")
        sys.exit(int(ExitCode.INTERRUPTED))
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(int(ExitCode.INTERRUPTED))
    except TyperException as exc:
        errors.print(f"harness: error: {exc.format_message()}", markup=False, highlight=False,
                     soft_wrap=True)  # fmt: skip
        sys.exit(int(ExitCode.INVALID_INPUT))
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
