"""Injection: a less precise gradient, ``k`` eps more error.

The gradient that reaches the logits is scaled by ``1 + k eps`` (a tensor hook), so its
normwise error against the exact gradient grows by about ``k`` eps. Copied into a scratch
commit by the detection study (``lossbench.study``); imports nothing but torch.
"""

from __future__ import annotations

import torch


def install(registry: dict, impl: str, k: float) -> None:
    inner = registry[impl]

    def less_precise(logits, target):
        if logits.requires_grad:
            scale = 1 + k * torch.finfo(logits.dtype).eps
            logits.register_hook(lambda grad: grad * scale)
        return inner(logits, target)

    registry[impl] = less_precise
