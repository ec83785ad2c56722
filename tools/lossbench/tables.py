"""The one table formatter of the commands: text through ``rich``, or markdown.

Every command that prints a table (gate, study, compare, ratios, overhead, depth,
torch-versions) builds a header and rows of strings and hands them here, so that the text
and the markdown of one table always agree.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Sequence


def render(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    markdown: bool = False,
    title: str | None = None,
    right: Sequence[int] = (),
) -> str:
    """The table as text (``rich``, no colour, as wide as it needs) or as markdown;
    ``right``: the columns aligned right (numbers)."""
    if markdown:
        lines = [f"**{title}**", ""] if title else []
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
        return "\n".join(lines)
    from rich import box
    from rich.console import Console
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for i, name in enumerate(header):
        table.add_column(name, justify="right" if i in right else "left", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    out = io.StringIO()
    Console(file=out, width=10_000, no_color=True, highlight=False).print(table)
    text = "\n".join(line.rstrip() for line in out.getvalue().splitlines()).strip("\n")
    text = textwrap.dedent(text)  # rich pads the left edge
    return f"{title}\n{text}" if title else text
