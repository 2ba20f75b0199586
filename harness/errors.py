"""The exception base of the harness and the exit code of each failure kind."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Documented exit codes of the `harness` command."""

    OK = 0
    HYPOTHESIS_FAILED = 1
    INVALID_INPUT = 2
    TARGET_FAILED = 3
    ROLLBACK_FAILED = 4
    INTERRUPTED = 130


class HarnessError(Exception):
    """A failure the user can act on; its message is one line."""

    exit_code: ExitCode = ExitCode.HYPOTHESIS_FAILED


class InvalidInput(HarnessError):
    """An experiment file, stack file or flag is invalid."""

    exit_code = ExitCode.INVALID_INPUT


class TargetStartError(HarnessError):
    """A service of the target did not come up."""

    exit_code = ExitCode.TARGET_FAILED


class RollbackFailed(HarnessError):
    """A fault could not be removed."""

    exit_code = ExitCode.ROLLBACK_FAILED


class FaultError(HarnessError):
    """A fault could not be applied or did not take effect."""

    exit_code = ExitCode.HYPOTHESIS_FAILED
