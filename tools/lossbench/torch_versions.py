"""Per-benchmark ratio table between two torch versions at one commit (asv results).

asv's own ``compare`` only compares commits; ``make torch-versions`` runs one commit under
several torch versions (asv.torch-versions.conf.json) and then this script prints, for every
benchmark and parameter combination measured under both versions, ``other / base``. Every
benchmark of the suite is smaller-is-better (times, peak memory, bytes, errors in eps), so a
ratio above ``--factor`` is a regression of ``--other`` against ``--base``. The command
(``python -m lossbench torch-versions``) exits 0 on none, 1 on at least one regression, 2 on
a usage error or when nothing is comparable.
"""

from __future__ import annotations

import math

from lossbench import config, results, runner, tables


def load_values(config_path: str, machine: str, commit: str) -> dict[str, dict]:
    """{torch version: {(benchmark, params): value}} for one commit and machine."""
    full = runner.resolve(".", commit)
    by_version: dict[str, dict] = {}
    for res in results.commit_results(config.results_dir(config_path), machine, full):
        version = res.params.get("torch")
        if version:
            values = by_version.setdefault(version, {})
            for name, combo, value, _ in results.combinations(res):
                values[name, ", ".join(combo)] = value
    return by_version


def compare(base: dict, other: dict, factor: float):
    """Rows ``(benchmark, params, base, other, ratio, regressed)`` for values in both."""
    rows = []
    for key in sorted(base.keys() & other.keys()):
        a, b = base[key], other[key]
        if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)):
            continue
        ratio = results.ratio(a, b)
        rows.append((key[0], key[1], a, b, ratio, ratio > factor))
    return rows


def render(rows, base_name: str, other_name: str, factor: float) -> str:
    body = [
        ("!" if bad else "", name, params, f"{a:.4g}", f"{b:.4g}", f"{ratio:.2f}")
        for name, params, a, b, ratio, bad in rows
    ]
    title = f"torch {other_name} / torch {base_name} (regression: ratio > {factor})"
    header = ("", "benchmark", "params", base_name, other_name, "ratio")
    return tables.render(header, body, title=title, right=(3, 4, 5))
