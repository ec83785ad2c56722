r"""The seed's naive pair, registered as ``naive_manual`` and ``naive_autograd``.

The seed's textbook formula, kept naive on purpose:

    y_nc = exp(x_nc) / sum_k exp(x_nk)            (no max subtraction: overflows)
    L    = -(1/N) sum_n sum_c t_nc log y_nc        (t = one-hot target)
    dL/dx_nc = (y_nc - t_nc) / N                   (the seed's hand-written backward)
"""

from __future__ import annotations

import torch

from softmaxloss import _validate
from softmaxloss.errors import UnsupportedDtypeError


def _naive_forward(x, target):
    exp_x = torch.exp(x)
    y = exp_x / exp_x.sum(1, keepdim=True)
    t = torch.zeros_like(x).scatter_(1, target[:, None].long(), 1.0)  # one-hot, no loop
    loss = (-t * torch.log(y)).sum() / x.shape[0]
    return loss, y, t


class NaiveSoftmaxLoss(torch.autograd.Function):
    """The seed's SoftmaxLoss: naive forward, backward ``grad_output * (y - t) / N``."""

    @staticmethod
    def forward(x, target):
        return _naive_forward(x, target)

    @staticmethod
    def setup_context(ctx, inputs, output):
        _, y, t = output
        ctx.mark_non_differentiable(y, t)
        ctx.set_materialize_grads(False)  # no zero grads for the saved intermediates
        ctx.save_for_backward(y, t)

    @staticmethod
    def backward(ctx, grad_output, *_):
        if grad_output is None:  # the loss took no part in what is differentiated
            return (None,) * len(ctx.needs_input_grad)
        _validate.refuse_double_backward()
        y, t = ctx.saved_tensors
        return grad_output * (y - t) / y.shape[0], None


def _check_naive(logits, target):
    _validate.check_registry_call(logits, target)
    if logits.dtype in (torch.float16, torch.bfloat16):
        raise UnsupportedDtypeError(
            f"logits dtype {logits.dtype} is not supported by the naive implementations "
            "(exp overflows at 89 in bfloat16 and 11 in float16); use float32 or float64"
        )


def naive_manual(logits, target):
    """The seed's formula with its hand-written backward."""
    _check_naive(logits, target)
    return NaiveSoftmaxLoss.apply(logits, target)[0]


def naive_autograd(logits, target):
    """The seed's formula differentiated by autograd (the seed's SoftmaxLossFunc)."""
    _check_naive(logits, target)
    return _naive_forward(logits, target)[0]
