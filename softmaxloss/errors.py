"""The package's exception types. A leaf module: it imports nothing of the package."""

from __future__ import annotations


class UsageError(Exception):
    """A bad command-line argument found after parsing; printed as one line, exit status 2."""


class UnsupportedDtypeError(TypeError):
    """An implementation does not support the logits' dtype (e.g. the naive pair on bf16).

    Benchmarks skip exactly this error; any other ``TypeError`` is a failure.
    """


class CommandError(Exception):
    """A command cannot do its job (no results yet, an unreadable file): printed as one line,
    exit status 1."""
