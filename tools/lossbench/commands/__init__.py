"""``python -m lossbench <command>``: the measuring tools' command line.

Each command lives in its own module exposing ``add_parser(subparsers)``; the parser it adds
sets ``func`` to the function that runs it and returns its exit status. Errors are caught
once, here: a ``ToolError`` (``UsageError`` included) ends in one line on stderr and its
exit status (``lossbench.errors``: 2 bad input, 3 the job could not be done), never a
traceback.
"""

from __future__ import annotations

import argparse
import sys

from lossbench.commands import (
    asv_quiet,
    bisect,
    compare,
    depth,
    detection,
    gate,
    history,
    machine,
    overhead,
    paired,
    ratios,
    regressions,
    site,
    torch_versions,
)
from lossbench.errors import EXIT_OK, EXIT_USAGE, ToolError

COMMANDS = (
    compare,
    ratios,
    overhead,
    depth,
    gate,
    detection,
    bisect,
    machine,
    site,
    torch_versions,
    asv_quiet,
    history,
    regressions,
    paired,
)


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse prints usage + message; we print one line
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m lossbench",
        description="lossbench: the measuring tools of softmaxloss (asv suite, regression "
        "gate, history, site, experiments). Exit status: 0 ok, 1 a regression, 2 bad input, "
        "3 the job could not be done.",
    )
    sub = parser.add_subparsers(
        dest="command", required=True, parser_class=_Parser, metavar="<command>"
    )
    for module in COMMANDS:
        module.add_parser(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or EXIT_OK)
    except ToolError as exc:
        print(f"{parser.prog} {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # `... | head`: the reader left, nothing to report
        sys.stderr.close()
        return EXIT_OK
