"""``python -m lossbench depth``: the depth experiment's command (see ``lossbench.depth``).

Checks the arguments, loads the data, runs ``depth.experiment`` with a progress bar on
stderr, and writes ``OUT/depth.csv`` and ``OUT/depth.png`` (refusing to overwrite either)
and a short table on stdout.
"""

from __future__ import annotations

import math
import os
import sys

import torch
from tqdm import tqdm

from lossbench import depth
from lossbench.depth.data import DATASETS, DataError, load
from lossbench.errors import UsageError
from lossbench.harness import DTYPES
from lossbench.options import add_record_option, parse_choices, positive_int
from lossbench.record import Recorder
from softmaxloss import IMPLEMENTATIONS


def add_parser(sub):
    p = sub.add_parser(
        "depth",
        help="gradient difference between implementations, layer by layer, vs network depth",
        description="Trains MLPs of several depths briefly, then measures, for every layer, "
        "how the implementations' parameter gradients differ from each other and from the "
        "exact (extended-precision) gradient. Writes OUT/depth.csv and OUT/depth.png.",
    )
    p.add_argument("--dataset", choices=DATASETS, default="digits")
    p.add_argument("--data-dir", default=None, help="CIFAR-10 python batches (or their parent)")
    p.add_argument("--depths", default="1,2,4,8", help="hidden layers, comma-separated")
    p.add_argument(
        "--dtype",
        default="float32,float64",
        help=f"comma-separated, from {', '.join(DTYPES)} (default float32,float64)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--logit-scale", type=float, default=1.0, help="multiply the logits by K")
    p.add_argument("--batch", type=int, default=256, help="test rows measured (default 256)")
    p.add_argument("--width", type=int, default=64, help="hidden units per layer (default 64)")
    p.add_argument("--steps", type=int, default=200, help="training steps first (default 200)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    p.add_argument("--out", required=True, help="output directory (created if missing)")
    add_record_option(p)
    p.set_defaults(func=run)
    return p


def parse_depths(text: str) -> list[int]:
    """``"1,2,4,8"`` -> ``[1, 2, 4, 8]``; positive, distinct integers only."""
    items = [s.strip() for s in str(text).split(",")]
    if not text or not str(text).strip() or any(s == "" for s in items):
        raise ValueError(f"--depths must be comma-separated positive integers, got {text!r}")
    depths = []
    for s in items:
        try:
            d = int(s)
        except ValueError:
            raise ValueError(
                f"--depths must be comma-separated positive integers, got {s!r} in {text!r}"
            ) from None
        if d <= 0:
            raise ValueError(f"--depths must be positive integers (hidden layers), got {d}")
        if d in depths:
            raise ValueError(f"--depths lists {d} twice in {text!r}")
        depths.append(d)
    return depths


def run(args) -> int:
    try:
        depths = parse_depths(args.depths)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    dtypes = parse_choices("--dtype", args.dtype, DTYPES)
    positive_int(args.batch, "--batch")
    positive_int(args.width, "--width")
    if args.steps < 0:
        raise UsageError(f"--steps must be a non-negative integer, got {args.steps}")
    if not (math.isfinite(args.logit_scale) and args.logit_scale > 0):
        raise UsageError(f"--logit-scale must be a finite positive number, got {args.logit_scale}")
    if not (math.isfinite(args.lr) and args.lr > 0):
        raise UsageError(f"--lr must be a finite positive number, got {args.lr}")
    if args.data_dir is not None and args.dataset != "cifar10":
        raise UsageError(f"--data-dir is only read with --dataset cifar10, not {args.dataset}")
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise UsageError(f"--out {args.out!r} exists and is not a directory")
    csv_path = os.path.join(args.out, "depth.csv")
    png_path = os.path.join(args.out, "depth.png")
    for path in (csv_path, png_path):
        if os.path.exists(path):
            raise UsageError(
                f"{path} exists; give a new --out directory (results are never overwritten)"
            )
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError("the depth plot needs matplotlib (pip install matplotlib)") from None
    try:
        dataset = load(args.dataset, args.data_dir, args.seed)
    except DataError as exc:
        raise UsageError(str(exc)) from None
    try:
        os.makedirs(args.out, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out {args.out!r} cannot be created: {exc.strerror}") from None
    impl_names = list(IMPLEMENTATIONS)
    recorder = Recorder(args.argv) if args.record else None
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # reproducible sums whatever the core count; the nets are small
    # progress on stderr, hidden when stderr is not a terminal
    bar = tqdm(total=len(depths) * (1 + len(dtypes)), file=sys.stderr, disable=None, leave=False)
    try:
        rows, notes = depth.experiment(
            dataset,
            depths,
            dtypes,
            seed=args.seed,
            logit_scale=args.logit_scale,
            batch=args.batch,
            width=args.width,
            steps=args.steps,
            lr=args.lr,
            progress=bar,
        )
    finally:
        bar.close()
        torch.set_num_threads(threads)
    n_rows = min(args.batch, dataset.test_y.shape[0])
    depth.write_csv(csv_path, rows, depth.columns(impl_names))
    title = (
        f"{dataset.name}: MLP width {args.width}, {args.steps} Adam steps, {n_rows} test rows, "
        f"logit scale {args.logit_scale:g}, seed {args.seed}"
    )
    depth.write_plot(png_path, rows, impl_names, title)
    print(title)
    print(depth.format_table(rows, impl_names))
    for note in notes:
        print(f"note: {note}")
    print(f"wrote {csv_path} ({len(rows)} rows) and {png_path}")
    if recorder:
        recorder.write(
            args.record,
            {"title": title, "impls": impl_names, "rows": rows, "notes": list(notes)},
        )
    return 0
