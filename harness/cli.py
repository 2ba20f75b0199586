"""The `harness` command: up, down, status, list, run, gameday, reconcile."""

from __future__ import annotations

import logging
import os
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import structlog
import typer
from rich.console import Console
from rich.table import Table
from typer.exceptions import TyperException

from harness.errors import ExitCode, HarnessError, InvalidInput, TargetStartError
from harness.experiment import (
    list_experiments,
    load_experiment,
    load_experiment_file,
    resolve_path,
)
from harness.journal import Journal
from harness.load.runner import LoadProgress, stop_stray_load
from harness.lock import is_locked, state_lock
from harness.platforms.local import LocalPlatform, UpOptions
from harness.runner import Interrupted, Progress, Runner
from harness.safety import allow_targets
from harness.stack import load_stack

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Chaos and load experiments for production design patterns.",
)
# Piped output (CI logs, `| tee`) has no terminal width; wide tables would be cut to 80 columns.
console = Console(stderr=False, width=None if sys.stdout.isatty() else 160)
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
Leftovers = Annotated[
    str,
    typer.Option(
        envvar="HARNESS_LEFTOVERS",
        help="What to do with target processes a killed run left: stop, or adopt (keep them).",
    ),
]
DataRows = Annotated[
    int | None,
    typer.Option(
        envvar="HARNESS_DATA_ROWS",
        min=100,
        max=5_000_000,
        help="Rows of seed data in the orders table; default: the experiment's.",
    ),
]
AllowTarget = Annotated[
    list[str],
    typer.Option(
        envvar="HARNESS_ALLOW_TARGET",
        help="A host besides loopback that load and faults may reach; repeat for more.",
    ),
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


def _check_folder(flag: str, path: Path) -> None:
    """Reject an empty folder flag (read as the current folder) and a path that is a file."""
    if path == Path(".") or not str(path).strip():
        raise InvalidInput(f"{flag}: empty or '.'; give a folder of its own, such as .harness")
    if path.exists() and not path.is_dir():
        raise InvalidInput(f"{flag}: {path} is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInput(f"{flag}: cannot create {path}: {exc.strerror}") from None
    if not os.access(path, os.W_OK):
        raise InvalidInput(f"{flag}: {path} is not writable")


def _platform(name: str, state_dir: Path) -> LocalPlatform:
    _check_folder("--state-dir", state_dir)
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
    if stop_stray_load(state_dir):
        errors.print("reconcile: stopped the Locust worker of an earlier run")
    return left


def _handle_leftovers(target: LocalPlatform, leftovers: str) -> bool:
    """Stop or adopt target processes an earlier run left; return whether some are running."""
    if leftovers not in ("stop", "adopt"):
        raise InvalidInput(f"--leftovers: invalid value {leftovers!r}; expected stop or adopt")
    if target.status().empty:
        return False
    if leftovers == "adopt":
        errors.print("reconcile: adopted the target left running by an earlier run")
        return True
    target.down()
    errors.print("reconcile: stopped the target left running by an earlier run")
    return False


@app.command()
def up(
    state_dir: StateDir = Path(".harness"),
    platform: Platform = "local",
    log_level: LogLevel = "warning",
    leftovers: Leftovers = "stop",
) -> None:
    """Start the reference target with default settings and wait until it is healthy."""
    _configure_logging(log_level)
    target = _platform(platform, state_dir)
    with state_lock(state_dir):
        _reconcile(state_dir)
        if not _handle_leftovers(target, leftovers):
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
    target = _platform(platform, state_dir)
    with state_lock(state_dir):
        left = _reconcile(state_dir)
        target.down()
    console.print("stack stopped")
    if left:
        raise typer.Exit(int(ExitCode.ROLLBACK_FAILED))


@app.command()
def status(
    state_dir: StateDir = Path(".harness"),
    platform: Platform = "local",
    log_level: LogLevel = "warning",
) -> None:
    """Show the target's services, instances, pids, ports and health."""
    _configure_logging(log_level)
    target = _platform(platform, state_dir)
    # A running experiment holds the lock, and its faults are meant to be there.
    if not is_locked(state_dir):
        with state_lock(state_dir):
            _reconcile(state_dir)
    _print_status(target)


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
                      (experiment.description.strip().split(". ")[0] or "-"))  # fmt: skip
    console.print(table)


@app.command()
def reconcile(
    state_dir: StateDir = Path(".harness"),
    platform: Platform = "local",
    log_level: LogLevel = "warning",
    leftovers: Leftovers = "stop",
) -> None:
    """Remove faults and stop (or adopt) processes left by an earlier run that was killed."""
    _configure_logging(log_level)
    target = _platform(platform, state_dir)
    with state_lock(state_dir):
        left = _reconcile(state_dir)
        _handle_leftovers(target, leftovers)
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
    leftovers: Leftovers = "stop",
    allow_target: AllowTarget = [],  # noqa: B006 - typer reads the default, never mutates it
    data_rows: DataRows = None,
) -> None:
    """Run one experiment, write its reports and exit with its verdict."""
    _configure_logging(log_level)
    allow_targets(allow_target)
    stack = load_stack()
    load_experiment(name, stack)
    target = _platform(platform, state_dir)
    _check_folder("--results-dir", results_dir)
    with state_lock(state_dir):
        code = _run_one(name, seed, target, state_dir, results_dir, leftovers, data_rows)
    raise typer.Exit(code)


