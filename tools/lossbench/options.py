"""What the commands share in checking their options, and their progress lines: the same
message for the same mistake in every command (a ``UsageError``, exit 2, caught once in
``lossbench.commands.main``)."""

from __future__ import annotations

import os
import re
import sys

from lossbench.errors import UsageError


def echo(line: str) -> None:
    """A progress line of a long command, on stderr (stdout keeps its results)."""
    print(line, file=sys.stderr, flush=True)


def add_asv_options(p, machine_default: str, *, repo: bool = False) -> None:
    """The options of a command that runs asv: ``--config``, ``--machine`` (its default
    named in the help), ``--launch-method`` and, with ``repo``, ``--repo``."""
    if repo:
        p.add_argument("--repo", default=".", help="repository root (default: .)")
    where = ", relative to --repo" if repo else ""
    p.add_argument(
        "--config", default="asv.conf.json", help=f"asv config (default: %(default)s{where})"
    )
    p.add_argument("--machine", default=None, help=f"asv machine name (default: {machine_default})")
    # asv's own choices (asv.commands.common_args.add_launch_method; asv is imported lazily)
    p.add_argument("--launch-method", choices=["auto", "spawn", "forkserver"], default=None)


def add_record_option(p) -> None:
    """``--record PATH``: write the measurement record there (``lossbench.record``)."""
    p.add_argument(
        "--record",
        metavar="PATH",
        help="also write a measurement record there: the command line, commit, date, machine, "
        "load, versions and the numbers (JSON; replaces an earlier record)",
    )


def positive_int(value, what: str) -> int:
    """``value`` (an int or its decimal text) as an int >= 1, else UsageError naming ``what``."""
    if isinstance(value, bool):
        raise UsageError(f"{what} must be a positive integer, got {value!r}")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and re.fullmatch(r"\s*\d+\s*", value):
        number = int(value)
    else:
        raise UsageError(f"{what} must be a positive integer, got {value!r}")
    if number < 1:
        raise UsageError(f"{what} must be a positive integer, got {value!r}")
    return number


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
