"""The depth experiment's network and its training (see ``lossbench.depth``)."""

from __future__ import annotations

import math

import numpy as np
import torch


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
