"""``python -m lossbench torch-versions``: one commit's results, torch version against version.

Exit status: 0 no regression, 1 at least one ratio above ``--factor``, 2 a usage error or
nothing comparable.
"""

from __future__ import annotations

from lossbench import torch_versions
from lossbench.errors import EXIT_OK, EXIT_REGRESSION, UsageError


def add_parser(sub):
    p = sub.add_parser(
        "torch-versions",
        help="ratio table of one commit's asv results between two torch versions",
        description=torch_versions.__doc__.splitlines()[0],
    )
    p.add_argument("commit", nargs="?", default="HEAD")
    p.add_argument("--config", default="asv.torch-versions.conf.json")
    p.add_argument("--machine", required=True)
    p.add_argument("--base", default="2.13.0")
    p.add_argument("--other", default="2.14.1")
    p.add_argument("--factor", type=float, default=2.0)
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    if not args.factor > 1:
        raise UsageError(f"--factor must be > 1, got {args.factor}")
    found = torch_versions.load_values(args.config, args.machine, args.commit)
    missing = [v for v in (args.base, args.other) if v not in found]
    if missing:
        raise UsageError(
            f"no results for torch {', '.join(missing)} at {args.commit} on machine "
            f"{args.machine!r} (found: {', '.join(sorted(found)) or 'none'})"
        )
    rows = torch_versions.compare(found[args.base], found[args.other], args.factor)
    if not rows:
        raise UsageError("no benchmark measured under both versions")
    print(torch_versions.render(rows, args.base, args.other, args.factor))
    bad = [r for r in rows if r[5]]
    print(f"{len(bad)} of {len(rows)} results regressed beyond {args.factor}x")
    return EXIT_REGRESSION if bad else EXIT_OK
