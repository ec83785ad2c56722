"""``python -m softmaxloss <command>``: the package's command line.

Each command lives in its own module exposing ``add_parser(subparsers)``; the parser it adds
sets ``func`` to the function that runs it. Bad arguments end in one line on stderr and a
non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import sys


class UsageError(Exception):
    """A bad argument found after parsing; printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse prints usage + message; we print one line
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    from softmaxloss import depth, report
    from softmaxloss.commands import bisect, detection, gate

    parser = _Parser(prog="python -m softmaxloss", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    report.add_parser(sub)
    depth.add_parser(sub)
    gate.add_parser(sub)
    detection.add_parser(sub)
    bisect.add_parser(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(f"{parser.prog} {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `... | head`: the reader left, nothing to report
        sys.stderr.close()
        return 0
