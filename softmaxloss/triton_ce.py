r"""A Triton kernel for softmax cross-entropy: loss rows and gradient in one launch.

One program handles one row ``n`` of the ``(N, C)`` logits ``x`` (class-index target ``t_n``),
in ``BLOCK``-wide chunks of columns, in two sweeps over the same row:

sweep 1, online max and sum of exponentials (one read of the row):

    m^(0) = -inf,  s^(0) = 0
    m^(k) = max(m^(k-1), max_{c in chunk k} x_nc)
    s^(k) = s^(k-1) exp(m^(k-1) - m^(k)) + sum_{c in chunk k} exp(x_nc - m^(k))

    so that at the end m_n = max_c x_nc and s_n = sum_c exp(x_nc - m_n) (every term <= 1).

the row's loss (stable: m_n - x_{n,t_n} >= 0 is exact to an ulp, log s_n is in [0, log C]):

    l_n = lse_n - x_{n,t_n} = (m_n - x_{n,t_n}) + log s_n

sweep 2, the gradient (one more read, one write), with r the reduction's scale (1/N for the
mean over the kept rows, 1 for sum and none):

    p_nc = exp(x_nc - m_n) / s_n
    g_nc = r (p_nc - [c = t_n])

Rows whose target equals ``ignore_index`` get l_n = 0 and g_n = 0 (as ``F.cross_entropy``,
even where their logits are inf or NaN). The gradient is written to a new buffer, or with
``inplace=True`` over the logits themselves: each program reads a chunk before writing it and
no other program touches its row, so nothing is read after it is overwritten.

Backward scales the saved gradient by ``grad_output``: g * grad_output (reduced losses) or
g_n * grad_output_n (``reduction="none"``); into a new buffer, or with ``inplace=True`` once
more in the logits' storage, so forward+backward allocates no logits-sized buffer at all.

float16/bfloat16 logits are computed in float32 and the gradient rounded once to the logits'
dtype; float64 is computed in float64.

The kernel runs on CUDA tensors, or on CPU tensors when the process was started with
``TRITON_INTERPRET=1`` (Triton's interpreter, read when this module is imported): that is how
the parity tests run without a GPU.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

from softmaxloss import _torch_private, _validate

INTERPRETED = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
"""True when Triton's interpreter runs the kernel (then CPU tensors are accepted)."""

_REDUCTIONS = ("none", "mean", "sum")
# Chunk width: the whole row up to this many columns, else chunks of it (a register budget
# per program of a few thousand elements).
_MAX_BLOCK = 4096


@triton.jit
def _ce_fwd_bwd_kernel(
    x_ptr,  # (N, C) logits, row stride x_stride, column stride 1
    t_ptr,  # (N,) class indices
    g_ptr,  # (N, C) gradient out, row stride g_stride (may be x_ptr: in place)
    loss_ptr,  # (N,) l_n out (0 on an ignored row), in the compute dtype
    scale_ptr,  # () r: the reduction's scale
    x_stride,
    g_stride,
    C,
    ignore_index,
    BLOCK: tl.constexpr,
    ACC_F64: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)  # int64: row * stride may exceed 2**31
    x_row = x_ptr + row * x_stride
    g_row = g_ptr + row * g_stride
    acc = tl.float64 if ACC_F64 else tl.float32
    t = tl.load(t_ptr + row)
    kept = t != ignore_index
    r = tl.load(scale_ptr).to(acc)
    cols = tl.arange(0, BLOCK)

    # sweep 1: m = max_c x_nc, s = sum_c exp(x_nc - m), online over the chunks
    m = tl.full((), float("-inf"), acc)
    s = tl.full((), 0.0, acc)
    for start in range(0, C, BLOCK):
        mask = start + cols < C
        x = tl.load(x_row + start + cols, mask=mask, other=float("-inf")).to(acc)
        m_new = tl.maximum(m, tl.max(x, 0))
        s = s * tl.exp(m - m_new) + tl.sum(tl.exp(x - m_new), 0)  # masked lanes: exp(-inf) = 0
        m = m_new

    # l_n = (m_n - x_{n,t_n}) + log s_n; an ignored row reads no target logit
    t_safe = tl.where(kept, t, 0)
    x_t = tl.load(x_row + t_safe).to(acc)
    loss = (m - x_t) + tl.log(s)
    tl.store(loss_ptr + row, tl.where(kept, loss, 0.0))

    # sweep 2: g_nc = r (exp(x_nc - m) / s - [c = t_n]), 0 on an ignored row
    inv_s = 1.0 / s
    for start in range(0, C, BLOCK):
        c = start + cols
        mask = c < C
        x = tl.load(x_row + c, mask=mask, other=0.0).to(acc)
        p = tl.exp(x - m) * inv_s
        g = r * (p - tl.where(c == t_safe, 1.0, 0.0))
        g = tl.where(kept, g, 0.0)
        tl.store(g_row + c, g.to(g_ptr.dtype.element_ty), mask=mask)


def _launch(x, target, ignore_index, reduction, inplace):
    """Runs the kernel; returns ``(loss, grad)``, the loss in the compute dtype."""
    N, C = x.shape
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32
    grad = x if inplace else torch.empty_like(x, memory_format=torch.contiguous_format)
    loss_rows = torch.empty(N, dtype=acc, device=x.device)
    if reduction != "mean":
        scale = torch.ones((), dtype=acc, device=x.device)
    elif ignore_index is None or not N:
        scale = torch.full((), 1.0 / N if N else float("nan"), dtype=acc, device=x.device)
    else:  # the mean over the kept rows: 1 / D, counted on the device (no synchronisation)
        scale = (target != ignore_index).sum().to(acc).reciprocal()
    if N:
        block = min(_MAX_BLOCK, triton.next_power_of_2(C))
        _ce_fwd_bwd_kernel[(N,)](
            x,
            target,
            grad,
            loss_rows,
            scale,
            x.stride(0),
            grad.stride(0),
            C,
            -(2**62) if ignore_index is None else ignore_index,  # never a class index
            BLOCK=block,
            ACC_F64=acc == torch.float64,
            num_warps=4 if block <= 2048 else 8,
        )
    if inplace:  # the kernel wrote through a pointer: tell autograd that x changed
        torch.autograd.graph.increment_version(x)
    if reduction == "none":
        return loss_rows, grad
    if reduction == "sum":
        return loss_rows.sum(), grad
    return loss_rows.sum() * scale, grad  # nothing kept: 0 * (1 / 0) = NaN, as F


