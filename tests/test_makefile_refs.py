"""What the Makefile and the docs point to exists.

The Makefile's comments name README sections (``README "Measuring tools"``) and docs pages,
and suggest options for the commands its targets run (``DETECTION_ARGS: e.g. "--runs 2"``);
its recipes pass options to ``python -m lossbench`` commands; README and docs name make
targets and ``python -m lossbench`` command lines. Each must exist: the section as a heading
of README.md, the page as a file, the option in the argparse parser of that command
(``lossbench.commands.build_parser``), the target in the Makefile. Its comments state no
measured figure (``lossbench.docs.prose``): durations and sizes live in the docs, rendered
from their records.
"""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from lossbench.commands import build_parser
from lossbench.docs import pages, prose

ROOT = Path(__file__).resolve().parents[1]
MAKEFILE = (ROOT / "Makefile").read_text()
LOGICAL = MAKEFILE.replace("\\\n", " ")  # continuation lines joined: one recipe line each
README = (ROOT / "README.md").read_text()
DOCS = {p.relative_to(ROOT).as_posix(): p.read_text() for p in pages.pages(ROOT)}


def _subparsers(parser):
    """``{name: parser}`` of a parser's commands, or None."""
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return actions[0].choices if actions else None


COMMANDS = _subparsers(build_parser())


def options_of(words: list[str]) -> tuple[str, set[str]]:
    """The command that ``words`` (after ``python -m lossbench``) names, and its options
    (a command with commands of its own, like ``docs``, takes the next word)."""
    name, parser = words[0], COMMANDS[words[0]]
    rest = words[1:]
    while (sub := _subparsers(parser)) is not None:
        if not rest or rest[0] not in sub:
            return name, set(parser._option_string_actions)
        name, parser, rest = f"{name} {rest[0]}", sub[rest[0]], rest[1:]
    return name, set(parser._option_string_actions)


def comments(text: str) -> list[tuple[int, str]]:
    return [(i, line.split("#", 1)[1]) for i, line in enumerate(text.splitlines(), 1)
            if line.lstrip().startswith("#")]  # fmt: skip


def headings(text: str) -> set[str]:
    return {m[1].strip() for m in re.finditer(r"^#{1,6} (.+)$", text, re.M)}


def targets() -> set[str]:
    found = set(re.findall(r"^([\w.-]+):", LOGICAL, re.M))
    for line in re.findall(r"^\.PHONY:(.*)$", LOGICAL, re.M):
        found |= set(line.split())
    return found


def test_the_readme_sections_the_makefile_names_exist():
    named = [(i, m[1]) for i, c in comments(MAKEFILE) for m in re.finditer(r'README "([^"]+)"', c)]
    assert named, "the Makefile names no README section: the check would check nothing"
    for line, section in named:
        assert section in headings(README), f"Makefile:{line}: README has no section {section!r}"


def test_the_docs_pages_the_makefile_names_exist():
    for line, c in comments(MAKEFILE):
        for page in re.findall(r"\b(?:docs/[\w/.-]+\.md|softmaxloss/[\w/.]+\.py|tools/[\w/.]+)", c):
            assert (ROOT / page.rstrip(".")).exists(), f"Makefile:{line}: no {page}"


def _args_variables() -> dict[str, str]:
    """``{VAR_ARGS: command}`` for every ``$(LB) command ... $(VAR_ARGS)`` recipe."""
    out = {}
    for m in re.finditer(r"\$\(LB\) ([\w-]+)(.*)$", LOGICAL, re.M):
        for var in re.findall(r"\$\((\w+_ARGS)\)", m[2]):
            out[var] = m[1]
    return out


def test_the_options_the_makefile_suggests_exist():
    variables = _args_variables()
    assert "DETECTION_ARGS" in variables and "GATE_ARGS" in variables
    checked = 0
    for line, c in comments(MAKEFILE):
        for var, command in variables.items():
            if var not in c:
                continue
            for quoted in re.findall(rf'{var}(?:=|: e\.g\. )"([^"]*)"', c):
                _, known = options_of([command])
                for option in re.findall(r"--[\w-]+", quoted):
                    checked += 1
                    assert option in known, f"Makefile:{line}: {command} has no option {option}"
    assert checked, "no suggested option found: the check would check nothing"


def test_the_options_the_recipes_pass_exist():
    for m in re.finditer(r"\$\(LB\) ([\w-]+)(.*)$", LOGICAL, re.M):
        args = re.split(r"\|\||&&|;|\|", m[2])[0]  # the command alone, not what follows it
        words = [m[1], *re.findall(r"(?<![\w$(])[a-z][\w-]*", args.split("--")[0])[:1]]
        name, known = options_of(words)
        for option in re.findall(r"(?<![\w-])--[a-z][\w-]*", args):
            assert option in known, f"Makefile: {name} has no option {option}"


def test_the_makefile_comments_state_no_figure():
    for line, c in comments(MAKEFILE):
        code_free = re.sub(r"`[^`]*`|\"[^\"]*\"|'[^']*'", "", c)
        assert not prose.figures_in(code_free), f"Makefile:{line}: {prose.figures_in(code_free)}"


def _code_of(text: str) -> list[str]:
    spans = re.findall(r"```[^\n]*\n(.*?)```", text, re.S)
    spans += re.findall(r"(?<!`)`([^`\n]+)`(?!`)", re.sub(r"```.*?```", "", text, flags=re.S))
    spans += re.findall(r"^(?: {4}|\t)(.+)$", text, re.M)
    return spans


@pytest.mark.parametrize("page", sorted(DOCS))
def test_the_make_targets_the_docs_name_exist(page):
    known = targets()
    for span in _code_of(DOCS[page]):
        for target in re.findall(r"(?<![\w-])make ([a-z][\w-]*)", span):
            assert target in known, f"{page}: `make {target}`: no such target"


@pytest.mark.parametrize("page", sorted(DOCS))
def test_the_lossbench_command_lines_the_docs_show_exist(page):
    for span in _code_of(DOCS[page]):
        for line in span.replace("\\\n", " ").splitlines():
            at = line.find("python -m lossbench ")
            if at < 0:
                continue
            try:
                words = shlex.split(line[at:].split("#")[0], posix=True)[3:]
            except ValueError:
                words = line[at:].split()[3:]
            if not words or words[0].startswith(("-", "<")) or words[0].endswith(":"):
                continue  # `python -m lossbench --help`, `<command>`, an error line
            assert words[0] in COMMANDS, f"{page}: python -m lossbench {words[0]}: no such command"
            if "--" in words:  # `timed ... -- CMD`: CMD's words are not timed's
                words = words[: words.index("--")]
            name, known = options_of(words)
            for option in (w.split("=")[0] for w in words if w.startswith("--")):
                assert option in known, f"{page}: `{line.strip()}`: {name} has no {option}"
