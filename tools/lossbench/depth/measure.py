"""Measurement: every implementation's per-layer gradients against each other (twins) and
against the exact gradient, for trained networks of several depths and dtypes."""

from __future__ import annotations

import copy
import math

import numpy as np
import torch

from lossbench.depth.data import load_synthetic
from lossbench.depth.exact import exact_gradients
from lossbench.depth.model import linears, make_mlp, train
from lossbench.harness import DTYPES
from softmaxloss import IMPLEMENTATIONS

_LD = np.longdouble


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
    progress=None,
):
    """Trains one network per depth and measures it in every dtype; returns rows, notes.

    ``progress``: None, or a bar with ``set_description(text)`` and ``update(n)`` (tqdm's),
    advanced once per training and once per dtype measured.
    """
    n_test = dataset.test_y.shape[0]
    x64, y = dataset.batch("test", np.arange(min(batch, n_test)))
    rows, notes = [], []
    for depth in depths:
        _step(progress, f"depth {depth}: training")
        model = make_mlp(dataset.features, width, depth, dataset.classes, seed)
        train(model, dataset, steps, batch, lr, seed)
        _step(progress, None)
        for dtype in dtypes:
            _step(progress, f"depth {depth}: {dtype}")
            r, n = measure_network(model, x64, y, dtype, logit_scale, impls)
            rows += r
            notes += [m for m in n if m not in notes]
            _step(progress, None)
    return rows, notes


def _step(bar, description) -> None:
    if bar is None:
        return
    if description is None:
        bar.update(1)
    else:
        bar.set_description(description)


def first_layer_error(fn, dtype: str, depth: int, logit_scale: float) -> float:
    """The asv depth benchmark's measurement: ``fn``'s first-layer gradient error, in eps.

    A seeded MLP of ``depth`` hidden layers (width 32) on the synthetic Gaussian mixture
    (512 training rows), trained for 30 float64 Adam steps (batch 128, lr 1e-2), rounded to
    ``dtype``; ``fn``'s loss of ``logit_scale`` times its output on 128 test rows is
    back-propagated, and the first layer's gradient (farthest from the loss) is compared with
    the exact one: ``max|g - g*| / max(max|g*|, tiny) / eps``, ``inf`` if not finite.
    Single-threaded and seeded: the same commit gives the same number. Raises what ``fn``
    raises (``UnsupportedDtypeError`` for a dtype it refuses).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        tdtype = DTYPES[dtype]
        ds = load_synthetic(seed=0, n_train=512, n_test=128)
        model = make_mlp(ds.features, 32, depth, ds.classes, seed=0)
        train(model, ds, steps=30, batch=128, lr=1e-2, seed=0)
        x64, y = ds.batch("test", np.arange(128))
        net = model.to(tdtype)
        x = torch.from_numpy(x64).to(tdtype)
        _, exact_layers = exact_gradients(net, x, y, float(logit_scale))
        _, got_layers = implementation_gradients(
            net, x, torch.from_numpy(y), float(logit_scale), fn
        )
    finally:
        torch.set_num_threads(threads)
    info = torch.finfo(tdtype)
    scale = max(float(np.abs(exact_layers[0]).max(initial=0)), info.tiny)
    return _rel(got_layers[0], exact_layers[0], scale) / info.eps
