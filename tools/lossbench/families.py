"""The gate's metric families: which benchmarks and results belong to which, what each
needs to run, and what a selection (asv's ``-b`` regex) of them holds.

Families (every benchmark of the suite is smaller-is-better):

* ``instructions``: callgrind's instruction counts (``track_``, unit ``instructions``);
* ``cycles``: callgrind's cache simulation, estimated cycles and last-level misses (units
  ``cycles``, ``misses``): memory traffic that costs few instructions;
* ``memory``: ``peakmem_`` and ``track_`` values in ``bytes``;
* ``precision``: ``track_`` values in ``eps``;
* ``time``: the paired timings (``lossbench.paired``).

``instructions`` and ``cycles`` need valgrind (``TOOLS``): :func:`check_tools` refuses a
selection that needs a tool this machine lacks before anything is measured.
"""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess

from lossbench.errors import ToolError
from lossbench.results import Result

FAMILIES = ("instructions", "cycles", "memory", "precision", "time")


def family(result: Result) -> str:
    if result.unit in ("instructions", "cycles"):
        return result.unit
    if result.unit == "misses":
        return "cycles"
    if result.kind == "time":
        return "time"
    if result.kind in ("peakmem", "mem") or result.unit == "bytes":
        return "memory"
    if result.unit == "eps":
        return "precision"
    return "other"


# The benchmarks of each family, as the start of an asv label (a regex): what
# ``--skip-family`` leaves out of the selection.
FAMILY_BENCHMARKS = {
    "instructions": r"bench_instructions\.InstructionsSoftmaxLoss\.",
    "cycles": r"bench_instructions\.CacheSoftmaxLoss\.",
    "memory": r"bench_memory\.",
    "precision": r"bench_precision\.",
    "time": r"[^(]*\.time_",
}
# The families that need a program besides Python, checked before any measuring.
TOOLS = {"instructions": "valgrind", "cycles": "valgrind"}
# A label of each family's benchmarks, for a selection checked before asv has listed the
# suite (no benchmarks.json yet): the gate's own case of the family.
_EXAMPLE_LABELS = {
    "instructions": "bench_instructions.InstructionsSoftmaxLoss.track_forward",
    "cycles": "bench_instructions.CacheSoftmaxLoss.track_cycles_forward",
}
_EXAMPLE_PARAMS = "('manual', '1024x1000', 'float32')"


def tool_benchmarks(skip=()) -> str:
    """A regex of the benchmarks whose family needs a tool, ``skip``'s families left out
    (one that matches nothing when all are)."""
    names = [FAMILY_BENCHMARKS[f] for f in TOOLS if f not in skip]
    return f"(?:{'|'.join(names)})" if names else "(?!)"


def tool_missing(tool: str) -> str | None:
    """Why ``tool`` cannot run here (not on PATH, or ``tool --version`` fails), or None."""
    path = shutil.which(tool)
    if path is None:
        return f"{tool} is not installed (not on PATH)"
    try:
        subprocess.run([path, "--version"], capture_output=True, timeout=60, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"{tool} does not run ({type(exc).__name__})"
    return None


def without_families(pattern: str, skip) -> str:
    """The asv ``-b`` regex ``pattern`` with the benchmarks of the families ``skip`` left
    out."""
    if not skip:
        return pattern
    out = "|".join(FAMILY_BENCHMARKS[f] for f in skip)
    return rf"^(?!(?:{out}))(?:.*?)(?:{pattern})"


def selected_labels(benchmarks: dict | None, pattern: str) -> list[str]:
    """The labels ``name(p1, ...)`` of every combination in ``benchmarks`` (benchmarks.json)
    that the ``-b`` regex ``pattern`` selects; without a list yet, the families' example
    labels it selects."""
    if not benchmarks:
        labels = [label + _EXAMPLE_PARAMS for label in _EXAMPLE_LABELS.values()]
        return [label for label in labels if selected(label, pattern)]
    out = []
    for name, info in sorted(benchmarks.items()):
        for combo in itertools.product(*info.get("params", [])):
            label = f"{name}({', '.join(combo)})" if combo else name
            if selected(label, pattern):
                out.append(label)
    return out


def family_of_label(label: str, benchmarks: dict | None = None) -> str:
    """The family of a selected label: from benchmarks.json's type and unit when given,
    else from the family's benchmarks."""
    name = label.split("(", 1)[0]
    info = (benchmarks or {}).get(name)
    if info is not None:
        return family(Result(name, (), 0.0, info.get("unit", ""), info.get("type", ""), None))
    for fam, prefix in FAMILY_BENCHMARKS.items():
        if re.match(prefix, label):
            return fam
    return "other"


def selected(label: str, pattern: str | None) -> bool:
    """asv's ``-b`` rule: ``re.search`` in ``name(p1, p2)`` (in the name if unparametrised)."""
    return not pattern or re.search(pattern, label) is not None


def check_tools(pattern: str, skip, benchmarks: dict | None) -> None:
    """Refuses, before any measuring, a selection that needs a tool this machine lacks
    (``ToolError``, exit 3: nothing measured), naming the families and ``--skip-family``."""
    needed: dict[str, list[str]] = {}
    labels = selected_labels(benchmarks, without_families(pattern, skip))
    for fam in sorted({family_of_label(label, benchmarks) for label in labels}):
        if fam in TOOLS:
            needed.setdefault(TOOLS[fam], []).append(fam)
    for tool, fams in needed.items():
        why = tool_missing(tool)
        if why is not None:
            names = ",".join(fams)
            raise ToolError(
                f"{why}: the families {names} cannot be measured; install it "
                f"(make valgrind), or leave them out with --skip-family {names}"
            )
