"""``python -m lossbench asv-quiet -- <asv command>``: run asv, print what a person needs.

Runs the command (its stderr merged into its stdout), prints asv's progress, every failure
with its output, and at the end one line counting the skipped parameter combinations by
reason (``lossbench.asv_output``). Exits with the command's own exit status.
"""

from __future__ import annotations

import os
import sys

from lossbench import runner
from lossbench.asv_output import OutputFilter
from lossbench.errors import ToolError, UsageError


def add_parser(sub):
    p = sub.add_parser(
        "asv-quiet",
        help="run an asv command; print progress, failures and one line of skip counts",
        description=__doc__.splitlines()[0],
    )
    p.add_argument("--tables", action="store_true", help="keep asv's result tables too")
    p.add_argument("cmd", nargs="+", help="the command, after --")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        raise UsageError("no command given (usage: asv-quiet -- python -m asv run ...)")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    filt = OutputFilter(tables=args.tables)
    try:
        proc = runner.line_process(cmd, None, env)
    except OSError as exc:
        raise ToolError(f"cannot run {cmd[0]!r}: {exc.strerror}") from None
    with proc:
        for line in proc.stdout:
            for out in filt.feed(line):
                print(out, flush=True)
    for out in filt.finish():
        print(out)
    print(f"asv-quiet: {filt.skip_summary()}; exit status {proc.returncode}", flush=True)
    sys.stdout.flush()
    return proc.returncode
