r"""The depth experiment: how the gradient difference flows back through network depth.

The seed's second experiment ("compute difference of gradient with increasing of depth"),
defined here as follows.

Network
    A multilayer perceptron on flattened, standardised images: ``d`` hidden blocks
    ``Linear(width) + ReLU`` and an output ``Linear(classes)``, so ``d + 1`` weight layers;
    logits are ``logit_scale * output``. He-normal weights (std ``sqrt(2 / fan_in)``), zero
    biases: activations keep their scale with depth, so a trend with depth is the gradient's,
    not a shrinking signal's. Linear + ReLU is the element every deeper model repeats (a
    convolution is a linear map too), it costs nothing on a CPU even for CIFAR-10's 3,072
    inputs, and its exact backward is a few lines of extended-precision numpy.

Training
    ``steps`` Adam steps (float64, ``F.cross_entropy``, minibatches of the training split) from
    the seeded initialisation, then the gradients are measured on a fixed batch of the test
    split. A trained network has confident logits (softmax near one-hot), the regime where
    ``softmax - onehot`` cancels and implementations differ; at initialisation every
    probability is about 1/C. ``--steps 0`` measures at initialisation.

Measurement, per depth and dtype
    The float64 weights are rounded to the dtype once; every implementation in
    ``softmaxloss.IMPLEMENTATIONS`` then computes the loss of the *same* rounded network on the
    *same* batch, and the gradient is back-propagated through the dtype network by autograd.
    For the logits and for every Linear layer (weight and bias together) it records

    * ``A_vs_B``: the difference between twin implementations' gradients (``manual`` vs
      ``autograd``, ``naive_manual`` vs ``naive_autograd``; pairs found by name in the
      registry). Both run the identical network in the identical dtype, so this is exactly
      the loss-level difference, carried back through the layers.
    * ``I_vs_exact``: implementation ``I`` against the exact gradient: the same rounded
      weights and inputs, forward and backward through the whole network in numpy
      ``longdouble`` (x86-64: 64-bit significand, eps 1.1e-19), with the exact
      cross-entropy gradient at the logits. This is the total error a user sees (network
      rounding included), resolved far below float64's eps.

    Both as normwise relative errors ``max|g - h| / max(max|g*|, tiny)`` (``g*`` the exact
    gradient of that layer; columns ``*_rel``) and in units of the dtype's eps (``*_eps``).
    A non-finite gradient (the naive pair overflowing at large logits) is recorded as
    ``inf``, never dropped; an implementation that refuses a dtype (``TypeError``, e.g. the
    naive pair in float16) is skipped with a note and leaves its columns empty.

Rows: ``layer`` is ``1 .. d+1`` counted from the input (``d+1`` is the output layer) or
``logits`` for the gradient at the logits; ``back`` counts the steps from the loss
(0 = logits, 1 = output layer, ``d+1`` = first layer), the x axis of the plot.
"""

from __future__ import annotations

import copy
import csv
import math
import sys

import numpy as np
import torch

from softmaxloss.harness import DTYPES
from softmaxloss.registry import IMPLEMENTATIONS

_LD = np.longdouble


# ---------------------------------------------------------------------------------------------
# Argument parsing helpers


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


def parse_dtypes(text: str) -> list[str]:
    items = [s.strip() for s in str(text).split(",")]
    bad = [s for s in items if s not in DTYPES]
    if bad or not items:
        raise ValueError(
            f"--dtype must be a comma-separated list from {tuple(DTYPES)}, got {text!r}"
        )
    return list(dict.fromkeys(items))


# ---------------------------------------------------------------------------------------------
# The network, its training, and the exact backward


def make_mlp(in_features: int, width: int, depth: int, classes: int, seed: int):
    """``depth`` x (Linear(width) + ReLU) + Linear(classes), He-normal init, float64."""
    gen = torch.Generator().manual_seed(seed)
    layers, fan_in = [], in_features
    for _ in range(depth):
        layers += [torch.nn.Linear(fan_in, width, dtype=torch.float64), torch.nn.ReLU()]
        fan_in = width
    layers.append(torch.nn.Linear(fan_in, classes, dtype=torch.float64))
    model = torch.nn.Sequential(*layers)
    with torch.no_grad():
        for lin in linears(model):
            std = math.sqrt(2.0 / lin.in_features)
            lin.weight.copy_(torch.randn(lin.weight.shape, generator=gen, dtype=torch.float64))
            lin.weight.mul_(std)
            lin.bias.zero_()
    return model


def linears(model) -> list:
    return [m for m in model if isinstance(m, torch.nn.Linear)]


