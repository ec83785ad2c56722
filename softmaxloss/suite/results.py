"""Reads asv result JSON (asv 0.6's format, ``api_version`` 2) without importing asv.

One result file per (machine, commit, environment) lies in ``<results_dir>/<machine>/``; its
``results`` maps a benchmark name to a row whose columns ``result_columns`` names
(``result``, ``params``, ``version``, ..., ``samples``). A parametrised benchmark stores one
value per combination of its ``params`` (``itertools.product`` order). asv writes ``null``
for a failed combination and ``NaN`` for a skipped one (``NotImplementedError``).
``<results_dir>/benchmarks.json`` gives each benchmark's type and unit.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from dataclasses import dataclass


class ResultsError(Exception):
    """Missing or unreadable results (one line, for the command line)."""


@dataclass(frozen=True)
class Result:
    """One benchmark at one parameter combination of one commit."""

    benchmark: str
    params: tuple[str, ...]
    value: float | None  # None: failed; NaN: skipped
    unit: str
    kind: str  # asv's type: time, track, peakmem, mem
    version: str | None
    samples: tuple[float, ...] | None = None
    rounds: int = 1  # the benchmark's asv ``rounds`` (samples are recorded round by round)

    @property
    def failed(self) -> bool:
        return self.value is None

    @property
    def skipped(self) -> bool:
        return self.value is not None and math.isnan(self.value)

    @property
    def label(self) -> str:
        """``name(p1, p2, ...)`` as asv prints it (and as ``-b`` regexes match it)."""
        return f"{self.benchmark}({', '.join(self.params)})" if self.params else self.benchmark


def load_benchmarks(results_dir: str) -> dict:
    path = os.path.join(results_dir, "benchmarks.json")
    try:
        with open(path) as f:
            data = json.load(f)
    except OSError as exc:
        raise ResultsError(f"no benchmark list {path} ({exc.strerror})") from exc
    return {name: info for name, info in data.items() if name != "version"}


def result_files(results_dir: str, machine: str, commit: str) -> list[str]:
    """The result files of one full commit hash on ``machine`` (one per environment)."""
    folder = os.path.join(results_dir, machine)
    if not os.path.isdir(folder):
        return []
    found = []
    for name in sorted(os.listdir(folder)):
        if not name.startswith(commit[:8]) or not name.endswith(".json"):
            continue
        path = os.path.join(folder, name)
        with open(path) as f:
            data = json.load(f)
        if data.get("commit_hash") == commit:
            found.append(path)
    return found


def parse_file(path: str, benchmarks: dict) -> dict[tuple[str, tuple[str, ...]], Result]:
    """``{(benchmark, params): Result}`` of one result file."""
    with open(path) as f:
        data = json.load(f)
    if data.get("version") != 2:
        raise ResultsError(f"{path}: asv result format {data.get('version')}, expected 2")
    columns = data["result_columns"]
    out = {}
    for name, row in data["results"].items():
        cells = dict(zip(columns, row, strict=False))
        info = benchmarks.get(name, {})
        values = cells.get("result")
        params = cells.get("params") or []
        combos = list(itertools.product(*params)) if params else [()]
        if values is None:  # every combination failed: asv compresses the list to null
            values = [None] * len(combos)
        elif not isinstance(values, list):
            values = [values]
        samples = cells.get("samples") or [None] * len(combos)
        for combo, value, sample in zip(combos, values, samples, strict=False):
            out[name, tuple(combo)] = Result(
                benchmark=name,
                params=tuple(combo),
                value=None if value is None else float(value),
                unit=info.get("unit", "unknown"),
                kind=info.get("type", name.rsplit(".", 1)[-1].split("_", 1)[0]),
                version=cells.get("version"),
                samples=None if sample is None else tuple(sample),
                rounds=int(info.get("rounds") or 1),
            )
    return out


def load_commit(results_dir: str, machine: str, commit: str, need_units: bool = True) -> dict:
    """All results of one commit on one machine; an error if there are none.

    ``need_units=False``: without ``benchmarks.json`` (``asv find`` does not write it) the
    units and types are ``unknown`` instead of an error.
    """
    try:
        benchmarks = load_benchmarks(results_dir)
    except ResultsError:
        if need_units:
            raise
        benchmarks = {}
    files = result_files(results_dir, machine, commit)
    if not files:
        raise ResultsError(f"no asv results for {commit[:8]} on machine {machine!r}")
    if len(files) > 1:
        names = ", ".join(os.path.basename(p) for p in files)
        raise ResultsError(f"{commit[:8]}: results of several environments ({names})")
    return parse_file(files[0], benchmarks)
