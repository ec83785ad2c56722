"""The tools' one error base and exit statuses. A leaf module: it imports nothing.

Every command exits with one of

* ``EXIT_OK`` (0): done, nothing regressed;
* ``EXIT_REGRESSION`` (1): done, and what was measured regressed (``gate``,
  ``torch-versions``): the status a CI job fails on;
* ``EXIT_USAGE`` (2): bad input, refused before any work (an argument, a revision, a file
  or folder the command was pointed at, a merge check); argparse's own status;
* ``EXIT_FAILURE`` (3): the job could not be done or finished incomplete (a benchmark
  failed, asv or git failed, results missing).

A command raises :class:`UsageError` or :class:`ToolError`; ``lossbench.commands.main``
catches them once and prints one line, never a traceback.
"""

from __future__ import annotations

EXIT_OK, EXIT_REGRESSION, EXIT_USAGE, EXIT_FAILURE = 0, 1, 2, 3


def describe(exc: BaseException) -> str:
    """``TypeName: message``: how a report names an error it keeps instead of raising."""
    return f"{type(exc).__name__}: {exc}"


class ToolError(Exception):
    """The job could not be done; one line. Exit status ``EXIT_FAILURE``."""

    exit_code = EXIT_FAILURE


class UsageError(ToolError):
    """Bad input, refused before any work; one line. Exit status ``EXIT_USAGE``."""

    exit_code = EXIT_USAGE
