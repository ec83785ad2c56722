"""``python -m softmaxloss <command>``: the package's command line.

Each command lives in its own module exposing ``add_parser(subparsers)``; the parser it adds
sets ``func`` to the function that runs it. Bad arguments (``UsageError``) end in one line on
stderr and exit status 2, a command that cannot do its job (``CommandError``) in one line and
exit status 1; never a traceback.
"""

from __future__ import annotations

import argparse
import sys

from softmaxloss.commands import (
    asv_quiet,
    bisect,
    build_ext,
    compare,
    depth,
    detection,
    gate,
    history,
    machine,
    overhead,
    ratios,
    site,
    torch_versions,
)
from softmaxloss.errors import CommandError, UsageError

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
    build_ext,
)


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse prints usage + message; we print one line
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m softmaxloss",
        description="softmaxloss: softmax cross-entropy with hand-written gradients; "
        "its experiments and the helpers of its asv suite.",
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
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(f"{parser.prog} {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except CommandError as exc:
        print(f"{parser.prog} {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `... | head`: the reader left, nothing to report
        sys.stderr.close()
        return 0
