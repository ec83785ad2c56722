"""What the commands share in checking their options, and their progress lines: the same
message for the same mistake in every command (a ``UsageError``, exit 2, caught once in
``lossbench.commands.main``)."""

from __future__ import annotations

import os
import sys

from lossbench.errors import UsageError


def echo(line: str) -> None:
    """A progress line of a long command, on stderr (stdout keeps its results)."""
    print(line, file=sys.stderr, flush=True)


def require_positive(option: str, value) -> None:
    """UsageError unless ``value`` (of ``option``) is a positive integer."""
    if value <= 0:
        raise UsageError(f"{option} must be a positive integer, got {value}")


def parse_choices(option: str, text: str, choices) -> list[str]:
    """A comma-separated list of ``choices`` (repeats dropped), or UsageError."""
    items = [s.strip() for s in str(text).split(",")]
    if any(s not in choices for s in items):
        raise UsageError(
            f"{option} must be a comma-separated list from {tuple(choices)}, got {text!r}"
        )
    return list(dict.fromkeys(items))


def refuse_existing(option: str, path) -> None:
    """Result files are never overwritten: UsageError when ``path`` exists."""
    if path is not None and os.path.exists(path):
        raise UsageError(f"{option} {str(path)!r} exists; give a new file name")
