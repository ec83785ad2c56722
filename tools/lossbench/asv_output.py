"""What asv prints, read line by line: the one place that knows asv's console lines.

* :class:`OutputFilter` reads ``asv run --show-stderr`` output and keeps what a person needs
  (``asv-quiet``);
* :func:`is_progress`: asv's per-commit progress, environment and search steps (what the
  gate, the study and bisect echo);
* :func:`commit_of`: the commit a ``For <project> commit <hash>`` line starts (history's
  ``commit k of N``); :func:`worth_echoing`: history's console lines;
* :func:`found_commit`: ``asv find``'s answer.


``OutputFilter`` keeps asv's progress and log lines (one per benchmark, environment builds,
...) and the output of every parameter combination that failed or wrote to stderr. Dropped: each
``For parameters: ...`` stanza whose only content is ``asv: skipped: <reason>`` (counted by
reason instead, see ``skip_summary``) and, unless asked for, the result tables (the
published site shows the results). A failure whose output repeats the previous one of the
same benchmark word for word is shown as its parameters and ``(same output as above)``.
"""

from __future__ import annotations

import re
from collections import Counter

_PROGRESS = re.compile(r"^\[\s*\d+(?:\.\d+)?%\] ")
# asv's steps: per commit ("[ 12.50%] · For softmaxloss commit 1a2b3c4d ..."), the
# environment, and asv find's search ("· Testing <---O---->", "Greatest regression").
_STEP = re.compile(
    r"^\[\s*[\d.]+%\] · (For |Building|Installing)|^· (Creating|Discovering)"
    r"|^·+ (Testing|Greatest|For \S+ commit)"
)
_COMMIT = re.compile(r"\bFor \S+ commit ([0-9a-f]{8,40})\b")
_FOUND = re.compile(r"Greatest regression found: ([0-9a-f]{7,40})")
_FAILED = re.compile(r"\sfailed\s*$")
_ERROR = re.compile(r"\b(Error|error|failed)\b")
_STANZA = re.compile(r"^(?:\[\s*\d+(?:\.\d+)?%\] ·+ )?(\s*)For parameters: ")
_TABLE = re.compile(r"^\[\s*\d+(?:\.\d+)?%\] ·+ =+")
_SKIPPED = "asv: skipped: "
_LOG = "·"

# (pattern of a skip message, the reason it is counted under)
_REASONS = [
    (re.compile(r"cuda: torch\.cuda\.is_available\(\) is False"), "no CUDA device"),
    (re.compile(r"is not (?:in softmaxloss\.IMPLEMENTATIONS|registered)"), "not registered"),
    (re.compile(r"does not support|needs float32 or float64|not supported"), "unsupported dtype"),
    (re.compile(r"covered by "), "measured by another benchmark"),
]


def skip_reason(message: str) -> str:
    """The reason a skip is counted under (its message when no known pattern matches)."""
    for pattern, reason in _REASONS:
        if pattern.search(message):
            return reason
    text = re.sub(r"^NotImplementedError\((.*)\)$", r"\1", message.strip()).strip("'\"")
    return text[:60] + ("..." if len(text) > 60 else "")


class OutputFilter:
    """Feed it asv's output one line at a time; it returns the lines to print."""

    def __init__(self, tables: bool = False):
        self.tables = tables
        self.skips: Counter = Counter()
        self.failures = 0
        self._stanza: list[str] | None = None
        self._in_table = False
        self._last_body: tuple[str, ...] | None = None

    def feed(self, line: str) -> list[str]:
        line = line.rstrip("\n")
        if self._in_table:
            if line.strip():
                return [line] if self.tables else []
            self._in_table = False
            return [line] if self.tables else []
        if _STANZA.match(line):
            out = self._flush()
            self._stanza = [line]
            return out
        if self._stanza is not None and not _PROGRESS.match(line) and not line.startswith(_LOG):
            self._stanza.append(line)
            return []
        out = self._flush()
        if _PROGRESS.match(line):
            self._last_body = None
        if _TABLE.match(line):
            self._in_table = True
            return [*out, line] if self.tables else out
        return [*out, line]

    def finish(self) -> list[str]:
        return self._flush()

    def _flush(self) -> list[str]:
        stanza, self._stanza = self._stanza, None
        if stanza is None:
            return []
        body = tuple(s.strip() for s in stanza[1:] if s.strip())
        if len(body) == 1 and body[0].startswith(_SKIPPED):
            self.skips[skip_reason(body[0][len(_SKIPPED) :])] += 1
            return []
        if any("asv: benchmark failed" in s or "Traceback" in s for s in body):
            self.failures += 1
        if body and body == self._last_body:
            indent = _STANZA.match(stanza[0]).group(1)
            return [stanza[0], f"{indent}(same output as above)", ""]
        self._last_body = body
        while stanza and not stanza[-1].strip():
            stanza.pop()
        return [*stanza, ""]

    def skip_summary(self) -> str:
        """One line: how many parameter combinations were skipped, by reason."""
        total = sum(self.skips.values())
        if not total:
            return "no parameter combination skipped"
        parts = ", ".join(f"{n} {reason}" for reason, n in self.skips.most_common())
        return f"{total} parameter combinations skipped: {parts}"


def is_progress(line: str) -> bool:
    """One of asv's steps: a commit started, an environment built, a search step."""
    return _STEP.search(line) is not None


def commit_of(line: str) -> str | None:
    """The (short) hash of a ``For <project> commit <hash>`` line, else None."""
    m = _COMMIT.search(line)
    return m.group(1) if m else None


def found_commit(line: str) -> str | None:
    """The commit of ``asv find``'s ``Greatest regression found: <hash>``, else None."""
    m = _FOUND.search(line)
    return m.group(1) if m else None


def worth_echoing(line: str) -> bool:
    """asv lines worth a console line beside history's progress: its top-level steps, each
    benchmark that failed, and asv's own messages (not indented). Benchmark stderr and
    result tables stay in the log; commit lines are history's own."""
    if not line.strip():
        return False
    text = re.sub(r"^\[\s*[0-9.]+%\]\s*", "", line)
    if _COMMIT.search(text):
        return False
    if text.startswith("· "):
        return True
    if text.startswith("·· ") and _ERROR.search(text):  # e.g. "·· Error running ... pip wheel"
        return True
    if text.startswith("··· ") and _FAILED.search(text):
        return True
    return text == line and not line[0].isspace()
