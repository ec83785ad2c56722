"""``python -m lossbench gate BASE``: the regression gate, BASE vs HEAD (``make gate``).

Runs asv on both commits (the deterministic families of the gate's selection, once per
commit), times both with the paired timings (``lossbench.paired``) and applies one threshold
per metric family. Prints one table of what regressed and, under GitHub Actions, writes the
same table to ``$GITHUB_STEP_SUMMARY``.
A HEAD whose package (``softmaxloss/``, ``pyproject.toml``) is BASE's is not measured: it
passes at once (``--measure-same-package`` measures it).
Exit status: 0 every selected family measured on both commits, nothing regressed; 1 a
regression; 2 bad input, refused before any work (a BASE that is not a commit, uncommitted
changes to the package); 3 something selected could not be measured (a benchmark failed
on HEAD, a tool is missing, a timing worker died or hung, results could not be read or
written, asv failed), each cause named. The last line says it too.
"""

from __future__ import annotations

import os

from lossbench import families, gate, paired
from lossbench.errors import EXIT_FAILURE, UsageError
from lossbench.machine import machine_name
from lossbench.options import add_asv_options, echo, parse_choices


def parse_thresholds(items) -> dict:
    out = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        families = (*gate.FAMILIES, "other")
        if not sep or name not in families:
            raise UsageError(f"--threshold {item!r}: expected FAMILY=RATIO, FAMILY in {families}")
        try:
            ratio = float(value)
        except ValueError:
            raise UsageError(f"--threshold {item!r}: {value!r} is not a number") from None
        if not ratio > 1:
            raise UsageError(f"--threshold {item!r}: the ratio must be > 1")
        out[name] = ratio
    return out


def add_parser(sub) -> None:
    p = sub.add_parser("gate", help="regression gate: BASE vs HEAD", description=__doc__)
    p.add_argument("base", help="the commit to compare against (e.g. main)")
    p.add_argument("--head", default="HEAD", help="the commit under test (default HEAD)")
    add_asv_options(p, "python -m lossbench machine", repo=True)
    p.add_argument("--bench", default=gate.GATE_BENCH, help="asv -b regex (default: %(default)s)")
    p.add_argument(
        "--measure-same-package",
        action="store_true",
        help="measure and time HEAD even when its package (softmaxloss/, pyproject.toml) is "
        "BASE's; by default such a HEAD passes at once",
    )
    p.add_argument(
        "--threshold",
        action="append",
        metavar="FAMILY=RATIO",
        help="override a family's threshold, e.g. time=1.2 (repeatable)",
    )
    p.add_argument(
        "--skip-family",
        metavar="F1,F2",
        help="leave these families out (e.g. instructions,cycles where valgrind is "
        f"missing), said in the summary; of {','.join(families.FAMILY_BENCHMARKS)}",
    )
    p.add_argument(
        "--allow-dirty",
        action="store_true",
        help="gate the committed HEAD although the package has uncommitted changes",
    )
    p.add_argument(
        "--timeout-floor",
        type=float,
        default=paired.Settings.timeout_floor,
        metavar="SECONDS",
        help="the least time a timing worker's answer is waited for before it counts as "
        "hung (default %(default)g; otherwise 20x what the answer should cost)",
    )
    p.set_defaults(func=main)


def _summary_markdown(run: gate.GateRun, lines: list[str]) -> str:
    report = run.report
    out = [f"## Benchmark gate: {run.head[:8]} vs {run.base[:8]}", ""]
    out += [f"- {line}" for line in lines]
    out.append("")
    if report.regressions:
        out += [gate.format_rows(report.regressions, markdown=True), ""]
    else:
        out += ["No regression.", ""]
    for what, labels in (
        ("Not measured", report.faults),
        ("Failed on HEAD", report.failures),
        ("Measured on BASE, not on HEAD", report.lost),
    ):
        if labels:
            out.append(f"{what}:")
            out += [f"- `{label}`" for label in labels]
    out.append(f"\nExit {report.exit_code} ({STATUSES}).")
    return "\n".join(out) + "\n"


STATUSES = "0 ok, 1 regression, 2 bad input, 3 not everything measured"


def main(args) -> int:
    thresholds = parse_thresholds(args.threshold)
    skip = (
        parse_choices("--skip-family", args.skip_family, families.FAMILY_BENCHMARKS)
        if (args.skip_family)
        else []
    )
    if not args.timeout_floor > 0:
        raise UsageError(f"--timeout-floor must be a positive number, got {args.timeout_floor}")
    machine = args.machine or machine_name()
    repo = os.path.abspath(args.repo)
    log_path = os.path.join(repo, ".asv", "gate", "gate.log")
    run = gate.run(
        repo,
        args.base,
        args.head,
        conf_file=args.config,
        machine=machine,
        pattern=args.bench,
        thresholds=thresholds,
        launch_method=args.launch_method,
        log_path=log_path,
        echo=echo,
        measure_same_package=args.measure_same_package,
        settings=paired.Settings(timeout_floor=args.timeout_floor),
        skip_families=skip,
        allow_dirty=args.allow_dirty,
    )
    report = run.report
    lines = gate.summary_lines(report, thresholds, run.same_package)
    print(f"gate: HEAD {run.head[:8]} vs BASE {run.base[:8]} on {machine}, {run.seconds:.0f} s")
    for line in lines:
        print(line)
    print(gate.format_rows(report.regressions) if report.regressions else "no regression")
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a") as f:
            f.write(_summary_markdown(run, lines))
    if report.exit_code == EXIT_FAILURE:
        logs = os.path.relpath(os.path.dirname(log_path))
        print(
            "gate: not everything selected was measured (above), so this is no pass: fix "
            f"the cause and run the gate again (asv's and the workers' logs: {logs}/)"
        )
    print(f"gate: exit {report.exit_code} ({STATUSES})")
    return report.exit_code
