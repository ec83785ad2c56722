"""Injection: one more logits-sized buffer, alive from the forward to the end of the backward.

A written copy of the logits (resident, not just reserved) is kept by a hook on the loss.
Copied into a scratch commit by the detection study (``lossbench.study``); imports nothing
but torch.
"""

from __future__ import annotations


def install(registry: dict, impl: str) -> None:
    inner = registry[impl]

    def more_memory(logits, target):
        extra = logits.detach().clone()
        loss = inner(logits, target)
        if loss.requires_grad:
            loss.register_hook(lambda grad, extra=extra: None)  # alive until backward is done
        return loss

    registry[impl] = more_memory
