"""``python -m lossbench <command>``: the measuring tools' command line.

Each command lives in its own module exposing ``add_parser(subparsers)``; the parser it adds
sets ``func`` to the function that runs it and returns its exit status. Errors are caught
once, here: a ``ToolError`` (``UsageError`` included) ends in one line on stderr and its
exit status (``lossbench.errors``: 2 bad input, 3 the job could not be done), never a
traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from lossbench.errors import EXIT_OK, EXIT_USAGE, ToolError

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
    try:
        return int(args.func(args) or EXIT_OK)
    except ToolError as exc:
        print(f"{parser.prog} {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # `... | head`: the reader left, nothing to report
        sys.stderr.close()
        return EXIT_OK
