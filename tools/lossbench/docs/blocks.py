"""The measured blocks of a page.

A block is everything between ``<!-- measured:NAME [KEY=VALUE ...] -->`` and the next
``<!-- /measured -->``. NAME picks a renderer (``lossbench.docs.renderers``), the KEY=VALUE
pairs are its arguments. A renderer returns either one line (an inline figure: the block sits
inside a sentence, ``<!-- measured:x -->1.8 s<!-- /measured -->``) or several lines (a table
with its conditions: the markers then stand on lines of their own).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

OPEN = "<!-- measured:"
CLOSE = "<!-- /measured -->"
BLOCK = re.compile(r"<!-- measured:(?P<spec>[^>]*?) -->(?P<body>.*?)<!-- /measured -->", re.S)
ARG = re.compile(r"(?P<key>[\w-]+)=(?P<value>\S+)")


class BlockError(ValueError):
    """A page's markers do not parse (an unclosed block, a bad argument)."""


@dataclass(frozen=True)
class Block:
    name: str
    args: dict[str, str]
    start: int  # offsets into the page: the whole block, markers included
    end: int
    body: str
    line: int  # 1-based line of the opening marker

    @property
    def spec(self) -> str:
        return " ".join([self.name, *(f"{k}={v}" for k, v in self.args.items())])


def parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    name, *rest = spec.split()
    args = {}
    for item in rest:
        m = ARG.fullmatch(item)
        if not m:
            raise BlockError(f"measured:{spec}: argument {item!r} is not KEY=VALUE")
        args[m["key"]] = m["value"]
    return name, args


def find(text: str) -> list[Block]:
    """Every block of ``text``, in order; BlockError on markers that do not pair up."""
    blocks = []
    for m in BLOCK.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        if OPEN in m["body"]:
            raise BlockError(f"line {line}: measured:{m['spec']} is not closed before the next")
        spec = m["spec"].strip()
        if not spec:
            raise BlockError(f"line {line}: a measured block without a name")
        name, args = parse_spec(spec)
        blocks.append(Block(name, args, m.start(), m.end(), m["body"], line))
    opened = text.count(OPEN)
    if opened != len(blocks) or text.count(CLOSE) != len(blocks):
        raise BlockError(
            f"{opened} opening and {text.count(CLOSE)} closing markers, {len(blocks)} blocks"
        )
    return blocks


def wrap(block: Block, content: str) -> str:
    """The block with ``content`` between its markers: inline for one line, else on lines of
    their own."""
    opening = f"{OPEN}{block.spec} -->"
    if "\n" in content.strip("\n"):
        return f"{opening}\n{content.strip(chr(10))}\n{CLOSE}"
    return f"{opening}{content.strip()}{CLOSE}"


def replace(text: str, render) -> str:
    """``text`` with every block's body replaced by ``render(block)`` (None: the block is
    kept as it is)."""
    out, pos = [], 0
    for block in find(text):
        content = render(block)
        kept = text[block.start : block.end]
        out += [text[pos : block.start], kept if content is None else wrap(block, content)]
        pos = block.end
    return "".join(out) + text[pos:]


def blank(text: str) -> str:
    """``text`` with every block's body emptied (its lines kept as empty lines), for the
    checks of the text around them."""
    out, pos = [], 0
    for block in find(text):
        opening = f"{OPEN}{block.spec} -->"
        out += [text[pos : block.start], opening, "\n" * block.body.count("\n"), CLOSE]
        pos = block.end
    return "".join(out) + text[pos:]
