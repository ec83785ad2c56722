"""Per-benchmark ratio table between two torch versions at one commit (asv results).

asv's own ``compare`` only compares commits; ``make torch-versions`` runs one commit under
several torch versions (asv.torch-versions.conf.json) and then this script prints, for every
benchmark and parameter combination measured under both versions, ``other / base``. Every
benchmark of the suite is smaller-is-better (times, peak memory, bytes, errors in eps), so a
ratio above ``--factor`` is a regression of ``--other`` against ``--base``. Exit status: 0 none,
1 at least one regression, 2 usage error or no comparable results.

    python tools/torch_versions.py --config asv.torch-versions.conf.json --machine NAME \
        --base 2.13.0 --other 2.14.1 --factor 2.0 HEAD
"""

from __future__ import annotations

import argparse
import itertools
import math
import subprocess
import sys


def load_values(config_path: str, machine: str, commit: str) -> dict[str, dict]:
    """{torch version: {(benchmark, params): value}} for one commit and machine."""
    from asv import results as asv_results
    from asv.config import Config

    conf = Config.load(config_path)
    full = subprocess.run(
        ["git", "rev-parse", commit], capture_output=True, text=True, check=True
    ).stdout.strip()
    by_version: dict[str, dict] = {}
    for res in asv_results.iter_results_for_machine_and_hash(conf.results_dir, machine, full):
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("commit", nargs="?", default="HEAD")
    parser.add_argument("--config", default="asv.torch-versions.conf.json")
    parser.add_argument("--machine", required=True)
    parser.add_argument("--base", default="2.13.0")
    parser.add_argument("--other", default="2.14.1")
    parser.add_argument("--factor", type=float, default=2.0)
    args = parser.parse_args(argv)
    if not args.factor > 1:
        print(f"error: --factor must be > 1, got {args.factor}", file=sys.stderr)
        return 2
    try:
        found = load_values(args.config, args.machine, args.commit)
    except Exception as exc:  # asv UserError, git errors: one line, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    missing = [v for v in (args.base, args.other) if v not in found]
    if missing:
        print(
            f"error: no results for torch {', '.join(missing)} at {args.commit} on machine "
            f"{args.machine!r} (found: {', '.join(sorted(found)) or 'none'})",
            file=sys.stderr,
        )
        return 2
    rows = compare(found[args.base], found[args.other], args.factor)
    if not rows:
        print("error: no benchmark measured under both versions", file=sys.stderr)
        return 2
    render(rows, args.base, args.other, args.factor)
    bad = [r for r in rows if r[5]]
    print(f"{len(bad)} of {len(rows)} results regressed beyond {args.factor}x")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
