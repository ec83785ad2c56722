"""``python -m lossbench overhead``: forward+backward of every registered implementation as a
ratio to ``F.cross_entropy`` (the ``torch`` entry), over the gate's sizes.

    python -m lossbench overhead                  # 128x100, 1024x1000, 3200x3200; 1 thread
    python -m lossbench overhead --rounds 3       # three independent measurements: ranges

Small inputs are where per-call overhead (argument checks, tiny tensor ops) shows: this is
the table for it. The baseline is the registry's ``torch`` entry (``F.cross_entropy`` behind
the same argument checks as every entry); the column ``F.cross_entropy direct`` is F called
without them, timed in the same rounds. Timing is ``harness.time_impls`` (non-leaf logits
made outside the timed region, interleaved rounds, medians) after one full-size warm-up call
of each entry, so ``torch.compile`` entries are timed compiled, not compiling. Each size
gets about the same time budget (``--budget`` seconds of ``torch`` calls). With ``--rounds
R`` the whole measurement is repeated R times and every cell shows the range of the R
medians. The output is a Markdown table."""

from __future__ import annotations

import json

import torch
import torch.nn.functional as F

from lossbench import harness, tables
from lossbench.errors import UsageError, describe
from lossbench.options import add_record_option, positive_int, refuse_existing
from lossbench.record import Recorder
from softmaxloss import IMPLEMENTATIONS, _cpu_ext

SIZES = ("128x100", "1024x1000", "3200x3200")
BASELINE = "torch"
# F.cross_entropy called directly, timed beside the entries: the baseline ``torch`` entry
# runs the registry's argument checks first (as every entry does), this column shows what
# they cost.
DIRECT = "F.cross_entropy direct"


def add_parser(sub):
    p = sub.add_parser(
        "overhead",
        help="forward+backward of every registered impl as a ratio to F.cross_entropy, "
        "small to seed-sized (Markdown)",
        description=__doc__.splitlines()[0],
    )
    p.add_argument(
        "--sizes",
        default=",".join(SIZES),
        help="comma-separated ROWSxCLASSES (default: %(default)s)",
    )
    p.add_argument("--dtype", choices=sorted(harness.DTYPES), default="float32")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--rounds", type=int, default=1, help="independent measurements (ranges)")
    p.add_argument(
        "--budget", type=float, default=1.0, help="seconds of torch calls per size and round"
    )
    p.add_argument(
        "--impls", default=None, help="comma-separated registry names (default: every entry)"
    )
    p.add_argument("--json", metavar="FILE", help="also write the numbers to FILE (a new file)")
    add_record_option(p)
    p.set_defaults(func=run)
    return p


def parse_sizes(text: str) -> list[tuple[int, int]]:
    sizes = []
    for item in text.split(","):
        rows, sep, classes = item.strip().partition("x")
        if not sep or not rows.isdigit() or not classes.isdigit() or not int(rows) * int(classes):
            raise UsageError(f"--sizes must be ROWSxCLASSES items like 128x100, got {item!r}")
        sizes.append((int(rows), int(classes)))
    return sizes


def measure_size(impls: dict, rows, classes, dtype, device, budget) -> dict:
    """``{name: fwd+bwd median seconds, or 'ErrorType: message'}`` for one size."""
    x, target = harness.seed_case(rows, classes, dtype, device=device)
    errors = {}
    for name, fn in impls.items():  # full-size warm-up: compilation, allocator pools
        try:
            harness.time_one(fn, x, target, device)
        except Exception as exc:  # reported, not timed
            errors[name] = describe(exc)
    live = {n: f for n, f in impls.items() if n not in errors}
    probe = min(sum(harness.time_one(live[BASELINE], x, target, device)) for _ in range(3))
    repeats = max(5, min(1000, int(budget / max(probe, 1e-6))))
    timings = harness.time_impls(live, x, target, repeats, device)
    out = {}
    for name in impls:
        t = timings.get(name)
        if name in errors:
            out[name] = errors[name]
        elif isinstance(t, Exception):
            out[name] = describe(t)
        else:
            out[name] = t.total
    return {"repeats": repeats, "seconds": out}


def _fmt_time(seconds: float) -> str:
    return f"{seconds * 1e6:.0f} µs" if seconds < 1e-3 else f"{seconds * 1e3:.1f} ms"


def _range(values, fmt) -> str:
    lo, hi = min(values), max(values)
    return fmt(lo) if fmt(lo) == fmt(hi) else f"{fmt(lo)}-{fmt(hi)}"


def markdown(results: list[dict], names: list[str]) -> str:
    """One row per size: the baseline's time, then each entry's ratio to it (ranges)."""
    header = ["size", f"`F.cross_entropy` ({BASELINE})"]
    header += [f"`{n}`" for n in names if n != BASELINE]
    lines = []
    for size in results[0]:
        rounds = [r[size]["seconds"] for r in results]
        base = [s[BASELINE] for s in rounds]
        cells = [size, _range(base, _fmt_time)]
        for name in names:
            if name == BASELINE:
                continue
            vals = [s[name] for s in rounds]
            if any(isinstance(v, str) for v in vals):
                cells.append("cannot run")
                continue
            ratios = [v / b for v, b in zip(vals, base, strict=True)]
            cells.append(_range(ratios, lambda r: f"{r:.2f}x"))
        lines.append(cells)
    return tables.render(header, lines, markdown=True)


def run(args) -> int:
    sizes = parse_sizes(args.sizes)
    positive_int(args.threads, "--threads")
    positive_int(args.rounds, "--rounds")
    if not args.budget > 0:
        raise UsageError(f"--budget must be positive, got {args.budget}")
    refuse_existing("--json", args.json)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: torch.cuda.is_available() is False")
    if BASELINE not in IMPLEMENTATIONS:
        raise UsageError(f"the registry has no {BASELINE!r} entry to compare with")
    impls = dict(IMPLEMENTATIONS)
    if args.impls is not None:
        names = [n.strip() for n in args.impls.split(",") if n.strip()]
        unknown = [n for n in names if n not in IMPLEMENTATIONS]
        if unknown or not names:
            raise UsageError(
                f"--impls: unknown {', '.join(map(repr, unknown)) or 'empty list'}; "
                f"registered: {', '.join(IMPLEMENTATIONS)}"
            )
        impls = {n: IMPLEMENTATIONS[n] for n in dict.fromkeys([BASELINE, *names])}
    impls[DIRECT] = F.cross_entropy
    torch.set_num_threads(args.threads)
    recorder = Recorder(args.argv) if args.record else None
    results = []
    for _ in range(args.rounds):
        results.append(
            {
                f"{r}x{c}": measure_size(impls, r, c, args.dtype, args.device, args.budget)
                for r, c in sizes
            }
        )
    print(
        f"forward+backward, ratio to F.cross_entropy; {args.dtype}, {args.device}, "
        f"{args.threads} thread(s), torch {torch.__version__}, {args.rounds} round(s); "
        f"small CPU calls: {_cpu_ext.status()}"
    )
    print(markdown(results, list(impls)))
    if args.json:
        with open(args.json, "x") as fh:
            json.dump(results, fh, indent=1)
    if recorder:
        recorder.write(
            args.record,
            {
                "dtype": args.dtype,
                "device": args.device,
                "threads": args.threads,
                "baseline": BASELINE,
                "direct": DIRECT,
                "small_calls": _cpu_ext.status(),
                "rounds": results,
            },
        )
    return 0
