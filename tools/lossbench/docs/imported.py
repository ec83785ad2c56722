"""Records imported from lines an earlier commit's page holds, for measurements too long to
repeat on every documentation change (the gate's detection study, CI's runs).

``python -m lossbench docs import NAME --source COMMIT:PATH --lines A-B ...`` copies lines A
to B of PATH as committed in COMMIT into ``docs/measurements/NAME.json``, verbatim, and
with ``--table`` parses the markdown table they hold; ``--value KEY=TEXT`` names a figure
of those lines (TEXT must occur in them). The conditions the page gave (date, machine,
load, torch) are stated with the import. Nothing is typed by hand that the lines do not
hold, and ``verify`` checks it again against git whenever the commit is at hand.
"""

from __future__ import annotations

import shlex

from lossbench import runner
from lossbench.errors import ToolError, UsageError
from lossbench.record import PROGRAM, SCHEMA


def source_lines(repo, commit: str, path: str, first: int, last: int) -> str:
    """Lines ``first``..``last`` (1-based, inclusive) of ``path`` as committed in ``commit``."""
    text = runner.git(repo, "show", f"{commit}:{path}")
    lines = text.split("\n")
    if not 1 <= first <= last <= len(lines):
        raise UsageError(f"--lines {first}-{last}: {path} at {commit} has {len(lines)} lines")
    return "\n".join(lines[first - 1 : last])


def _cells(line: str) -> list[str]:
    body = line.strip()
    if not (body.startswith("|") and body.endswith("|")):
        raise UsageError(f"not a markdown table row: {line!r}")
    return [c.strip() for c in body[1:-1].split("|")]


def parse_table(text: str) -> dict:
    """The first markdown table of ``text``: ``{"header": [...], "rows": [[...], ...]}``."""
    lines = [s for s in text.split("\n") if s.strip().startswith("|")]
    if len(lines) < 2 or not set(lines[1].replace("|", "").strip()) <= set("-: "):
        raise UsageError("the lines hold no markdown table (a header, then |---|)")
    header = _cells(lines[0])
    rows = [_cells(s) for s in lines[2:]]
    bad = [r for r in rows if len(r) != len(header)]
    if bad:
        raise UsageError(f"a row has {len(bad[0])} cells, the header {len(header)}")
    return {"header": header, "rows": rows}


def make(args, repo) -> dict:
    """The imported record of the ``docs import`` command's ``args``."""
    commit_arg, sep, path = args.source.partition(":")
    if not sep or not path:
        raise UsageError(f"--source must be COMMIT:PATH, got {args.source!r}")
    commit = runner.resolve(repo, commit_arg, "--source commit")
    first, sep, last = args.lines.partition("-")
    if not (sep and first.isdigit() and last.isdigit()):
        raise UsageError(f"--lines must be A-B, got {args.lines!r}")
    text = source_lines(repo, commit, path, int(first), int(last))
    result: dict = {}
    if args.table:
        result.update(parse_table(text))
    values = {}
    for item in args.value or []:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise UsageError(f"--value must be KEY=TEXT, got {item!r}")
        if value not in text:
            raise UsageError(f"--value {key}: {value!r} is not in those lines")
        values[key] = value
    if values:
        result["values"] = values
    if not result:
        raise UsageError("give --table or --value: what of those lines is the record")
    return {
        "schema": SCHEMA,
        "imported": {
            "commit": commit,
            "path": path,
            "lines": [int(first), int(last)],
            "text": text,
            "by": f"{PROGRAM} {shlex.join(args.argv)}",
        },
        "command": args.command_run,
        "date": args.date,
        "machine": {"cpu": args.cpu, "vector_isa": args.isa, "cores": args.cores},
        "load": args.load,
        "torch": args.torch,
        "note": args.note,
        "result": result,
    }


def verify(record: dict, repo) -> list[str]:
    """What of an imported record no longer matches its source (empty: all of it does, or the
    source commit is not in this clone: nothing to check against)."""
    src = record["imported"]
    try:
        runner.git(repo, "cat-file", "-e", f"{src['commit']}^{{commit}}")
    except ToolError:
        return []
    problems = []
    first, last = src["lines"]
    try:
        text = source_lines(repo, src["commit"], src["path"], first, last)
    except (ToolError, UsageError) as exc:
        return [str(exc)]
    if text != src["text"]:
        problems.append(f"its text is not lines {first}-{last} of {src['path']} at {src['commit']}")
    result = record["result"]
    if "header" in result:
        try:
            if parse_table(src["text"]) != {"header": result["header"], "rows": result["rows"]}:
                problems.append("its table is not the table of its text")
        except UsageError as exc:
            problems.append(str(exc))
    for key, value in result.get("values", {}).items():
        if value not in src["text"]:
            problems.append(f"value {key} {value!r} is not in its text")
    return problems
