"""``python -m lossbench ratios``: speed and memory ratios of the registered implementations.

    python -m lossbench ratios            # 3200x3200 and 4096x32000, float32 and float64
    python -m lossbench ratios --quick    # 3200x3200 only, fewer repeats

A quick check for a person, and with ``--record`` the docs' speed and memory tables (the asv
suite tracks the same across commits). Every implementation in
``softmaxloss.IMPLEMENTATIONS`` is timed by ``harness.time_impls`` (the timing of
``compare``: non-leaf logits, warm-up, interleaved rounds, medians) on the seed's inputs
(``harness.seed_case``). Peak extra memory is ``harness.extra_bytes`` (the method of asv's
``track_extra_bytes``), in units of one logits buffer, measured in a fresh process per case:
the method changes glibc's allocator for the rest of the process, which would slow the
timings.
"""

from __future__ import annotations

import json
import multiprocessing

import torch

from lossbench import harness, tables
from lossbench.errors import UsageError, describe
from lossbench.options import add_record_option, parse_choices, positive_int, refuse_existing
from lossbench.record import Recorder
from softmaxloss import IMPLEMENTATIONS

RATIO_DTYPES = tuple(harness.DTYPES)  # --dtype with --size; peak memory in buffers of it
QUICK_CASES = [(3200, 3200, "float32"), (3200, 3200, "float64")]
FULL_CASES = [*QUICK_CASES, (4096, 32000, "float32"), (4096, 32000, "float64")]

# (label, numerator impl, denominator impl, measure): lower is better, as everywhere in the
# docs: < 1 means the numerator (the first named) needs less time or memory.
RATIOS = [
    ("fused / torch (fwd+bwd)", "fused", "torch", "total"),
    ("fused_inplace / torch (fwd+bwd)", "fused_inplace", "torch", "total"),
    ("manual / torch (fwd+bwd)", "manual", "torch", "total"),
    ("manual / autograd (backward)", "manual", "autograd", "backward"),
    ("naive_manual / naive_autograd (backward)", "naive_manual", "naive_autograd", "backward"),
    ("fused / torch (peak extra memory)", "fused", "torch", "memory"),
    ("fused_inplace / torch (peak extra memory)", "fused_inplace", "torch", "memory"),
]
RATIO_HEADER = "ratio (< 1: the first is better)"


def add_parser(sub):
    p = sub.add_parser(
        "ratios",
        help="speed and peak-memory ratios of every registered impl (seed-sized and LM-sized)",
        description=__doc__.splitlines()[0],
    )
    p.add_argument("--quick", action="store_true", help="3200x3200 only, 5 repeats")
    p.add_argument("--size", type=int, default=None, help="one case of N rows instead")
    p.add_argument("--classes", type=int, default=None, help="classes C of --size (default N)")
    p.add_argument(
        "--dtype",
        default="float32,float64",
        help=f"with --size: comma-separated {'/'.join(RATIO_DTYPES)}",
    )
    p.add_argument("--repeats", type=int, default=None, help="timed runs (default 9, quick 5)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    p.add_argument("--json", metavar="FILE", help="also write the numbers to FILE (a new file)")
    add_record_option(p)
    p.set_defaults(func=run)
    return p


def _peak_buffers(names, rows, classes, dtype) -> dict:
    """Runs in a fresh process: ``{name: peak extra memory in logits buffers or None}``."""
    torch.set_num_threads(1)
    x, target = harness.seed_case(rows, classes, dtype)
    buffer = x.numel() * x.element_size()
    out = {}
    for name in names:
        fn = IMPLEMENTATIONS.get(name)
        try:
            out[name] = harness.extra_bytes(fn, x, target) / buffer if fn else None
        except Exception:  # cannot run here (e.g. an unsupported dtype): no number
            out[name] = None
    return out


def peak_extra_buffers(names, rows, classes, dtype) -> dict:
    """``_peak_buffers`` in a fresh (spawned) process; every value None if it dies."""
    ctx = multiprocessing.get_context("spawn")
    try:
        with ctx.Pool(1) as pool:
            return pool.apply(_peak_buffers, (list(names), rows, classes, dtype))
    except Exception:
        return dict.fromkeys(names)


def measure_case(rows, classes, dtype, repeats, memory=True, impls=None) -> dict:
    """Times (and measures) one case; returns plain values (seconds, buffers, ratios)."""
    impls = dict(IMPLEMENTATIONS if impls is None else impls)
    x, target = harness.seed_case(rows, classes, dtype)
    timings = harness.time_impls(impls, x, target, repeats)
    seconds = {
        name: None
        if isinstance(t, Exception)
        else {"forward": t.forward, "backward": t.backward, "total": t.total}
        for name, t in timings.items()
    }
    errors = {n: describe(t) for n, t in timings.items() if isinstance(t, Exception)}
    peaks = peak_extra_buffers(impls, rows, classes, dtype) if memory else {}

    def value(name, what):
        if what == "memory":
            return peaks.get(name)
        return (seconds.get(name) or {}).get(what)

    ratios = {}
    for label, a, b, what in RATIOS:
        if what == "memory" and not memory:
            continue
        va, vb = value(a, what), value(b, what)
        ratios[label] = va / vb if va is not None and vb else None
    return {
        "shape": [rows, classes],
        "dtype": dtype,
        "threads": torch.get_num_threads(),
        "repeats": repeats,
        "seconds": seconds,
        "errors": errors,
        "peak_extra_buffers": peaks,
        "ratios": ratios,
    }


def format_case(case) -> str:
    rows, classes = case["shape"]
    title = (
        f"{rows}x{classes} {case['dtype']}, {case['threads']} threads, median of {case['repeats']}"
    )
    header = ["impl", "forward ms", "backward ms", "fwd+bwd ms", "peak extra (buffers)"]
    body = []
    for name, t in case["seconds"].items():
        peak = case["peak_extra_buffers"].get(name)
        peak = "-" if peak is None else f"{peak:.2f}"
        if t is None:
            body.append([name, "cannot run", "", "", peak])
        else:
            ms = [f"{t[k] * 1e3:.2f}" for k in ("forward", "backward", "total")]
            body.append([name, *ms, peak])
    ratios = [[label, "n/a" if r is None else f"{r:.2f}x"] for label, r in case["ratios"].items()]
    return "\n".join(
        [
            tables.render(header, body, title=title, right=(1, 2, 3, 4)),
            tables.render([RATIO_HEADER, ""], ratios, right=(1,)),
        ]
    )


def _cases(args) -> list[tuple[int, int, str]]:
    if args.size is None:
        if args.classes is not None:
            raise UsageError("--classes needs --size")
        return QUICK_CASES if args.quick else FULL_CASES
    positive_int(args.size, "--size")
    classes = args.size if args.classes is None else args.classes
    positive_int(classes, "--classes")
    return [(args.size, classes, d) for d in parse_choices("--dtype", args.dtype, RATIO_DTYPES)]


def run(args) -> int:
    cases = _cases(args)
    repeats = args.repeats if args.repeats is not None else (5 if args.quick else 9)
    positive_int(repeats, "--repeats")
    if args.threads is not None:
        positive_int(args.threads, "--threads")
    refuse_existing("--json", args.json)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    recorder = Recorder(args.argv) if args.record else None
    results = []
    for rows, classes, dtype in cases:
        case = measure_case(rows, classes, dtype, repeats, memory=not args.no_memory)
        results.append(case)
        print(format_case(case), end="\n\n", flush=True)
    if args.json:
        with open(args.json, "x") as fh:
            json.dump(results, fh, indent=1)
    if recorder:
        recorder.write(args.record, results)
    return 0
