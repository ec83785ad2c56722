"""``python -m lossbench paired BASE [--head HEAD]``: paired timing ratios, trial by trial.

The gate's paired timings (``lossbench.paired``) without its decision: for every selected
case, ``--trials`` fresh worker pairs of ``--pairs`` ABBA pairs each, and each trial's
median ratio HEAD / BASE. With BASE = HEAD it measures what two processes of the same code
read (the method's noise; ``--no-env-fix`` drops the fixes of ``paired.WORKER_ENV``); with
a changed HEAD, the change's native time factor. docs/gate.md's same-code tables come from
it. ``--json`` writes every ratio (a new file only). Exit 3 when a case could not be timed
in some trial (a worker died, hung or failed: each named on a ``NOT MEASURED`` line).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from lossbench import config, paired, results, runner, tables
from lossbench.errors import EXIT_FAILURE, EXIT_OK, UsageError
from lossbench.options import positive_int, refuse_existing

DEFAULT_BENCH = (
    r"^bench_time\.TimeSoftmaxLoss\.time_(forward|backward)\('(manual|fused|torch)', '\w+', "
    r"'float32'"
)


def add_parser(sub) -> None:
    p = sub.add_parser(
        "paired", help="paired timing ratios HEAD / BASE, trial by trial", description=__doc__
    )
    p.add_argument("base", help="BASE commit (HEAD itself: the same-code noise)")
    p.add_argument("--head", default="HEAD")
    p.add_argument("--bench", default=DEFAULT_BENCH, help="asv -b regex (default: %(default)s)")
    p.add_argument("--trials", type=int, default=3, help="fresh worker pairs (default 3)")
    p.add_argument("--pairs", type=int, default=8, help="ABBA pairs per trial (default 8)")
    p.add_argument("--no-env-fix", action="store_true", help="workers without WORKER_ENV")
    p.add_argument("--config", default="asv.conf.json")
    p.add_argument("--json", type=Path, default=None, help="write every ratio here (new file)")
    p.set_defaults(func=main)


def main(args) -> int:
    positive_int(args.trials, "--trials")
    positive_int(args.pairs, "--pairs")
    refuse_existing("--json", args.json)
    repo = runner.repo_root()
    base = runner.resolve(repo, args.base, "BASE")
    head = runner.resolve(repo, args.head, "HEAD")
    benchmarks = results.load_benchmarks(config.results_dir(args.config))
    cases = paired.cases(benchmarks, args.bench)
    if not cases:
        raise UsageError(f"--bench {args.bench!r} selects no time_ case of benchmarks.json")
    trials = paired.trials(
        repo,
        base,
        head,
        cases,
        args.trials,
        args.pairs,
        python=os.environ.get("LOSSBENCH_PYTHON") or sys.executable,
        workdir=repo / ".asv" / "paired",
        env_fix=not args.no_env_fix,
        echo=lambda line: print(line, file=sys.stderr),
    )
    rows, every, alls = [], {}, []
    for i, case in enumerate(cases):
        medians = paired.trial_medians(trials, i)
        every[case.label] = [t[i].screen_ratios for t in trials]
        alls += medians
        if medians:
            cells = [f"{m:.3f}" for m in medians]
            rows.append([case.label, *cells, f"{min(medians):.3f}-{max(medians):.3f}"])
    header = ["case", *(f"trial {k + 1}" for k in range(args.trials)), "range"]
    print(tables.render(header, rows, right=range(1, args.trials + 2)))
    missing = {
        f"{out.case.label}: {out.fault or out.error}"
        for trial in trials
        for out in trial
        if out.fault or out.error
    }
    for line in sorted(missing):
        print(f"NOT MEASURED: {line}")
    if alls:
        fix = "without" if args.no_env_fix else "with"
        print(
            f"{len(alls)} trial medians ({fix} the worker fixes): {min(alls):.3f}-{max(alls):.3f}"
        )
    if args.json is not None:
        with open(args.json, "x") as f:
            json.dump(
                {"base": base, "head": head, "env_fix": not args.no_env_fix, "ratios": every}, f
            )
    return EXIT_FAILURE if missing else EXIT_OK
