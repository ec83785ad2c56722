"""What the text of a page may not hold outside its measured blocks.

**A figure** is a measured quantity written in the prose or the tables of a page: a number
(digits, optionally with thousands commas, a decimal part or an exponent, optionally a range
``a-b``) followed by a unit of

* ratio or share, written against the number: ``1.14x``, ``0.39×``, ``5%``;
* time: ``ns``, ``µs``, ``us``, ``ms``, ``s``, ``sec``, ``second(s)``, ``min``,
  ``minute(s)``, ``h``, ``hour(s)`` (``13 min 34 s`` is two figures);
* size: ``B``, ``kB``, ``KB``, ``MB``, ``GB``, ``TB``, ``KiB``, ``MiB``, ``GiB``, ``TiB``;
* error or memory in the docs' units: ``eps``, ``buffer(s)``;
* a test count: ``passed``, ``failed``, ``skipped``;

or an outcome count ``k/n`` (``5/5``). A unit other than the ratio ones may be separated by
one space. "Prose" is markdown text: fenced and indented code, inline code, HTML comments,
link targets and image paths are not; settings a reader types or reads in the code (a
threshold, an environment value) are written as code. So ``128x100`` (a shape), ``float32``,
``3 worker pairs`` and ``--threshold time=1.10`` are not figures; ``1.10x`` in prose is.

Every figure of a page must sit inside a measured block, which is rendered from a record and
checked against it. The same text may not hold a date (``YYYY-MM-DD``) or words that date it
("today", "later that day"): a page says what is true now, its history is in CHANGELOG.md,
and the date of a measurement is in its block's conditions. No page names an internal issue
number (``issue 19``, ``#272``) or a path of the machine that wrote it (``/work/...``,
``/home/...``), nor a commit hash in its prose (the conditions name the commit measured; an
example's output may show its own).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from markdown_it import MarkdownIt

from lossbench.docs import blocks

NUMBER = r"(?<![\w.,/])~?\d[\d,]*(?:\.\d+)?(?:e[+-]?\d+)?(?:\s?-\s?\d[\d,]*(?:\.\d+)?)?"
TIGHT_UNITS = r"x|×|%"
SPACED_UNITS = (
    r"ns|µs|us|ms|s|sec|seconds?|min|minutes?|h|hours?"
    r"|B|kB|KB|MB|GB|TB|KiB|MiB|GiB|TiB|eps|buffers?|passed|failed|skipped"
)
FIGURE = re.compile(
    rf"{NUMBER}(?:(?:{TIGHT_UNITS})|\s?(?:{SPACED_UNITS}))(?![\w])|(?<![\w./-])\d+/\d+(?![\w./])"
)
DATE = re.compile(r"\b(?:19|20)\d\d-[01]\d-[0-3]\d\b")
DIARY = re.compile(
    r"\b(?:today'?s?|yesterday|later that day|the same day|this session|re-checked)\b", re.I
)
ISSUE = re.compile(r"\bissues? #?\d+|(?<![\w&])#\d+\b", re.I)
COMMIT = re.compile(r"(?<![\w/.-])(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}(?![\w/.-])")
PATH = re.compile(
    r"(?:^|[\s`(\"'=])(/(?:work|home|root|Users)/\S*|/tmp/(?!softmaxloss-ext-<uid>)\S+)"
)

_MD = MarkdownIt("commonmark").enable("table")


@dataclass(frozen=True)
class Finding:
    line: int  # 1-based; the first line of the markdown block that holds it
    kind: str  # figure, date, issue, commit, path
    text: str

    def __str__(self) -> str:
        return f"{self.line}: {self.kind} {self.text!r}"


def segments(text: str):
    """``(line, kind, string)`` for the markdown ``text``: kind ``prose`` for the words of a
    paragraph, heading, list item or table cell (code spans cut out), ``code`` for inline
    code, fenced and indented code. HTML (the markers) is neither."""
    for token in _MD.parse(text):
        line = (token.map[0] + 1) if token.map else 0
        if token.type in ("fence", "code_block"):
            yield line, "code", token.content
        elif token.type == "inline":
            words = []
            for child in _flatten(token.children or []):
                if child.type in ("text", "softbreak", "hardbreak"):
                    words.append(child.content if child.type == "text" else " ")
                elif child.type == "code_inline":
                    words.append(" \0 ")
                    yield line, "code", child.content
            yield line, "prose", "".join(words)


def _flatten(children):
    for child in children:
        if child.type == "image":  # its alt text is words of the page too
            yield from _flatten(child.children or [])
        else:
            yield child


def findings(text: str, *, figures: bool = True) -> list[Finding]:
    """What ``text`` (a page) holds outside its measured blocks that it may not."""
    out = []
    for line, kind, s in segments(blocks.blank(text)):
        checks = [("date", DATE), ("issue", ISSUE), ("path", PATH)]
        if kind == "prose":  # a commit in an example's output is the output's
            checks += [("date", DIARY), ("commit", COMMIT)]
            if figures:
                checks.append(("figure", FIGURE))
        for name, pattern in checks:
            for m in pattern.finditer(s):
                out.append(Finding(line, name, (m.group(1) if name == "path" else m[0]).strip()))
    return out


def figures_in(text: str) -> list[str]:
    """The figures of a piece of prose (``FIGURE``'s matches)."""
    return [m[0] for m in FIGURE.finditer(text)]
