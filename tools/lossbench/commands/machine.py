"""``python -m lossbench machine name|launch``: asv's machine name / launch options here."""

from __future__ import annotations

from lossbench import machine


def add_parser(sub):
    p = sub.add_parser(
        "machine",
        help="print asv's machine name (name) or extra asv run options (launch) for this host",
        description=machine.__doc__.splitlines()[0],
    )
    p.add_argument("what", nargs="?", choices=["name", "launch"], default="name")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    print(machine.machine_name() if args.what == "name" else machine.launch_args())
    return 0
