"""``python -m lossbench compare``: the seed's experiment, for every registered implementation.

Defaults follow the seed: 3200 x 3200 standard-normal logits, targets ``arange(N) % C``.
For each implementation in ``softmaxloss.IMPLEMENTATIONS`` it reports the loss, the loss and
gradient errors in eps of the logits' dtype (``--dtype``: float16, bfloat16, float32 or
float64) against the extended-precision reference, and the median forward and
backward seconds (``harness.time_impls``: the timing ``ratios`` uses too), plus the seed's
metric, the L1 distance between the ``manual`` and ``autograd`` gradients.

JSON output never contains ``Infinity``/``NaN``: non-finite numbers are written as ``null``.
An implementation that raises is reported with its error message, not dropped.
"""

from __future__ import annotations

import json
import math

import torch

from lossbench import harness, tables
from lossbench.errors import UsageError, describe
from lossbench.options import add_record_option, positive_int
from lossbench.record import Recorder
from lossbench.reference import grad_l1_distance, measure, reference_loss_and_grad
from softmaxloss import IMPLEMENTATIONS

COMPARE_DTYPES = tuple(harness.DTYPES)  # the seed's case in any dtype; errors in its eps


def add_parser(sub):
    p = sub.add_parser("compare", help="the seed's manual-vs-autograd experiment, every impl")
    p.add_argument("--size", type=int, default=3200, help="rows N (default 3200)")
    p.add_argument("--classes", type=int, default=None, help="classes C (default: N)")
    p.add_argument("--dtype", choices=COMPARE_DTYPES, default="float32")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=5, help="timed runs per impl (median)")
    p.add_argument("--scale", type=float, default=1.0, help="multiply the logits by this")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    add_record_option(p)
    p.set_defaults(func=run)
    return p


def _finite_or_none(value):
    return value if isinstance(value, float) and math.isfinite(value) else None


def compare(size=3200, classes=None, dtype="float32", device="cpu", seed=0, repeats=5, scale=1.0):
    """Runs the experiment; returns the report as a dict of plain Python values."""
    classes = size if classes is None else classes
    x, target = harness.seed_case(size, classes, dtype, seed, scale, device)
    reference = reference_loss_and_grad(x, target)
    out = {
        "config": {
            "size": size,
            "classes": classes,
            "dtype": dtype,
            "device": device,
            "seed": seed,
            "repeats": repeats,
            "scale": scale,
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
        },
        "reference_loss": float(reference[0]),
        "loss": {},
        "loss_error_eps": {},
        "grad_error_eps": {},
        "seconds": {},
        "errors": {},
    }
    impls = dict(IMPLEMENTATIONS)
    reports = {}
    for name, fn in impls.items():
        try:
            reports[name] = measure(fn, x, target, reference)
        except Exception as exc:  # one broken implementation must not hide the others
            out["errors"][name] = describe(exc)
    timings = harness.time_impls({n: impls[n] for n in reports}, x, target, repeats, device)
    grads = {}
    for name, report in reports.items():
        timing = timings[name]
        if isinstance(timing, Exception):
            out["errors"][name] = describe(timing)
            continue
        grads[name] = report.grad
        out["loss"][name] = report.loss
        out["loss_error_eps"][name] = report.loss_error_eps
        out["grad_error_eps"][name] = report.grad_error_eps
        out["seconds"][name] = {"forward": timing.forward, "backward": timing.backward}
    if "manual" in grads and "autograd" in grads:
        out["grad_l1_distance"] = grad_l1_distance(grads["manual"], grads["autograd"])
    else:
        out["grad_l1_distance"] = math.nan
    if "naive_manual" in grads and "naive_autograd" in grads:
        out["naive_grad_l1_distance"] = grad_l1_distance(
            grads["naive_manual"], grads["naive_autograd"]
        )
    return out


def _json_safe(obj):
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, float):
        return _finite_or_none(obj)
    return obj


def format_table(rep) -> str:
    cfg = rep["config"]
    title = (
        f"softmax cross-entropy, {cfg['size']}x{cfg['classes']} {cfg['dtype']} on "
        f"{cfg['device']} (seed {cfg['seed']}, torch {cfg['torch']}, "
        f"{cfg['threads']} threads, median of {cfg['repeats']})\n"
        f"exact reference loss: {rep['reference_loss']:.17g}"
    )
    header = ["impl", "loss", "loss err (eps)", "grad err (eps)", "forward (ms)", "backward (ms)"]
    rows = [
        [
            name,
            f"{loss:.17g}",
            f"{rep['loss_error_eps'][name]:.3g}",
            f"{rep['grad_error_eps'][name]:.3g}",
            f"{rep['seconds'][name]['forward'] * 1e3:.2f}",
            f"{rep['seconds'][name]['backward'] * 1e3:.2f}",
        ]  # fmt: skip
        for name, loss in rep["loss"].items()
    ]
    rows += [[name, f"failed: {err}", "", "", "", ""] for name, err in rep["errors"].items()]
    lines = [title, tables.render(header, rows, right=range(1, 6)), ""]
    lines.append(
        f"L1 distance of gradients, manual vs autograd: {rep['grad_l1_distance']:.3g}"
        + (
            f"   (naive_manual vs naive_autograd: {rep['naive_grad_l1_distance']:.3g})"
            if "naive_grad_l1_distance" in rep
            else ""
        )
    )
    sec = rep["seconds"]
    if "manual" in sec and "autograd" in sec:
        ratio = sec["manual"]["backward"] / sec["autograd"]["backward"]
        lines.append(f"backward time, manual / autograd: {ratio:.2f}x (< 1: manual is faster)")
    return "\n".join(lines)


def run(args) -> int:
    positive_int(args.size, "--size")
    if args.classes is not None:
        positive_int(args.classes, "--classes")
    positive_int(args.repeats, "--repeats")
    if not math.isfinite(args.scale):
        raise UsageError(f"--scale must be finite, got {args.scale}")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available here")
    recorder = Recorder(args.argv) if args.record else None
    rep = compare(
        args.size, args.classes, args.dtype, args.device, args.seed, args.repeats, args.scale
    )
    if args.json:
        print(json.dumps(_json_safe(rep), allow_nan=False))
    else:
        print(format_table(rep))
    if recorder:
        recorder.write(args.record, rep)
    return 0
