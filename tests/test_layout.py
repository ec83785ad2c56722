"""The package's shape: imports flow one way (no cycle, nothing imports the package's
``__init__``), the error module is a leaf, and ``python -m softmaxloss --help`` lists every
command."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from softmaxloss.commands import COMMANDS, build_parser

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "softmaxloss"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Package modules imported by ``path`` (anywhere in the file, deferred imports too)."""
    name = _module_name(path)
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "softmaxloss"}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] != "softmaxloss":
                continue
            for alias in node.names:  # `from softmaxloss import x`: x may be a module
                sub = f"{node.module}.{alias.name}"
                found.add(sub if _exists(sub) else node.module)
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{name}: relative import; the package uses absolute imports")
    found.discard(name)
    return found


def _exists(module: str) -> bool:
    base = ROOT.joinpath(*module.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def test_no_module_imports_the_package_init():
    for module, deps in _graph().items():
        if module == "softmaxloss":
            continue
        assert "softmaxloss" not in deps, f"{module} imports the package __init__"


def test_import_graph_has_no_cycle():
    graph = _graph()
    assert graph["softmaxloss.commands.compare"]  # the graph sees imports at all
    state: dict[str, int] = {}

    def visit(node, path):
        if state.get(node) == 1:
            raise AssertionError("import cycle: " + " -> ".join([*path, node]))
        if state.get(node) == 2:
            return
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            visit(dep, [*path, node])
        state[node] = 2

    for module in graph:
        visit(module, [])


def test_errors_is_a_leaf():
    assert _graph()["softmaxloss.errors"] == set()


def test_harness_imports_nothing_of_the_package():
    # the asv suite loads it by file path, whatever commit of the package it measures
    assert _graph()["softmaxloss.harness"] == set()


def test_help_lists_every_command():
    proc = subprocess.run(
        [sys.executable, "-m", "softmaxloss", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    names = set(sub.choices)
    assert len(names) >= len(COMMANDS)
    expected = {"compare", "ratios", "depth", "machine", "site-summary", "offline-site"}
    assert expected | {"torch-versions"} <= names
    for name in names:
        assert f"    {name}" in proc.stdout, name
