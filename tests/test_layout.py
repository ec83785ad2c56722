"""The repository's shape: two packages, imports flowing one way.

``softmaxloss`` (the loss) and ``lossbench`` (its measuring tools, ``tools/``): the loss
imports nothing of the tools; inside each no cycle and nothing imports the package's
``__init__``; the error modules are leaves; the instruments the asv benchmarks load into
every benchmark process import nothing of the commit measured but its public names; the
wheel of the loss ships no tool; ``python -m lossbench --help`` lists every command.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from lossbench.commands import build_parser

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"softmaxloss": ROOT / "softmaxloss", "lossbench": ROOT / "tools" / "lossbench"}


def _module_name(path: Path, package: str) -> str:
    parts = [package, *path.relative_to(PACKAGES[package]).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _exists(module: str) -> bool:
    top, *rest = module.split(".")
    base = PACKAGES[top].joinpath(*rest)
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _imports(path: Path, package: str) -> set[str]:
    """Modules of either package imported by ``path`` (anywhere in the file, deferred imports
    too)."""
    name = _module_name(path, package)
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] in PACKAGES}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] not in PACKAGES:
                continue
            for alias in node.names:  # `from softmaxloss import x`: x may be a module
                sub = f"{node.module}.{alias.name}"
                found.add(sub if _exists(sub) else node.module)
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{name}: relative import; the packages use absolute imports")
    found.discard(name)
    return found


def _graph() -> dict[str, set[str]]:
    return {
        _module_name(p, package): _imports(p, package)
        for package, folder in PACKAGES.items()
        for p in sorted(folder.rglob("*.py"))
    }


def test_the_loss_imports_nothing_of_the_tools():
    graph = _graph()
    assert graph["lossbench.commands.compare"] & {"softmaxloss"}  # the graph sees both
    for module, deps in graph.items():
        if module.startswith("softmaxloss"):
            assert not {d for d in deps if d.startswith("lossbench")}, module


def test_no_module_imports_its_package_init():
    for module, deps in _graph().items():
        top = module.split(".")[0]
        if module != top:
            assert top not in deps, f"{module} imports the package __init__"


def test_import_graph_has_no_cycle():
    graph = _graph()
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


def test_errors_are_leaves():
    graph = _graph()
    assert graph["softmaxloss.errors"] == set()
    assert graph["lossbench.errors"] == set()


@pytest.mark.parametrize("module", ["lossbench", "lossbench.harness", "lossbench.reference"])
def test_the_benchmarks_instruments_use_only_the_public_loss(module):
    """The asv benchmarks load these from the working tree into processes that import
    another commit's softmaxloss: only its public names, the registry's module at most."""
    deps = _graph()[module]
    assert deps <= {"lossbench.harness", "softmaxloss"}, deps


def test_the_wheel_ships_the_loss_only(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
        + ["-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = tmp_path.glob("softmaxloss-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"softmaxloss"}, tops
    assert "softmaxloss/csrc/cross_entropy_cpu.cpp" in names
    assert not [n for n in names if any(w in n for w in ("gate", "history", "merge", "site"))]


def test_help_lists_every_command():
    proc = subprocess.run(
        [sys.executable, "-m", "lossbench", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    expected = {"compare", "ratios", "overhead", "depth", "gate", "history", "site-summary"}
    assert expected <= set(sub.choices)
    for name in sub.choices:
        assert f"    {name}" in proc.stdout, name


def test_the_command_table_names_what_each_module_adds():
    from lossbench.commands import COMMANDS

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(sub.choices) == set(COMMANDS)
    for name, module in COMMANDS.items():
        only = next(a for a in build_parser(only=name)._actions if a.dest == "command")
        assert name in only.choices, (name, module)


def test_the_asv_helpers_start_without_torch():
    """make evaluates ``machine`` on every target: it must not pay for importing torch."""
    probe = (
        "import sys; from lossbench.commands import main; main(['machine', 'name']); "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    proc = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
