"""``python -m lossbench detection-power``: how often the gate catches injected regressions.

Builds a scratch history on top of HEAD (no-ops; slowdowns of one implementation in the
forward only and in the backward only; precision losses; one extra logits buffer), measures
it with asv and applies the gate's decision to base vs each commit. Prints one line per
injection and size: the factor actually injected (measured) and, per metric family, the
runs that caught it / the runs that measured it; then the same for the no-ops (false
alarms). Takes 30-60 min with the defaults on a 2-core machine; ``--runs``, ``--factors``
etc. trade coverage for time.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

from lossbench import gate, study
from lossbench.errors import UsageError


def _floats(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise UsageError(f"expected comma-separated numbers, got {text!r}") from None
    if any(v <= 1 for v in values):
        raise UsageError(f"every factor must be > 1, got {text!r}")
    return values


def add_parser(sub) -> None:
    p = sub.add_parser(
        "detection-power", help="injected regressions vs the gate", description=__doc__
    )
    p.add_argument("--repo", default=".", help="repository to build on (its HEAD)")
    p.add_argument("--workdir", default=None, help="keep everything here (default: temp)")
    p.add_argument("--impl", default="manual", help="implementation to inject into")
    p.add_argument("--runs", type=int, default=5, help="timing runs of the slowdowns")
    p.add_argument("--noops", type=int, default=5, help="no-op commits")
    p.add_argument("--noop-runs", type=int, default=1, help="runs of the no-ops")
    p.add_argument("--factors", default=",".join(f"{f:g}" for f in study.FACTORS))
    p.add_argument("--regions", default="forward,backward", help="forward,backward")
    p.add_argument("--precision", default=",".join(f"{f:g}" for f in study.PRECISION_LOSSES))
    p.add_argument("--no-memory", action="store_true", help="no extra-buffer injection")
    p.add_argument("--bench", default=gate.GATE_BENCH, help="asv -b regex of the gate")
    p.add_argument("--threshold", action="append", metavar="FAMILY=RATIO")
    p.add_argument("--markdown", action="store_true", help="print the table as markdown")
    p.add_argument(
        "--evaluate",
        action="store_true",
        help="measure nothing: re-apply the decision (e.g. other --threshold) to --workdir",
    )
    p.add_argument(
        "--add-runs",
        type=int,
        default=0,
        metavar="N",
        help="add N timing runs of the slowdowns to the study in --workdir",
    )
    p.set_defaults(func=main)


def main(args) -> int:
    from lossbench.commands.gate import parse_thresholds

    def echo(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    start = time.monotonic()
    thresholds = parse_thresholds(args.threshold)
    factors = _floats(args.factors) if args.factors else ()
    precision = _floats(args.precision) if args.precision else ()
    regions = tuple(r for r in args.regions.split(",") if r)
    if set(regions) - {"forward", "backward"}:
        raise UsageError(f"--regions: forward and/or backward, got {args.regions!r}")
    if args.runs < 1 or args.noop_runs < 0 or args.noops < 0:
        raise UsageError("--runs must be >= 1, --noops and --noop-runs >= 0")
    settings = study.Settings(
        impl=args.impl, runs=args.runs, noop_runs=args.noop_runs, pattern=args.bench
    )
    if args.evaluate or args.add_runs:
        if not args.workdir:
            raise UsageError("--evaluate and --add-runs need the --workdir of a study")
        workdir = args.workdir
        commits, changes, phases = study.load_measured(workdir)
        if args.add_runs > 0:
            start = max(p["run"] for p in phases) + 1
            settings = study.Settings(impl=args.impl, runs=start + args.add_runs - 1, noop_runs=0)
            # every change: measure() times only the slowdowns after run 1 (no no-op
            # runs here), and saves the whole study after each run it adds
            clone = os.path.join(workdir, "repo")
            phases = study.measure(
                clone,
                workdir,
                commits,
                changes,
                settings,
                echo,
                first_run=start,
                earlier=phases,
            )
    else:
        changes = study.plan(args.noops, factors, precision, not args.no_memory, regions)
        workdir = args.workdir or tempfile.mkdtemp(prefix="detection-power-")
        os.makedirs(workdir, exist_ok=True)
        clone = os.path.join(workdir, "repo")
        if os.path.exists(clone):
            raise UsageError(f"{clone} exists: give a new --workdir")
        echo(f"detection-power: work directory {workdir} (asv output in asv.log)")
        repo = os.path.abspath(args.repo)
        commits = study.build_history(repo, clone, changes, args.impl)
        phases = study.measure(clone, workdir, commits, changes, settings, echo)
    rows = study.evaluate(phases, commits, changes, settings.machine, thresholds)
    path = study.save(workdir, rows, changes, settings)
    limits = {**gate.DEFAULT_THRESHOLDS, **thresholds}
    runs = max(p["run"] for p in phases)
    print(
        "thresholds: "
        + ", ".join(f"{f} {limits[f]:g}x" for f in study.TABLE_FAMILIES)
        + f"; timing runs: {runs} (instructions, precision, memory: measured in the first)"
    )
    print(study.format_table(study.table(rows, changes), args.markdown))
    for fam, s in study.same_code_spread(rows).items():
        print(
            f"no-op spread, {fam}: {s['n']} comparisons, max ratio {s['max']:.4f}, "
            f"99th percentile {s['p99']:.4f}, max |log ratio| as a ratio {s['max_sym']:.4f}"
        )
    print(f"detection-power: {time.monotonic() - start:.0f} s; every ratio in {path}")
    return 0
