"""``python -m lossbench timed --record PATH -- CMD ...``: run a command, record its wall time.

For figures that are a command's duration or its last lines (how long ``make gate`` takes on
a documentation-only commit, how long the C++ build takes, what ``make test`` counts). CMD
runs with its output passed through; the record (``lossbench.record``) holds the command
line, the wall seconds, the exit status and the last lines of its output (paths relative to
where it ran, no path of this machine). Nothing is
recorded when CMD fails: the command's exit status is returned, and an earlier record stays.
"""

from __future__ import annotations

import collections
import os
import shlex
import sys
import time

from lossbench import record, runner
from lossbench.errors import UsageError
from lossbench.record import Recorder

TAIL = 40


def add_parser(sub):
    p = sub.add_parser(
        "timed",
        help="run a command and record its wall time, exit status and last lines (--record)",
        description=__doc__.splitlines()[0],
    )
    p.add_argument("--record", metavar="PATH", required=True, help="the record to write (JSON)")
    p.add_argument("--cwd", default=None, help="run the command there (default: here)")
    p.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set this variable for the command (repeatable)",
    )
    p.add_argument("--label", default=None, help="how the docs name the command (default: CMD)")
    p.add_argument("cmd", nargs="+", metavar="CMD", help="the command, after --")
    p.set_defaults(func=run)
    return p


def relative(line: str, cwd: str) -> str:
    """``line`` naming no path of this machine: the folders the command ran in as relative
    paths, this interpreter's environment as ``<venv>``."""
    for folder in dict.fromkeys(os.path.realpath(p) for p in (cwd, ".")):
        line = line.replace(folder + os.sep, "").replace(folder, ".")
    if sys.prefix != sys.base_prefix:
        line = line.replace(sys.prefix, "<venv>")
    return line


def run(args) -> int:
    env = dict(os.environ)
    for item in args.env:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise UsageError(f"--env must be NAME=VALUE, got {item!r}")
        env[name] = value
    cwd = args.cwd or "."
    if not os.path.isdir(cwd):
        raise UsageError(f"--cwd {cwd!r} is not a folder")
    recorder = Recorder(args.argv)
    tail: collections.deque[str] = collections.deque(maxlen=TAIL)
    started = time.monotonic()
    try:
        proc = runner.line_process(args.cmd, cwd=cwd, env=env)
    except OSError as exc:
        raise UsageError(f"cannot run {args.cmd[0]!r}: {exc.strerror}") from None
    for line in proc.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        tail.append(relative(line.rstrip("\n"), cwd))
    returncode = proc.wait()
    seconds = time.monotonic() - started
    if returncode != 0:
        print(f"timed: {args.cmd[0]} exited {returncode}; nothing recorded", file=sys.stderr)
        return returncode
    result = {
        "cmd": shlex.join(args.cmd),
        "label": args.label or shlex.join(args.cmd),
        "env": args.env,
        "wall_seconds": round(seconds, 2),
        "returncode": returncode,
        "tail": list(tail),
    }
    if args.cwd:  # the commit there, beside the checkout's the record names
        result["cwd"] = args.cwd
        result["cwd_commit"] = record.commit_state(cwd)["commit"]
    recorder.write(args.record, result)
    print(f"timed: {seconds:.1f} s, recorded in {args.record}", file=sys.stderr)
    return 0
