"""``python -m lossbench <command>``: the measuring tools' command line.

Each command lives in its own module exposing ``add_parser(subparsers)``; the parser it adds
sets ``func`` to the function that runs it and returns its exit status. Errors are caught
once, here, and end in one line on stderr and a status of their own, never a traceback and
never a pass:

* ``ToolError`` (``UsageError`` included): its message, its status (``lossbench.errors``:
  2 bad input, 3 the job could not be done);
* Ctrl-C: "interrupted", 3 (what was stored stays readable: every result file is written
  whole or not at all);
* ``BrokenPipeError`` from our own stdout (``... | head``: the reader left): 3, quietly: the
  command did not finish. A broken pipe anywhere else (a worker that died) is a fault: 3;
* any other exception (a bug of the tools): its type and message, 3, the traceback in a
  file named on that line.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
import traceback

from lossbench.errors import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, ToolError

# command -> the module that adds it. Only the module of the command run is imported (the
# experiments import torch, ~2 s; the asv and git helpers need none of it); --help and a
# bad command import them all.
COMMANDS = {
    "compare": "compare",
    "ratios": "ratios",
    "overhead": "overhead",
    "paired": "paired",
    "depth": "depth",
    "gate": "gate",
    "detection-power": "detection",
    "bisect": "bisect",
    "machine": "machine",
    "site-summary": "site",
    "offline-site": "site",
    "torch-versions": "torch_versions",
    "asv-quiet": "asv_quiet",
    "history": "history",
    "backfill-plan": "history",
    "backfill-local": "history",
    "merge-results": "history",
    "regressions": "regressions",
    "timed": "timed",
    "docs": "docs",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse prints usage + message; we print one line
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or of the command ``only`` alone."""
    parser = _Parser(
        prog="python -m lossbench",
        description="lossbench: the measuring tools of softmaxloss (asv suite, regression "
        "gate, history, site, experiments). Exit status: 0 ok, 1 a regression, 2 bad input, "
        "3 the job could not be done.",
    )
    sub = parser.add_subparsers(
        dest="command", required=True, parser_class=_Parser, metavar="<command>"
    )
    modules = [COMMANDS[only]] if only in COMMANDS else dict.fromkeys(COMMANDS.values())
    for name in modules:
        importlib.import_module(f"lossbench.commands.{name}").add_parser(sub)
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    first = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(only=first)
    args = parser.parse_args(argv)
    args.argv = argv  # the command line as given: what a measurement record names
    where = f"{parser.prog} {args.command}"
    try:
        return int(args.func(args) or EXIT_OK)
    except ToolError as exc:
        print(f"{where}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{where}: interrupted: nothing decided (stored results are intact)", file=sys.stderr)
        return EXIT_FAILURE
    except BrokenPipeError as exc:
        if _stdout_gone():  # `... | head`: the reader left before the end
            return EXIT_FAILURE
        print(f"{where}: error: a pipe broke ({exc}): a process it talked to died", file=sys.stderr)
        return EXIT_FAILURE
    except Exception as exc:  # a bug: one line, and the traceback kept for its report
        kept = _keep_traceback()
        print(f"{where}: internal error: {type(exc).__name__}: {exc} (traceback: {kept})",
              file=sys.stderr)  # fmt: skip
        return EXIT_FAILURE


def _stdout_gone() -> bool:
    """Whether our stdout's reader has left (its flush breaks); stdout then goes to
    /dev/null, so that Python's own flush at exit cannot break again."""
    try:
        sys.stdout.flush()
        return False
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return True


def _keep_traceback() -> str:
    fd, path = tempfile.mkstemp(prefix="lossbench-traceback-", suffix=".txt")
    with os.fdopen(fd, "w") as f:
        traceback.print_exc(file=f)
    return path
