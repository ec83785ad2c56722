"""``python -m lossbench docs render|measure|import``: the docs' measured figures.

    python -m lossbench docs render           # rewrite the measured blocks from the records
    python -m lossbench docs render --check   # change nothing; exit 1 on any problem
    python -m lossbench docs measure          # re-run every record's measuring command, render
    python -m lossbench docs import NAME ...  # a record from lines an earlier commit holds

The records are ``docs/measurements/*.json``; ``lossbench.docs`` says what each part does.
"""

from __future__ import annotations

import sys
from pathlib import Path

from lossbench import record, runner
from lossbench.docs import imported, measure, pages
from lossbench.errors import EXIT_FAILURE, EXIT_OK, EXIT_REGRESSION, UsageError
from lossbench.options import echo


def add_parser(sub):
    p = sub.add_parser(
        "docs",
        help="render the docs' measured tables from docs/measurements/, check them, re-measure",
        description=__doc__.splitlines()[0],
    )
    docs = p.add_subparsers(dest="docs_command", required=True, metavar="<what>")

    r = docs.add_parser("render", help="rewrite every measured block from its records")
    r.add_argument(
        "--check",
        action="store_true",
        help="change nothing: list the blocks that differ from their records, and the figures, "
        "dates, issue numbers and paths outside them; exit 1 if any",
    )
    r.set_defaults(func=run_render)

    m = docs.add_parser("measure", help="re-run the measuring command of every record, render")
    m.add_argument("--only", help="comma-separated records (default: every one)")
    m.add_argument("--list", action="store_true", help="print the commands, run nothing")
    m.set_defaults(func=run_measure)

    i = docs.add_parser("import", help="a record from lines of a page as an earlier commit has it")
    i.add_argument("name", help="the record: docs/measurements/NAME.json (a new file)")
    i.add_argument("--source", required=True, metavar="COMMIT:PATH")
    i.add_argument("--lines", required=True, metavar="A-B", help="1-based, inclusive")
    i.add_argument("--table", action="store_true", help="the lines hold a markdown table")
    i.add_argument("--value", action="append", metavar="KEY=TEXT", help="a figure of the lines")
    i.add_argument("--command", dest="command_run", required=True, help="what measured it")
    i.add_argument("--date", required=True, help="when, as the page says")
    i.add_argument("--cpu", default=None, help="the CPU, as the page says (default: not recorded)")
    i.add_argument("--isa", default=None, help="its vector instruction set, as the page says")
    i.add_argument("--cores", type=int, default=None)
    i.add_argument("--load", required=True, help="what else ran, as the page says")
    i.add_argument("--torch", required=True, help="the torch version")
    i.add_argument("--note", default="", help="anything else the page says of the run")
    i.set_defaults(func=run_import)
    return p


def _root() -> Path:
    root = runner.repo_root()
    if not (root / "docs").is_dir():
        raise UsageError(f"{root} has no docs/ folder")
    return root


def run_render(args) -> int:
    root = _root()
    if args.check:
        problems = pages.check(root)
        for line in problems:
            print(line)
        if problems:
            print(f"docs: {len(problems)} problems", file=sys.stderr)
            return EXIT_REGRESSION
        print(f"docs: {len(pages.pages(root))} pages agree with {pages.RECORDS}")
        return EXIT_OK
    records = pages.load_records(root)
    for page in pages.render(root, records):
        print(f"docs: rendered {page.relative_to(root)}")
    problems = pages.check(root, records)
    for line in problems:
        print(line)
    return EXIT_REGRESSION if problems else EXIT_OK


def run_measure(args) -> int:
    root = _root()
    chosen = measure.chosen(args.only)
    if args.list:
        for m in chosen:
            print(measure.command_line(m))
        return EXIT_OK
    failed = measure.run(chosen, root, after_each=lambda: pages.render(root))
    if failed:
        echo(f"measurements: failed: {', '.join(failed)} (their records are unchanged)")
        return EXIT_FAILURE
    return EXIT_OK


def run_import(args) -> int:
    root = _root()
    path = root / measure.RECORDS / f"{args.name}.json"
    if path.exists():
        raise UsageError(f"{path.relative_to(root)} exists; an import never replaces a record")
    record.write(path, imported.make(args, root))
    print(f"docs: imported {path.relative_to(root)}")
    return EXIT_OK
