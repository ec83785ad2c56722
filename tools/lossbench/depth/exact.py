"""The exact backward: a network's gradients in numpy ``longdouble`` (x86-64: 64-bit
significand, eps 1.1e-19) from its already rounded weights and inputs."""

from __future__ import annotations

import numpy as np
import torch

from lossbench.depth.model import linears
from lossbench.reference import loss_and_grad_ld
from lossbench.reference import to_longdouble as _ld

_LD = np.longdouble


def exact_loss_grad(z: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Gradient of the mean cross-entropy at longdouble logits ``z``: the reference's."""
    return loss_and_grad_ld(z, target)[1]


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
