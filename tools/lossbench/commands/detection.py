"""``python -m lossbench detection-power``: how often the gate catches known regressions.

Builds a scratch history on top of HEAD (no-ops; the injections of
``lossbench.injections``, in Python and in the C++ Functions), runs the gate itself on base
vs each commit, run after run, and measures each injection's native time factor with the
paired timings. Prints one line per injection and target size (its native time and
instruction factors; per metric family the runs that caught it / the runs) and one for the
no-ops (false alarms). Hours with the defaults: it saves after every comparison, and run
again with the same ``--workdir`` it goes on where it stopped (a larger ``--runs`` adds
runs). ``--evaluate`` measures nothing and re-decides the saved rows at other thresholds.
"""

from __future__ import annotations

import time
from pathlib import Path

from lossbench import gate, paired, study, tables
from lossbench.commands.gate import parse_thresholds
from lossbench.errors import UsageError
from lossbench.injections import CATALOGUE
from lossbench.options import echo

DEFAULT_INJECTIONS = ",".join(CATALOGUE)


def add_parser(sub) -> None:
    p = sub.add_parser("detection-power", help="known regressions vs the gate", description=__doc__)
    p.add_argument("--repo", default=".", help="repository to build on (its HEAD)")
    p.add_argument(
        "--workdir",
        type=Path,
        default=Path(".asv/detection-power"),
        help="the study's folder (default: %(default)s); an existing study goes on",
    )
    p.add_argument("--runs", type=int, default=5, help="gate runs of every commit (default 5)")
    p.add_argument("--noops", type=int, default=10, help="no-op commits (default 10)")
    p.add_argument(
        "--injections",
        default=DEFAULT_INJECTIONS,
        help="comma-separated, of: %(default)s",
    )
    p.add_argument(
        "--only",
        help="comma-separated changes of the study (e.g. cpp-serial,noop-4): run these, no other",
    )
    p.add_argument("--bench", default=gate.GATE_BENCH, help="the gate's asv -b regex")
    p.add_argument("--threshold", action="append", metavar="FAMILY=RATIO")
    p.add_argument("--markdown", action="store_true", help="print the table as markdown")
    p.add_argument(
        "--evaluate",
        action="store_true",
        help="measure nothing: re-decide the saved rows (e.g. at other --threshold)",
    )
    p.set_defaults(func=main)


def main(args) -> int:
    thresholds = parse_thresholds(args.threshold)
    if args.runs < 1 or args.noops < 0:
        raise UsageError("--runs must be >= 1 and --noops >= 0")
    names = [n.strip() for n in args.injections.split(",") if n.strip()]
    started = time.monotonic()
    record = study.Study(args.workdir)
    if args.evaluate:
        data = record.load()
    else:
        if not record.exists():
            echo(f"detection-power: new study in {args.workdir}")
            study.start(Path(args.repo).resolve(), args.workdir, args.noops, names)
        only = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else None
        data = study.run(args.workdir, args.runs, pattern=args.bench, echo=echo, only=only)
    rule = paired.Settings().rule
    earlier = study.earlier_rules(data, rule)
    data = study.under_rule(data, rule)
    rows = study.evaluate(data, thresholds)
    limits = gate.limits_of(thresholds)
    runs = max((r["run"] for r in data["runs"]), default=0)
    print(
        "thresholds: "
        + ", ".join(f"{f} {limits[f]:g}x" for f in study.FAMILIES)
        + f"; {runs} runs; every cell: runs that caught it / runs"
    )
    header, lines = study.table(data, rows)
    print(tables.render(header, lines, markdown=args.markdown))
    header, lines = study.paired_spread(data)
    if lines:
        print("the paired timings on the no-ops, by timed class and size:")
        print(tables.render(header, lines, markdown=args.markdown))
    for fam, s in study.same_code_spread(rows).items():
        print(
            f"no-op spread, {fam}: {s['n']} comparisons, max ratio {s['max']:.4f}, "
            f"99th percentile {s['p99']:.4f}"
        )
    for line in earlier:
        print(line)
    print(f"detection-power: {time.monotonic() - started:.0f} s; the rows in {record.path}")
    return 0
