"""Per-benchmark ratio table between two torch versions at one commit (asv results).

asv's own ``compare`` only compares commits; ``make torch-versions`` runs one commit under
several torch versions (asv.torch-versions.conf.json) and then this script prints, for every
benchmark and parameter combination measured under both versions, ``other / base``. Every
benchmark of the suite is smaller-is-better (times, peak memory, bytes, errors in eps), so a
ratio above ``--factor`` is a regression of ``--other`` against ``--base``. The command
(``python -m softmaxloss torch-versions``) exits 0 on none, 1 on at least one regression, 2 on
a usage error or when nothing is comparable.
"""

from __future__ import annotations

import itertools
import math
import subprocess

from softmaxloss.suite import config


def load_values(config_path: str, machine: str, commit: str) -> dict[str, dict]:
    """{torch version: {(benchmark, params): value}} for one commit and machine."""
    from asv import results as asv_results

    conf = config.load(config_path)
    full = subprocess.run(
        ["git", "rev-parse", commit], capture_output=True, text=True, check=True
    ).stdout.strip()
    by_version: dict[str, dict] = {}
    for res in asv_results.iter_results_for_machine_and_hash(str(conf.results_dir), machine, full):
        version = res.params.get("torch") or res._requirements.get("torch")
        if not version:
            continue
        values = by_version.setdefault(version, {})
        for key in res.get_all_result_keys():
            params = res.get_result_params(key)
            vals = res.get_result_value(key, params)
            combos = list(itertools.product(*params)) if params else [()]
            for combo, val in zip(combos, vals, strict=False):
                values[key, ", ".join(combo)] = val
    return by_version


def compare(base: dict, other: dict, factor: float):
    """Rows ``(benchmark, params, base, other, ratio, regressed)`` for values in both."""
    rows = []
    for key in sorted(base.keys() & other.keys()):
        a, b = base[key], other[key]
        if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)):
            continue
        ratio = b / a if a > 0 else (1.0 if b == a else math.inf)
        rows.append((key[0], key[1], a, b, ratio, ratio > factor))
    return rows


def render(rows, base_name: str, other_name: str, factor: float) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"torch {other_name} / torch {base_name} (regression: ratio > {factor})")
    for col in ("", "benchmark", "params", base_name, other_name, "ratio"):
        table.add_column(
            col, justify="right" if col in (base_name, other_name, "ratio") else "left"
        )
    for name, params, a, b, ratio, bad in rows:
        table.add_row("!" if bad else "", name, params, f"{a:.4g}", f"{b:.4g}", f"{ratio:.2f}")
    Console(width=200).print(table)
