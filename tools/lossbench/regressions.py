"""The regressions asv's step detection finds in the published history, new ones only.

``asv publish`` runs asv's step detection over every graph of the stored history and writes
``regressions.json`` (each entry: the benchmark and its parameter index, and the jumps: the
last good and first bad revision with the values before and after) beside ``index.json``
(revision -> commit). :func:`new_at` keeps the jumps whose first bad revision is the given
commit: what that commit brought, not what the history held before.

Families (``gate.family`` by type and unit): the deterministic ones (instructions, cycles,
memory, precision) are alerts; timings are shown without alerting, since hosted runners of
one class report different CPUs and their timings drift for reasons of their own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from lossbench import gate
from lossbench.errors import ToolError
from lossbench.results import Result

ALERT = ("instructions", "cycles", "memory", "precision")


@dataclass(frozen=True)
class Jump:
    benchmark: str
    params: str
    family: str
    before: float
    after: float

    @property
    def ratio(self) -> float:
        return self.after / self.before if self.before else float("inf")

    @property
    def alert(self) -> bool:
        return self.family in ALERT


def _load(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ToolError(f"cannot read {path} ({exc}): run `make site` first") from None


def new_at(html_dir, commit: str) -> list[Jump]:
    """The step-detection regressions whose first bad commit is ``commit`` (a full hash)."""
    html_dir = Path(html_dir)
    index = _load(html_dir / "index.json")
    found = _load(html_dir / "regressions.json")["regressions"]
    revision = {h: int(r) for r, h in index["revision_to_hash"].items()}.get(commit)
    if revision is None:
        return []
    out = []
    for entry, _, _, _, _, _, jumps in found:
        # asv names a parametrised series ``name(p1, p2)``
        name, _, params = entry.partition("(")
        params = params[:-1] if params.endswith(")") else params
        info = index["benchmarks"].get(name, {})
        probe = Result(name, (), 0.0, info.get("unit", ""), info.get("type", ""), None)
        for _, bad, before, after in jumps:
            if bad == revision:
                out.append(Jump(name, params, gate.family(probe), before, after))
    return out
