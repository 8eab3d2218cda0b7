"""The one exception family users see, and the exit codes it maps to.

0 success; 1 an operation failed (AWS refused, a wait timed out); 2 bad input or configuration,
raised before anything is created. The CLI prints ``message`` (and ``hint``) on one line each and
exits with ``exit_code``; a traceback is shown only with ``--debug``.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class AwslabError(Exception):
    """An error meant for the user: a message, an optional hint, an exit code."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(AwslabError):
    """Bad input or configuration; nothing has been created."""

    exit_code = EXIT_USAGE


class LabError(UsageError):
    """A lab file or a ``--set`` override is invalid. Names the file and the key."""

    def __init__(self, source: str, key: str | None, problem: str, hint: str | None = None) -> None:
        where = f"{source}: {key}" if key else source
        super().__init__(f"{where}: {problem}", hint)
        self.source = source
        self.key = key


class OperationError(AwslabError):
    """An AWS operation failed or did not finish."""


class Interrupted(AwslabError):
    """Ctrl-C: the message says what was done and what was left part-way (exit 130)."""

    exit_code = EXIT_INTERRUPTED


class WaitTimeout(OperationError):
    """A bounded wait gave up; the message says what it waited for and what it last saw."""


class OwnershipError(OperationError):
    """A resource with awslab's name exists but is not tagged as this stack's: awslab won't touch it."""
