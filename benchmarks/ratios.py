"""Speed and memory ratios of the registered implementations, measured in one run.

    python benchmarks/ratios.py            # 3200x3200 and 4096x32000, float32 and float64
    python benchmarks/ratios.py --quick    # 3200x3200 only, fewer repeats

A quick check for a person; the asv suite stays the record. Every implementation in
``softmaxloss.IMPLEMENTATIONS`` is timed, plus ``fused`` in its opt-in in-place mode. All are
fed the same non-leaf logits (``leaf.clone()``, as the output of a layer would be), rounds are
interleaved so drifting machine load hits every implementation alike, and the median is kept.

Peak memory is measured in a fresh subprocess per implementation: the growth of the
process's peak resident set (``VmHWM``, reset just before) over a forward+backward, in
units of one logits buffer, after a warm-up on a small input so lazily loaded code does not
count.

Not an asv benchmark module: it defines no ``time_``/``peakmem_``/``track_`` names, and
everything here runs under ``if __name__ == "__main__"``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import torch

import softmaxloss

DTYPES = {"float32": torch.float32, "float64": torch.float64}
INPLACE = "fused (inplace)"


def _impls() -> dict:
    impls = dict(softmaxloss.IMPLEMENTATIONS)
    if "fused" in impls:
        impls[INPLACE] = lambda x, t: softmaxloss.cross_entropy(x, t, impl="fused", inplace=True)
    return impls


def _data(rows, classes, dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, classes, generator=gen, dtype=torch.float32).to(dtype)
    return x, torch.randint(0, classes, (rows,), generator=gen)


def _one_run(fn, x, target):
    leaf = x.clone().requires_grad_(True)
    logits = leaf.clone()  # a non-leaf, like a layer's output
    t0 = time.perf_counter()
    loss = fn(logits, target)
    t1 = time.perf_counter()
    loss.backward()
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1


def measure_times(impls, rows, classes, dtype, repeats):
    x, target = _data(rows, classes, dtype)
    runs = {name: [] for name in impls}
    for name, fn in impls.items():  # warm-up, and drop what cannot run here
        try:
            _one_run(fn, x[:8], target[:8].clamp(max=classes - 1))
        except (TypeError, NotImplementedError, RuntimeError) as exc:
            runs[name] = exc
    for _ in range(repeats):
        for name, fn in impls.items():
            if isinstance(runs[name], list):
                runs[name].append(_one_run(fn, x, target))
    out = {}
    for name, r in runs.items():
        if isinstance(r, Exception):
            out[name] = None
            continue
        out[name] = {
            "forward": statistics.median(f for f, _ in r),
            "backward": statistics.median(b for _, b in r),
            "total": statistics.median(f + b for f, b in r),
        }
    return out


def _peak_rss() -> int:
    """This process's peak resident set in bytes (VmHWM; Linux).

    Not ``ru_maxrss``: that one is inherited from the parent across fork+exec.
    """
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _peak_child(name, rows, classes, dtype) -> int:
    """Runs in a subprocess: bytes of peak RSS growth over one forward+backward."""
    fn = _impls()[name]
    small, small_t = _data(16, classes, DTYPES[dtype])
    _one_run(fn, small, small_t)  # load kernels and allocator pools first
    x, target = _data(rows, classes, DTYPES[dtype])
    leaf = x.requires_grad_(True)
    logits = leaf.clone()
    del x
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # resets VmHWM to the current resident set
    before = _peak_rss()
    fn(logits, target).backward()
    return _peak_rss() - before


def peak_extra(name, rows, classes, dtype) -> float | None:
    """Peak memory over the inputs, in logits-sized buffers (None if it cannot run)."""
    cmd = [sys.executable, __file__, "--_peak", name, str(rows), str(classes), dtype]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode:
        return None
    buffer = rows * classes * DTYPES[dtype].itemsize
    return int(res.stdout.strip()) / buffer


def _ratio(a, b):
    return f"{a / b:6.2f}x" if a and b else "   n/a"


def report(rows, classes, dtype, repeats, memory) -> dict:
    impls = _impls()
    times = measure_times(impls, rows, classes, DTYPES[dtype], repeats)
    peaks = {n: peak_extra(n, rows, classes, dtype) for n in impls} if memory else {}
    print(f"\n{rows}x{classes} {dtype}, {torch.get_num_threads()} threads, median of {repeats}")
    print(f"{'impl':<18}{'forward ms':>12}{'backward ms':>13}{'fwd+bwd ms':>12}{'peak extra':>12}")
    for name, t in times.items():
        peak = peaks.get(name)
        peak_s = f"{peak:9.2f} buf" if peak is not None else "           -"
        if t is None:
            print(f"{name:<18}{'cannot run':>37}{peak_s}")
            continue
        print(
            f"{name:<18}{t['forward'] * 1e3:>12.2f}{t['backward'] * 1e3:>13.2f}"
            f"{t['total'] * 1e3:>12.2f}{peak_s}"
        )

    def total(n):
        return times.get(n) and times[n]["total"]

    def bwd(n):
        return times.get(n) and times[n]["backward"]

    ratios = {
        "torch / fused (fwd+bwd)": (total("torch"), total("fused")),
        "torch / fused inplace (fwd+bwd)": (total("torch"), total(INPLACE)),
        "torch / manual (fwd+bwd)": (total("torch"), total("manual")),
        "autograd / manual (backward)": (bwd("autograd"), bwd("manual")),
        "naive_autograd / naive_manual (backward)": (bwd("naive_autograd"), bwd("naive_manual")),
    }
    if memory:
        ratios["torch / fused (peak extra memory)"] = (peaks.get("torch"), peaks.get("fused"))
    print("ratios (> 1: the second is better):")
    for label, (a, b) in ratios.items():
        print(f"  {label:<44}{_ratio(a, b)}")
    return {
        "shape": [rows, classes],
        "dtype": dtype,
        "seconds": times,
        "peak_extra_buffers": peaks,
        "ratios": {k: (a / b if a and b else None) for k, (a, b) in ratios.items()},
    }


def main(argv=None) -> int:
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "--_peak":
        name, rows, classes, dtype = sys.argv[2:6]
        print(_peak_child(name, int(rows), int(classes), dtype))
        return 0
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="3200x3200 only, 5 repeats")
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    p.add_argument("--json", metavar="FILE", help="also write the numbers to FILE")
    args = p.parse_args(argv)
    if args.threads is not None:
        if args.threads <= 0:
            p.error(f"--threads must be positive, got {args.threads}")
        torch.set_num_threads(args.threads)
    cases = [(3200, 3200, "float32"), (3200, 3200, "float64")]
    if not args.quick:
        cases += [(4096, 32000, "float32"), (4096, 32000, "float64")]
    repeats = args.repeats or (5 if args.quick else 9)
    results = [report(r, c, d, repeats, not args.no_memory) for r, c, d in cases]
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