def _run_one(
    name: str,
    seed: int | None,
    target: LocalPlatform,
    state_dir: Path,
    results_dir: Path,
    leftovers: str,
    data_rows: int | None = None,
) -> int:
    from harness.report import write_reports
    from harness.report.console import LiveView, print_summary

    experiment = load_experiment(name, target.stack)
    target.options = UpOptions(
        services=experiment.services,
        seed=seed if seed is not None else experiment.seed,
        data_rows=data_rows or experiment.data.rows,
    )
    left = _reconcile(state_dir)
    if left:
        errors.print("harness: error: faults of an earlier run are still applied; see above")
        return int(ExitCode.ROLLBACK_FAILED)
    if _handle_leftovers(target, leftovers):
        raise TargetStartError(
            "the target of an earlier run was adopted and is still running; an experiment "
            "starts its own target, so stop it first with `harness down`"
        )

    run_id = f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}-{experiment.name}"
    with LiveView(console) as live:

        def show(arm: str, phase: str, elapsed: float, total: float, load: LoadProgress) -> None:
            rps = float(load.requests_last_second)
            live.update(arm, phase, elapsed, total, rps, load.error_rate, load.p95_last_second)

        runner = Runner(target, target.stack, state_dir.resolve(), progress=Progress(show),
                        seed=seed, data_rows=target.options.data_rows)  # fmt: skip
        result = runner.run(experiment, run_id)
    run_dir = write_reports(result, results_dir)
    print_summary(result, console, run_dir)
    for line in result["rollback_failed"]:
        errors.print(f"harness: rollback failed: {line}", markup=False, highlight=False,
                     soft_wrap=True)  # fmt: skip
    return result["exit_code"]


@app.command()
def gameday(
    seed: Annotated[int | None, typer.Option(envvar="HARNESS_SEED", min=0, max=2**31 - 1)] = None,
    state_dir: StateDir = Path(".harness"),
    results_dir: ResultsDir = Path("results"),
    platform: Platform = "local",
    log_level: LogLevel = "warning",
    leftovers: Leftovers = "stop",
) -> None:
    """Run every experiment in turn; exit with the worst verdict."""
    _configure_logging(log_level)
    target = _platform(platform, state_dir)
    _check_folder("--results-dir", results_dir)
    for path in list_experiments():
        load_experiment(path.stem, target.stack)
    worst = 0
    summary: list[tuple[str, int]] = []
    with state_lock(state_dir):
        for path in list_experiments():
            code = _run_one(path.stem, seed, target, state_dir, results_dir, leftovers)
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
def report(
    run_dir: Annotated[Path, typer.Argument(help="A run folder such as results/latest.")] = Path(
        "results/latest"
    ),
) -> None:
    """Print a finished run's summary and write its JUnit and HTML reports again."""
    from harness.report.console import print_summary
    from harness.report.html import write_html
    from harness.report.json_report import load_result
    from harness.report.junit import write_junit

    path = run_dir / "result.json"
    try:
        result = load_result(path)
    except OSError as exc:
        raise InvalidInput(
            f"{path}: cannot read a run result ({exc.strerror}); give a run folder such as "
            "results/latest"
        ) from None
    except (ValueError, KeyError) as exc:
        raise InvalidInput(f"{path}: not a run result: {exc}") from None
    write_junit(result, run_dir / "junit.xml")
    write_html(result, run_dir / "report.html")
    print_summary(result, console, run_dir)
    raise typer.Exit(result["exit_code"])


@app.command()
def validate(
    path: Annotated[Path, typer.Argument(help="Experiment file to check.")],
) -> None:
    """Check an experiment file, or one of the catalog by name, without starting anything."""
    path = resolve_path(str(path))
    experiment = load_experiment_file(path)
    console.print(f"{path}: valid experiment {experiment.name!r}")


def _terminate(signum: int, frame: object) -> None:
    """Treat SIGTERM as SIGINT, so it ends with exit code 130 wherever it arrives."""
    raise KeyboardInterrupt


def main() -> None:
    """Run the CLI, mapping harness errors and interrupts to documented exit codes."""
    # The runner replaces this handler while an experiment runs and restores it after, so a
    # SIGTERM before or after the run (report writing) still ends with exit code 130.
    signal.signal(signal.SIGTERM, _terminate)
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
