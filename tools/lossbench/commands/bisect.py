"""``python -m lossbench bisect GOOD BAD --bench REGEX``: the first bad commit (``make bisect``).

Wraps ``asv find``: REGEX must select one benchmark (a parameter combination may narrow it,
e.g. ``track_backward\\(.manual., .1024x1000.``). Prefer the instruction counts
(``bench_instructions``): they are deterministic, so the search cannot be led astray by
noise; ``--impl`` counts only that implementation (faster). Prints the first bad commit and
the benchmark's values before and after it. Exit status 0, 2 with a one-line error (GOOD not
an ancestor of BAD, unknown revision), or 3 (asv failed, nothing found).
"""

from __future__ import annotations

import os

from lossbench import bisect
from lossbench.machine import machine_name
from lossbench.options import add_asv_options, echo


def add_parser(sub) -> None:
    p = sub.add_parser("bisect", help="first bad commit (asv find)", description=__doc__)
    p.add_argument("good", help="a commit without the regression")
    p.add_argument("bad", help="a later commit with it")
    p.add_argument("--bench", required=True, help="regex selecting ONE benchmark")
    p.add_argument("--impl", default=None, help="count instructions of this impl only")
    add_asv_options(p, "python -m lossbench machine", repo=True)
    p.set_defaults(func=main)


def main(args) -> int:
    from lossbench.gate import format_value

    found = bisect.bisect(
        os.path.abspath(args.repo),
        args.good,
        args.bad,
        args.bench,
        args.machine or machine_name(),
        conf_file=args.config,
        launch_method=args.launch_method,
        impl=args.impl,
        echo=echo,
    )
    print(f"first bad commit: {found.commit} {found.subject}")
    for params, before, after in found.values:
        if before is not None and before > 0:
            print(f"  ({params}): {before:.6g} -> {after:.6g} ({after / before:.3f}x)")
        else:
            print(f"  ({params}): {format_value(after, '')} (no value before)")
    return 0