class TritonCrossEntropy(torch.autograd.Function):
    """Forward runs the kernel (loss and gradient); backward scales the saved gradient."""

    @staticmethod
    def forward(x, target, ignore_index, reduction, inplace):
        loss, grad = _launch(x, target, ignore_index, reduction, inplace)
        # (autograd refuses to save an input returned as-is: hand back a view of it)
        return loss.to(x.dtype), grad.view_as(grad)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.mark_non_differentiable(output[1])
        ctx.set_materialize_grads(False)  # no zero grads for the saved gradient
        ctx.save_for_backward(output[1])
        ctx.none, ctx.inplace = inputs[3] == "none", inputs[4]
        ctx.consumed = False

    @staticmethod
    def backward(ctx, grad_output, _):
        if grad_output is None:  # the loss took no part in what is differentiated
            return (None,) * len(ctx.needs_input_grad)
        _validate.refuse_double_backward()
        if ctx.consumed:  # checked first: the saved gradient's version has moved on
            raise RuntimeError(
                "the in-place Triton gradient was already handed over by an earlier backward "
                "(retain_graph=True); use inplace=False to run backward more than once"
            )
        (g,) = ctx.saved_tensors
        go = grad_output[:, None] if ctx.none else grad_output
        if not ctx.inplace:
            # out of place: a second backward (retain_graph=True) sees the unscaled gradient
            return g * go, None, None, None, None
        # in place: the logits' storage becomes the gradient itself, no new buffer (detach:
        # the saved tensor is a view made inside this Function, which autograd will not let
        # be written to in place)
        ctx.consumed = True
        return g.detach().mul_(go), None, None, None, None


def _check_device(x):
    if x.device.type != "cuda" and not INTERPRETED:
        raise ValueError(
            f"the Triton kernel needs CUDA tensors, got logits on {x.device} (on the CPU it "
            "runs only under Triton's interpreter: start Python with TRITON_INTERPRET=1)"
        )


def _check_inplace(x):
    if not x.is_contiguous():
        raise ValueError(f"inplace=True needs contiguous logits, got strides {tuple(x.stride())}")
    base = _torch_private.view_base(x)
    if base.is_leaf and base.requires_grad:
        raise ValueError(
            "inplace=True overwrites logits with their gradient, so logits must not be a leaf "
            "that requires grad, nor a view of one; pass the output of the layer that produces "
            "the logits"
        )


def _index_target(target):
    """int64 and int32 go to the kernel as they are; narrower integer types are widened."""
    t = target if target.dtype in (torch.int64, torch.int32) else target.long()
    return t.contiguous()


def cross_entropy_triton(
    logits, target, *, ignore_index=-100, reduction: str = "mean", inplace: bool = False
):
    """``F.cross_entropy(logits, target, ignore_index=..., reduction=...)`` by the kernel.

    ``logits``: ``(N, C)`` float16/bfloat16/float32/float64; ``target``: ``(N,)`` class
    indices. No class weights, no label smoothing. ``ignore_index=None``: no index is ignored
    (every target must lie in ``[0, C)``). ``inplace=True``: the gradient is written over
    ``logits``, whose values are destroyed (the same conditions as ``impl='fused'``).
    """
    _validate.check_input(logits)
    if logits.dim() != 2:
        raise ValueError(f"logits must have shape (N, C), got shape {tuple(logits.shape)}")
    if ignore_index is not None and (
        isinstance(ignore_index, bool) or not isinstance(ignore_index, int)
    ):
        raise TypeError(f"ignore_index must be an int or None, got {type(ignore_index).__name__}")
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if not isinstance(inplace, bool):
        raise TypeError(f"inplace must be a bool, got {type(inplace).__name__}")
    spec = _validate.check_target(logits, target, ignore_index)
    if spec.prob_target:
        raise TypeError(
            f"target must hold class indices for the Triton kernel, got dtype {target.dtype}"
        )
    _check_device(logits)
    if inplace:
        _check_inplace(logits)
    x = logits if logits.stride(-1) == 1 or inplace else logits.contiguous()
    return TritonCrossEntropy.apply(x, _index_target(target), ignore_index, reduction, inplace)[0]


def _registry_entry(name: str, inplace: bool):
    def loss(logits, target):
        _validate.check_registry_call(logits, target)
        _check_device(logits)
        if inplace:
            _check_inplace(logits)
        x = logits if logits.stride(-1) == 1 else logits.contiguous()
        return TritonCrossEntropy.apply(x, _index_target(target), None, "mean", inplace)[0]

    loss.__name__ = loss.__qualname__ = name
    loss.__doc__ = (
        "Registry entry: the Triton kernel on (N, C) logits and class indices in [0, C), "
        f"mean loss{', gradient written over the logits' if inplace else ''}."
    )
    return loss


triton_entry = _registry_entry("triton", inplace=False)
triton_inplace_entry = _registry_entry("triton_inplace", inplace=True)

ENTRIES = {"triton": triton_entry, "triton_inplace": triton_inplace_entry}
"""The registry entries this module provides, by name."""
