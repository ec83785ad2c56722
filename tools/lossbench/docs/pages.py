"""The pages of the documentation, rendered from the records and checked against them.

Pages: README.md and every ``docs/**/*.md``. ``render`` rewrites each measured block from the
records in ``docs/measurements/``; ``check`` changes nothing and lists every problem:

* a block whose text is not what its records render now (a record re-measured, or a hand
  edit inside a block), a block naming no renderer or a missing record;
* a figure, a date, an issue number, a commit hash or a machine path in a page's text outside
  its blocks (``lossbench.docs.prose`` defines each);
* a record without its conditions; a measured record that ``make measurements`` would not
  measure again with the same command; an imported record that no longer matches the lines
  it was imported from.

CHANGELOG.md is the project's history: its figures and dates are those of their day, so only
issue numbers and machine paths are checked there.
"""

from __future__ import annotations

import difflib
import shlex
from pathlib import Path

from lossbench import record
from lossbench.docs import blocks, imported, measure, prose, renderers

RECORDS = measure.RECORDS
HISTORY = "CHANGELOG.md"
MEASURED_FIELDS = ("schema", "command", "commit", "date", "machine", "load", "torch", "result")
IMPORTED_FIELDS = ("schema", "imported", "command", "date", "machine", "load", "torch", "result")


def pages(root: Path) -> list[Path]:
    found = [root / "README.md", *sorted((root / "docs").rglob("*.md"))]
    return [p for p in found if p.is_file()]


def load_records(root: Path) -> dict[str, dict]:
    return {path.stem: record.read(path) for path in sorted((root / RECORDS).glob("*.json"))}


def rendered(text: str, records: dict) -> str:
    """``text`` with every block rendered from ``records``; a block that cannot be rendered
    (a record not measured yet) is left as it is, for the check to name."""

    def render_block(block: blocks.Block) -> str:
        try:
            return renderers.render(block.name, records, block.args)
        except renderers.RenderError:
            return None

    return blocks.replace(text, render_block)


def render(root: Path, records: dict | None = None) -> list[Path]:
    """Rewrites every page's blocks from the records (loaded here unless given); returns the
    pages that changed."""
    records = load_records(root) if records is None else records
    changed = []
    for page in pages(root):
        text = page.read_text()
        try:
            new = rendered(text, records)
        except blocks.BlockError:
            continue  # the check names it
        if new != text:
            page.write_text(new)
            changed.append(page)
    return changed


def _first_difference(old: str, new: str) -> str:
    for line in difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=0):
        if line.startswith(("-", "+")) and not line.startswith(("---", "+++")):
            return line[:160]
    return ""


def check_page(name: str, text: str, records: dict) -> list[str]:
    problems = []
    try:
        found = blocks.find(text)
    except blocks.BlockError as exc:
        return [f"{name}: {exc}"]
    for block in found:
        try:
            want = blocks.wrap(block, renderers.render(block.name, records, block.args))
        except renderers.RenderError as exc:
            problems.append(f"{name}:{block.line}: {exc}")
            continue
        have = text[block.start : block.end]
        if have != want:
            problems.append(
                f"{name}:{block.line}: measured:{block.spec} differs from its records "
                f"(first difference: {_first_difference(have, want)!r}); "
                "python -m lossbench docs render rewrites it"
            )
    for f in prose.findings(text):
        where = "outside a measured block" if f.kind == "figure" else "in the text"
        problems.append(f"{name}:{f.line}: {f.kind} {f.text!r} {where}")
    return problems


def check_records(root: Path, records: dict) -> list[str]:
    problems = []
    for name, rec in records.items():
        where = f"{RECORDS}/{name}.json"
        fields = IMPORTED_FIELDS if "imported" in rec else MEASURED_FIELDS
        missing = [f for f in fields if f not in rec]
        if missing:
            problems.append(f"{where}: no {', '.join(missing)}")
            continue
        if "imported" in rec:
            problems += [f"{where}: {p}" for p in imported.verify(rec, root)]
            continue
        m = measure.BY_NAME.get(name)
        if m is None:
            problems.append(f"{where}: no measurement of lossbench.docs.measure makes it")
        elif rec["command"] != shlex.join(m.command) or any(
            rec.get("environment", {}).get(k) != v for k, v in m.env
        ):
            problems.append(
                f"{where}: made by {rec['command']!r}, but make measurements runs "
                f"{measure.command_line(m)!r}"
            )
    return problems


def check(root: Path, records: dict | None = None) -> list[str]:
    """Every problem of the pages and the records (empty: the docs agree with the records);
    the records loaded here unless given."""
    records = load_records(root) if records is None else records
    problems = check_records(root, records)
    for page in pages(root):
        problems += check_page(str(page.relative_to(root)), page.read_text(), records)
    history = root / HISTORY
    if history.is_file():
        for f in prose.findings(history.read_text(), figures=False):
            if f.kind in ("issue", "path"):
                problems.append(f"{HISTORY}:{f.line}: {f.kind} {f.text!r}")
    return problems
