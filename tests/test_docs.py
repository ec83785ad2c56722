"""The docs' figures come from the measurement records in docs/measurements/.

``lossbench.docs``: every measured block of README.md and docs/ is what its records render,
no page states a figure (``lossbench.docs.prose`` defines one), a date, an issue number, a
commit or a machine path outside its blocks, every record states its conditions, and every
measured record is one ``make measurements`` makes again. Then the check itself: it fails
when one number of a record changes, when a figure is typed outside a block, and when an
imported record no longer matches the lines it came from.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from gitrepo import git

from lossbench.docs import blocks, imported, measure, pages, prose, renderers

ROOT = Path(__file__).resolve().parents[1]


def test_the_docs_agree_with_their_records():
    problems = pages.check(ROOT)
    assert not problems, "\n".join(problems)


def _copy_docs(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(ROOT / "docs", root / "docs")
    shutil.copy(ROOT / "README.md", root / "README.md")
    return root


def _edit_record(root: Path, name: str, edit) -> None:
    path = root / "docs" / "measurements" / f"{name}.json"
    record = json.loads(path.read_text())
    edit(record)
    path.write_text(json.dumps(record))


def _blocks_using(root: Path, name: str) -> list[str]:
    return [p for p in pages.check(root) if f"measured:{name}" in p]


def test_one_changed_number_in_a_measured_record_fails_the_check(tmp_path):
    root = _copy_docs(tmp_path)
    assert not [p for p in pages.check(root) if "differs" in p]

    def slower_torch(record):
        case = record["result"][0]
        case["seconds"]["torch"]["total"] *= 1.5

    _edit_record(root, "ratios", slower_torch)
    problems = pages.check(root)
    assert any("README.md" in p and "measured:headline differs" in p for p in problems), problems
    assert any("speed-memory.md" in p and "measured:ratios" in p for p in problems), problems


def test_one_changed_number_in_an_imported_record_fails_the_check(tmp_path):
    root = _copy_docs(tmp_path)

    def one_more_false_alarm(record):
        header, rows = record["result"]["header"], record["result"]["rows"]
        noop = next(r for r in rows if r[0].startswith("no-op"))
        noop[header.index("gate (any)")] = "1/10"

    _edit_record(root, "gate-study-quiet", one_more_false_alarm)
    problems = pages.check(root)
    assert any("measured:gate-noops differs" in p for p in problems), problems
    assert any("measured:gate-study record=gate-study-quiet differs" in p for p in problems)


def test_render_rewrites_what_differs_and_then_the_check_passes(tmp_path):
    root = _copy_docs(tmp_path)
    readme = root / "README.md"
    text = readme.read_text()
    (block,) = [b for b in blocks.find(text) if b.name == "headline"]
    readme.write_text(
        text[: block.start] + blocks.wrap(block, "| a |\n|---|\n| b |") + text[block.end :]
    )
    assert _blocks_using(root, "headline")
    assert pages.render(root) == [readme]
    assert readme.read_text() == text
    assert not _blocks_using(root, "headline")


def test_a_figure_typed_outside_a_block_fails_the_check(tmp_path):
    root = _copy_docs(tmp_path)
    readme = root / "README.md"
    readme.write_text(readme.read_text() + "\nThe fused loss is 3.05x faster here.\n")
    problems = pages.check(root)
    assert any("figure '3.05x' outside a measured block" in p for p in problems), problems


@pytest.mark.parametrize(
    ("text", "figures"),
    [
        (
            "fused is 2.77x faster, 13.9 ms, 41 MB, 0.58 eps",
            ["2.77x", "13.9 ms", "41 MB", "0.58 eps"],
        ),
        (
            "in 13 min 34 s; 3,664 passed, 52 skipped",
            ["13 min", "34 s", "3,664 passed", "52 skipped"],
        ),
        (
            "caught 5/5, a range 0.39x-0.41x, ~4 MiB, 1.5-2 GB",
            ["5/5", "0.39x", "0.41x", "~4 MiB", "1.5-2 GB"],
        ),
        ("3 seconds, 2 hours, 7 buffers, 12%", ["3 seconds", "2 hours", "7 buffers", "12%"]),
        ("shapes 128x100 and 3200x3200, float32, 3 worker pairs, 16 pairs x 3", []),
        ("x 2 is not, nor is d+1, nor 1e-3 alone, nor version 2.13.0", []),
    ],
)
def test_what_counts_as_a_figure(text, figures):
    assert prose.figures_in(text) == figures


def test_code_html_and_links_hold_no_figures():
    page = (
        "Set `--threshold time=1.10x` or see [a page](http://example.com/3s).\n\n"
        "```\nmake gate  # 1.8 s\n```\n\n"
        "    indented 4 s\n\n"
        "<!-- measured:x -->1.8 s<!-- /measured -->\n"
    )
    assert [f for f in prose.findings(page) if f.kind == "figure"] == []


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("Measured on 2026-12-03.", "date"),
        ("later that day it ran", "date"),
        ("as issue 19 asked", "issue"),
        ("unlike Liger-Kernel's #272", "issue"),
        ("since commit 9dfbc03", "commit"),
        ("cloned from /work/main", "path"),
        ("see `/home/me/x`", "path"),
    ],
)
def test_dates_issues_commits_and_paths_are_findings(text, kind):
    assert [f.kind for f in prose.findings(text)] == [kind]


def test_the_documented_cache_folder_is_no_machine_path():
    assert prose.findings("the cache, `/tmp/softmaxloss-ext-<uid>` by default") == []


def test_blocks_render_inline_or_on_lines_of_their_own():
    text = "a <!-- measured:wall record=x -->1 s<!-- /measured --> b\n"
    (block,) = blocks.find(text)
    assert (block.name, block.args, block.line) == ("wall", {"record": "x"}, 1)
    assert blocks.wrap(block, "2 s") == "<!-- measured:wall record=x -->2 s<!-- /measured -->"
    table = blocks.wrap(block, "Conditions: c\n\n| a |")
    assert table.splitlines()[0] == "<!-- measured:wall record=x -->"
    assert table.splitlines()[-1] == "<!-- /measured -->"
    page = "x\n" + table + "\ny"
    blanked = blocks.blank(page)
    assert blanked.count("\n") == page.count("\n") and "Conditions" not in blanked
    assert blanked.startswith("x\n<!-- measured:wall record=x -->\n")


@pytest.mark.parametrize(
    "text",
    [
        "<!-- measured:a -->x",
        "<!-- measured:a -->x<!-- measured:b -->y<!-- /measured -->",
        "<!-- measured: -->x<!-- /measured -->",
        "<!-- measured:a b -->x<!-- /measured -->",
    ],
)
def test_markers_that_do_not_pair_up_are_errors(text):
    with pytest.raises(blocks.BlockError):
        blocks.find(text)


def test_an_unknown_renderer_or_a_missing_record_is_named():
    with pytest.raises(renderers.RenderError, match="no renderer 'nope'"):
        renderers.render("nope", {}, {})
    with pytest.raises(renderers.RenderError, match="no record docs/measurements/ratios.json"):
        renderers.render("headline", {}, {})


def test_every_measured_record_is_remade_by_make_measurements():
    records = pages.load_records(ROOT)
    measured = {n for n, r in records.items() if "imported" not in r}
    assert measured <= set(measure.BY_NAME), measured - set(measure.BY_NAME)
    assert pages.check_records(ROOT, records) == []
    make = subprocess.run(
        ["make", "-n", "measurements", "PYTHON=python"], cwd=ROOT, capture_output=True, text=True
    )
    assert make.returncode == 0, make.stderr
    assert "-m lossbench docs measure" in make.stdout


def test_every_record_states_its_conditions():
    for name, record in pages.load_records(ROOT).items():
        if "imported" in record:
            assert record["date"] and record["load"] and record["torch"], name
            continue
        machine = record["machine"]
        assert machine["cpu"] and machine["flags"] and machine["cores"], name
        assert record["load"]["before"] and record["commit"] and record["torch"], name
        assert record["command"].startswith("python -m lossbench "), name


def test_an_imported_record_is_checked_against_its_source(tmp_path):
    repo = tmp_path / "r"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "page.md").write_text("intro\n\n| run | time |\n|---|---|\n| a | 12 s |\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "page")

    class Args:
        source, lines, table, value = "HEAD:page.md", "3-5", True, ["time=12 s"]
        command_run, date, cpu, isa, cores = "a run", "then", None, None, None
        load, torch, note, argv = "idle", "2.13.0", "", ["docs", "import", "x"]

    record = imported.make(Args, repo)
    assert record["result"]["rows"] == [["a", "12 s"]]
    assert imported.verify(record, repo) == []
    record["result"]["rows"][0][1] = "11 s"
    assert imported.verify(record, repo) == ["its table is not the table of its text"]
    Args.value = ["time=13 s"]
    with pytest.raises(Exception, match="'13 s' is not in those lines"):
        imported.make(Args, repo)


def test_every_page_links_to_the_one_glossary():
    glossary = ROOT / "docs" / "glossary.md"
    for page in pages.pages(ROOT):
        if page == glossary:
            continue
        targets = re.findall(r"\]\(([^)#]*glossary\.md)[^)]*\)", page.read_text())
        assert targets, f"{page.relative_to(ROOT)} does not link to docs/glossary.md"
        for target in targets:
            assert (page.parent / target).resolve() == glossary, (page, target)


def test_the_glossary_defines_each_term_once():
    terms = re.findall(r"^\*\*([^*]+)\*\*", (ROOT / "docs" / "glossary.md").read_text(), re.M)
    assert len(terms) == len(set(terms)), sorted(t for t in terms if terms.count(t) > 1)
    for term in ("native time factor", "worker", "family", "no-op", "buffer", "eps"):
        assert term in terms, term


def test_the_readme_quick_start_runs():
    (snippet,) = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    scope: dict = {}
    exec(compile(snippet, "README.md", "exec"), scope)
    assert scope["logits"].grad is not None
    assert scope["criterion"](scope["logits"], scope["target"]).ndim == 0


def test_the_readme_states_no_date_even_in_its_rendered_conditions():
    """The README says what is true now: its headline's conditions name the commit, and the
    record keeps the day (the pages of docs/ show it)."""
    dated = [
        line for line in (ROOT / "README.md").read_text().splitlines() if prose.DATE.search(line)
    ]
    assert dated == []
    assert "commit " in renderers.render("headline", pages.load_records(ROOT), {})