def train(model, dataset, steps: int, batch: int, lr: float, seed: int) -> None:
    """``steps`` Adam steps of float64 ``F.cross_entropy`` on seeded training minibatches."""
    if steps <= 0:
        return
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    n = dataset.train_y.shape[0]
    for _ in range(steps):
        idx = rng.choice(n, size=min(batch, n), replace=False)
        xb, yb = dataset.batch("train", np.sort(idx))
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(xb)), torch.from_numpy(yb))
        loss.backward()
        opt.step()


def exact_loss_grad(z: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Gradient of the mean cross-entropy at longdouble logits ``z`` (stable formula)."""
    n = z.shape[0]
    e = np.exp(z - z.max(axis=1, keepdims=True))
    g = e / e.sum(axis=1, keepdims=True)
    g[np.arange(n), target] -= 1
    return g / _LD(n)


def _ld(t: torch.Tensor) -> np.ndarray:
    # every float16/bfloat16/float32/float64 value is exact in float64 and in longdouble
    return t.detach().to(torch.float64).numpy().astype(_LD)


def exact_gradients(model, x: torch.Tensor, target: np.ndarray, logit_scale: float):
    """Exact per-layer gradients of the mean loss of ``logit_scale * model(x)``.

    Forward and backward in numpy longdouble from the model's (already rounded) weights and
    ``x``. Returns ``(logits_grad, [flat grad of layer 1, ..., layer d+1])``; each layer's
    gradient is its weight's gradient, flattened, followed by its bias's.
    """
    lins = linears(model)
    ws = [_ld(m.weight) for m in lins]
    bs = [_ld(m.bias) for m in lins]
    h = _ld(x)
    inputs, pre = [], []
    for i, (w, b) in enumerate(zip(ws, bs, strict=True)):
        inputs.append(h)
        z = h @ w.T + b
        pre.append(z)
        h = np.maximum(z, 0) if i < len(ws) - 1 else z
    k = _LD(logit_scale)
    dlogits = exact_loss_grad(k * h, target)
    g = k * dlogits
    layers = [None] * len(ws)
    for i in reversed(range(len(ws))):
        layers[i] = np.concatenate([(g.T @ inputs[i]).ravel(), g.sum(axis=0)])
        if i > 0:
            g = (g @ ws[i]) * (pre[i - 1] > 0)  # ReLU'(0) = 0, as torch's backward
    return dlogits, layers


def implementation_gradients(model, x, target: torch.Tensor, logit_scale: float, fn):
    """Loss ``fn(logit_scale * model(x), target)`` back-propagated by autograd.

    Returns ``(logits_grad, [flat grad of layer 1, ..., layer d+1])`` as float64 numpy.
    """
    model.zero_grad(set_to_none=True)
    out = model(x)
    logits = out * logit_scale if logit_scale != 1.0 else out
    logits.retain_grad()
    loss = fn(logits, target)
    loss.backward()
    layers = [
        np.concatenate([_np64(m.weight.grad).ravel(), _np64(m.bias.grad)]) for m in linears(model)
    ]
    return _np64(logits.grad), layers


def _np64(t):
    return t.detach().to(torch.float64).numpy()


def _rel(a: np.ndarray, b: np.ndarray, scale: float) -> float:
    """max|a - b| / scale, inf when either is non-finite; differences taken in longdouble."""
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return math.inf
    return float(np.abs(a.astype(_LD) - b.astype(_LD)).max(initial=0)) / scale


def twin_pairs(names) -> list[tuple[str, str]]:
    """Hand-written/autograd twins in the registry: ``X...manual...`` with ``...autograd...``."""
    names = list(names)
    return [
        (n, n.replace("manual", "autograd"))
        for n in names
        if "manual" in n and n.replace("manual", "autograd") in names
    ]


def measure_network(
    model64, x64: np.ndarray, y: np.ndarray, dtype: str, logit_scale: float, impls=None
):
    """All rows for one trained float64 network measured in ``dtype``.

    Returns ``(rows, notes)``: rows are dicts (see ``columns``), notes are skipped impls.
    """
    impls = IMPLEMENTATIONS if impls is None else impls
    tdtype = DTYPES[dtype]
    info = torch.finfo(tdtype)
    net = copy.deepcopy(model64).to(tdtype)
    x = torch.from_numpy(x64).to(tdtype)
    target = torch.from_numpy(y)
    exact_logits, exact_layers = exact_gradients(net, x, y, logit_scale)
    grads, notes = {}, []
    for name, fn in impls.items():
        try:
            grads[name] = implementation_gradients(net, x, target, logit_scale, fn)
        except TypeError as exc:
            notes.append(f"{name} skipped in {dtype}: {exc}")
    depth = len(exact_layers) - 1
    pairs = [p for p in twin_pairs(impls) if p[0] in grads and p[1] in grads]
    rows = []
    for back in range(depth + 2):
        if back == 0:
            layer, kind, ref = "logits", "logits", exact_logits
            pick = 0
        else:
            idx = depth + 1 - back  # 0-based index of the Linear
            layer = str(idx + 1)
            kind = "output" if idx == depth else "hidden"
            ref = exact_layers[idx]
            pick = 1
        scale = max(float(np.abs(ref).max(initial=0)), info.tiny)

        def grad_of(name, pick=pick, back=back):
            g = grads[name]
            return g[0] if pick == 0 else g[1][depth + 1 - back]

        row = {
            "dtype": dtype,
            "logit_scale": logit_scale,
            "depth": depth,
            "layer": layer,
            "kind": kind,
            "back": back,
        }
        for a, b in pairs:
            rel = _rel(grad_of(a), grad_of(b), scale)
            row[f"{a}_vs_{b}_rel"] = rel
            row[f"{a}_vs_{b}_eps"] = rel / info.eps
        for name in impls:
            if name not in grads:
                row[f"{name}_vs_exact_rel"] = None
                row[f"{name}_vs_exact_eps"] = None
                continue
            rel = _rel(grad_of(name), ref, scale)
            row[f"{name}_vs_exact_rel"] = rel
            row[f"{name}_vs_exact_eps"] = rel / info.eps
        rows.append(row)
    return rows, notes


def columns(impl_names) -> list[str]:
    cols = ["dtype", "logit_scale", "depth", "layer", "kind", "back"]
    for a, b in twin_pairs(impl_names):
        cols += [f"{a}_vs_{b}_rel", f"{a}_vs_{b}_eps"]
    for name in impl_names:
        cols += [f"{name}_vs_exact_rel", f"{name}_vs_exact_eps"]
    return cols


def experiment(
    dataset,
    depths,
    dtypes,
    seed=0,
    logit_scale=1.0,
    batch=256,
    width=64,
    steps=200,
    lr=1e-3,
    impls=None,
    progress=False,
):
    """Trains one network per depth and measures it in every dtype; returns rows, notes."""
    n_test = dataset.test_y.shape[0]
    x64, y = dataset.batch("test", np.arange(min(batch, n_test)))
    rows, notes = [], []
    bar = _progress(len(depths) * (1 + len(dtypes)), progress)
    try:
        for depth in depths:
            bar.set_description(f"depth {depth}: training")
            model = make_mlp(dataset.features, width, depth, dataset.classes, seed)
            train(model, dataset, steps, batch, lr, seed)
            bar.update(1)
            for dtype in dtypes:
                bar.set_description(f"depth {depth}: {dtype}")
                r, n = measure_network(model, x64, y, dtype, logit_scale, impls)
                rows += r
                notes += [m for m in n if m not in notes]
                bar.update(1)
    finally:
        bar.close()
    return rows, notes


class _NoBar:
    def set_description(self, *_):
        pass

    def update(self, *_):
        pass

    def close(self):
        pass


def _progress(total, enabled):
    if not enabled:
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:  # progress is a nicety; the experiment runs without it
        return _NoBar()
    return tqdm(total=total, file=sys.stderr, disable=None, leave=False)


# ---------------------------------------------------------------------------------------------
# Output


def write_csv(path, rows, cols) -> None:
    """Every row; ``inf`` is written as ``inf`` (CSV holds it), a skipped impl as empty."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=cols, extrasaction="raise")
        writer.writeheader()
        for row in rows:
            writer.writerow({c: ("" if row.get(c) is None else _csv_value(row[c])) for c in cols})


def _csv_value(v):
    return repr(v) if isinstance(v, float) else v


def plot_panels(impl_names) -> list[tuple[str, str]]:
    """(column, title) of each panel: every twin pair, then each hand-written impl vs exact."""
    panels = [(f"{a}_vs_{b}_eps", f"{a} vs {b}") for a, b in twin_pairs(impl_names)]
    panels += [(f"{n}_vs_exact_eps", f"{n} vs exact") for n in impl_names if "manual" in n]
    return panels


def write_plot(path, rows, impl_names, title="") -> None:
    """Difference (eps, log scale) vs layers back from the loss; one line per depth.

    Non-finite values (NaN/inf gradients) are drawn as crosses along the top edge of the
    panel, values of exactly 0 at a floor of 1e-3 eps; a panel whose values are all 0 says so.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = plot_panels(impl_names)
    dtypes = list(dict.fromkeys(r["dtype"] for r in rows))
    depths = sorted({r["depth"] for r in rows})
    floor = 1e-3
    fig, axes = plt.subplots(
        len(dtypes),
        len(panels),
        figsize=(3.6 * len(panels), 2.9 * len(dtypes)),
        squeeze=False,
        sharex=True,
    )
    cmap = plt.get_cmap("viridis")
    notes = set()
    for i, dtype in enumerate(dtypes):
        for j, (col, name) in enumerate(panels):
            ax = axes[i][j]
            top = ax.get_xaxis_transform()  # x in data, y in axes coordinates
            lines = []
            for k, depth in enumerate(depths):
                sel = sorted(
                    (r for r in rows if r["dtype"] == dtype and r["depth"] == depth),
                    key=lambda r: r["back"],
                )
                pts = [(r["back"], r.get(col)) for r in sel if r.get(col) is not None]
                if pts:
                    lines.append((depth, cmap(k / max(len(depths) - 1, 1)), pts))
            values = [v for _, _, pts in lines for _, v in pts]
            ax.set_yscale("log")
            message = None
            if values and all(v == 0 for v in values):
                message = "0 at every layer and depth\n(bitwise identical)"
            elif values and not any(math.isfinite(v) for v in values):
                message = "NaN/inf at every layer and depth"
            elif not values:
                message = "not measured"
            for depth, color, pts in lines:
                xs = [x for x, _ in pts]
                ys = [max(v, floor) if math.isfinite(v) else math.nan for _, v in pts]
                label = f"d={depth}"
                if message is None:
                    ax.plot(xs, ys, marker="o", ms=3, lw=1.5, color=color, label=label)
                    if any(v == 0 for _, v in pts):
                        notes.add(f"0 drawn at {floor:g} eps")
                else:
                    ax.plot([], [], marker="o", ms=3, lw=1.5, color=color, label=label)
                bad = [x for x, v in pts if not math.isfinite(v)]
                if bad:
                    ax.plot(bad, [0.95] * len(bad), "x", ms=5, color=color, transform=top)
                    notes.add("x on the top edge = non-finite (NaN/inf) gradient")
            if message is not None:
                ax.set_ylim(1e-1, 1e1)
                ax.text(
                    0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, fontsize=9
                )
            ax.grid(True, which="major", alpha=0.3)
            ax.set_title(f"{name} ({dtype})", fontsize=9)
            if j == 0:
                ax.set_ylabel("max|g-h| / max|g*|  (eps)", fontsize=8)
            if i == len(dtypes) - 1:
                ax.set_xlabel("layers back from the loss (0 = logits)", fontsize=8)
            ax.tick_params(labelsize=7)
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        axes[0][0].legend(handles, labels, fontsize=7, title="hidden layers", title_fontsize=7)
    note = "; ".join(sorted(notes))
    fig.suptitle("\n".join(s for s in (title, note) if s), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _fmt(v) -> str:
    if v is None:
        return "-"
    if not math.isfinite(v):
        return "inf"
    return f"{v:.3g}"


def format_table(rows, impl_names) -> str:
    """Short table, in eps: logits, output layer and first layer of each depth."""
    pairs = [f"{a}_vs_{b}_eps" for a, b in twin_pairs(impl_names)]
    impls = [f"{n}_vs_exact_eps" for n in impl_names]
    heads = [c[: -len("_eps")].replace("_vs_", "~").replace("naive_", "n.") for c in pairs]
    heads += [c[: -len("_vs_exact_eps")].replace("naive_", "n.") for c in impls]
    lines = []
    for dtype in dict.fromkeys(r["dtype"] for r in rows):
        sel = [r for r in rows if r["dtype"] == dtype]
        lines.append(
            f"{dtype}, logit scale {sel[0]['logit_scale']:g}: gradient differences in eps "
            f"(A~B: twin impls; others: vs exact)"
        )
        widths = [max(10, len(h) + 2) for h in heads]
        lines.append(
            f"{'depth':>5} {'layer':>7}"
            + "".join(f"{h:>{w}}" for h, w in zip(heads, widths, strict=True))
        )
        for depth in dict.fromkeys(r["depth"] for r in sel):
            for r in sel:
                if r["depth"] != depth or r["layer"] not in ("logits", str(depth + 1), "1"):
                    continue
                label = {"logits": "logits", str(depth + 1): "output", "1": "first"}[r["layer"]]
                if r["layer"] == "1" and depth == 0:
                    continue
                vals = "".join(
                    f"{_fmt(r.get(c)):>{w}}" for c, w in zip(pairs + impls, widths, strict=True)
                )
                lines.append(f"{depth:>5} {label:>7}{vals}")
        lines.append("")
    return "\n".join(lines).rstrip()
