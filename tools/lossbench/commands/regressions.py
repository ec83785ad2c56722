"""``python -m lossbench regressions COMMIT``: what asv's step detection blames on COMMIT.

Reads the published site (``asv publish`` / ``make site``: ``regressions.json`` and
``index.json`` in the html folder) and prints the regressions whose first bad commit is
COMMIT, new ones only; with ``--summary FILE`` (the GitHub job summary) the same as
markdown. The deterministic families (instructions, cycles, memory, precision) alert:
exit 1; timings are listed without alerting. Exit 0 when nothing alerts.
"""

from __future__ import annotations

from pathlib import Path

from lossbench import config, regressions, runner, tables
from lossbench.errors import EXIT_OK, EXIT_REGRESSION


def add_parser(sub) -> None:
    p = sub.add_parser(
        "regressions",
        help="regressions asv's step detection finds at a commit (new ones only)",
        description=__doc__.splitlines()[0],
    )
    p.add_argument("commit", nargs="?", default="HEAD")
    p.add_argument("--config", default="asv.conf.json", help="asv config (its html_dir)")
    p.add_argument("--summary", type=Path, default=None, help="append a markdown report here")
    p.set_defaults(func=main)


def main(args) -> int:
    commit = runner.resolve(".", args.commit)
    jumps = regressions.new_at(config.load(args.config).html_dir, commit)
    header = ["", "benchmark", "parameters", "metric", "before", "after", "ratio"]
    rows = [
        [
            "ALERT" if j.alert else "",
            j.benchmark,
            j.params,
            j.family,
            f"{j.before:.4g}",
            f"{j.after:.4g}",
            f"{j.ratio:.3f}",
        ]  # fmt: skip
        for j in sorted(jumps, key=lambda j: (not j.alert, j.benchmark, j.params))
    ]
    alerts = sum(j.alert for j in jumps)
    line = (
        f"regressions at {commit[:8]}: {len(jumps)} new ({alerts} in the deterministic "
        "families: alert; timings shown only)"
    )
    print(line)
    if rows:
        print(tables.render(header, rows, right=(4, 5, 6)))
    if args.summary is not None:
        with open(args.summary, "a") as f:
            f.write(f"## asv step detection at {commit[:8]}\n\n{line}\n\n")
            if rows:
                f.write(tables.render(header, rows, markdown=True) + "\n")
    return EXIT_REGRESSION if alerts else EXIT_OK
