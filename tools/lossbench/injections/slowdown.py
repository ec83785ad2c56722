"""Injection: a slower implementation in Python, in its forward or its backward only.

An extra ``torch.softmax`` over ``fraction`` of the logits' rows (whole passes first),
before the forward call (``region="forward"``) or in a hook that runs at the start of the
backward (``region="backward"``). The result is unchanged. Copied into a scratch commit by
the detection study (``lossbench.study``); imports nothing but torch.
"""

from __future__ import annotations

import torch


def extra_pass(x: torch.Tensor, fraction: float) -> None:
    """An extra softmax over ``fraction`` of the rows of ``x`` (whole passes first)."""
    rows = x.shape[0]
    work = fraction * rows
    with torch.no_grad():
        for _ in range(int(work // rows)):
            torch.softmax(x, 1)
        k = round(work % rows)
        if k:
            torch.softmax(x[:k], 1)


def install(registry: dict, impl: str, fraction: float, region: str) -> None:
    """Replaces ``registry[impl]`` by the same entry with the extra work in ``region``."""
    inner = registry[impl]
    if region not in ("forward", "backward"):
        raise ValueError(f"region must be forward or backward, got {region!r}")

    def slower(logits, target):
        if region == "forward":
            extra_pass(logits.detach(), fraction)
            return inner(logits, target)
        loss = inner(logits, target)
        if loss.requires_grad:
            x = logits.detach()
            loss.register_hook(lambda grad: extra_pass(x, fraction))
        return loss

    registry[impl] = slower
