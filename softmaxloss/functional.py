r"""Softmax cross-entropy with hand-written gradients, a drop-in for ``F.cross_entropy``.

Notation, for one row ``n`` of logits ``x`` with ``C`` classes (the class dimension is moved
last and every other dimension flattened into rows before any math):

    m_n    = max_c x_nc,  s_n = sum_c exp(x_nc - m_n)
    lse_n  = m_n + log s_n                        (log-sum-exp, computed stably)
    p_nc   = exp(x_nc - m_n) / s_n                (softmax)
    l_n    = sum_c q_nc (lse_n - x_nc)            (per-row loss, -sum_c q_nc log p_nc)
           = sum_c q_nc ((m_n - x_nc) + log s_n)  (how it is evaluated: m - x >= 0 is exact
                                                   to an ulp and log s_n is small, so large
                                                   logits cost no precision)
    S_n    = sum_c q_nc

where ``q`` is the (weighted, smoothed) target distribution of the row:

    class indices t_n, label smoothing e, class weights w (ones when absent):
        q_nc = [n kept] * ((1 - e) w_{t_n} [c = t_n] + (e / C) w_c)
    class probabilities P_nc:
        q_nc = w_c ((1 - e) P_nc + e / C)

The gradient of ``l_n`` follows from d lse_n / d x_nc = p_nc:

    d l_n / d x_nc = S_n p_nc - q_nc                (the seed's y - t, generalised)

Reductions scale row ``n`` by ``r_n``: 1 (sum), g_n (none), 1 / D (mean) with
``D = sum_n w_{t_n} [n kept]`` for class indices (as F.cross_entropy: the kept weight mass,
NaN when every row is ignored) and ``D = rows`` for probabilities.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from softmaxloss import _cpu_ext, _torch_private, _validate
from softmaxloss.errors import UnsupportedDtypeError

IMPL_CHOICES = ("manual", "fused", "autograd", "torch")
"""The values ``cross_entropy(..., impl=...)`` accepts."""


class Reduction(enum.IntEnum):
    """The reduction, named end to end: the C++ Functions take it as this integer
    (``enum class Reduction`` in ``csrc/lean_cpu.cpp``, the same values)."""

    NONE = 0
    MEAN = 1
    SUM = 2

    @classmethod
    def of(cls, name: str) -> Reduction:
        """``"none"``, ``"mean"`` or ``"sum"`` (``F.cross_entropy``'s names)."""
        return cls[name.upper()]


@dataclass(frozen=True)
class Options:
    """The scalar options of one cross-entropy call (everything but the tensors).

    Field meanings and defaults are ``cross_entropy``'s. Immutable, so a registry entry can
    hold one and share it between calls.
    """

    impl: str = "manual"
    reduction: str = "mean"
    ignore_index: int = -100
    label_smoothing: float = 0.0
    inplace: bool = False


_REDUCTION_CODES = {"none": 0, "mean": 1, "sum": 2}


# ----------------------------------------------------------------------------------------
# Shared pieces of math: each is plain tensor code, so the autograd twin reuses them.
# ----------------------------------------------------------------------------------------
def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float16/bfloat16 are computed in float32 (PyTorch's 'opmath'), results cast back."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _index_rows(target, weight, ignore_index, smoothing, num_classes, dtype):
    """Per-row target facts for class-index targets.

    Returns ``t`` (ignored rows pointed at class 0), ``kept`` (1. or 0.), ``wt = w_{t_n} kept``,
    ``S_n = (1 - e) wt_n + (e / C) sum(w) kept_n`` and ``D = sum_n wt_n``.
    """
    kept_b = target != ignore_index
    t = torch.where(kept_b, target, 0).long()
    kept = kept_b.to(dtype)
    wt = kept if weight is None else weight[t] * kept
    w_sum = num_classes if weight is None else weight.sum()
    S = (1.0 - smoothing) * wt + (smoothing / num_classes) * w_sum * kept
    return t, kept, wt, S, wt.sum()


def _index_loss(x, m, log_s, t, kept, wt, weight, smoothing):
    """l_n = (1 - e) wt_n (lse_n - x_{n,t_n}) + (e / C) kept_n sum_c w_c (lse_n - x_nc).

    with lse_n - x_nc evaluated as (m_n - x_nc) + log s_n (both terms >= 0).
    """
    loss = (1.0 - smoothing) * wt * ((m - x.gather(1, t[:, None]).squeeze(1)) + log_s)
    if smoothing:
        to_lse = (m[:, None] - x).add_(log_s[:, None])  # (M, C), every entry >= 0
        smooth = to_lse.sum(1) if weight is None else to_lse @ weight
        loss = loss + (smoothing / x.shape[1]) * kept * smooth
    return loss


def _index_grad_(p, t, kept, wt, weight, smoothing, scale, r):
    """Turns ``p`` into the gradient in place: ``scale_n p_nc - r_n q_nc``.

    With ``p`` the softmax and ``scale = r S`` this is r_n (S_n p_nc - q_nc).
    """
    p.mul_(scale[:, None])
    # ignored rows: 0 even where their logits are inf/NaN (as F); unconditionally, since
    # asking whether any row is ignored would wait for the device
    p.masked_fill_((kept == 0)[:, None], 0.0)
    #   - r_n (1 - e) w_{t_n}   at (n, t_n)
    p.scatter_add_(1, t[:, None], (-(1.0 - smoothing) * wt * r)[:, None])
    if smoothing:
        #   - r_n (e / C) w_c   for every kept row
        w_row = p.new_ones(p.shape[1]) if weight is None else weight
        p.addcmul_((r * kept)[:, None], w_row[None, :], value=-smoothing / p.shape[1])
    return p


_CHUNK_BYTES = 4 << 20


def _max_log_sum_exp(x):
    """``(m, log_s)``: m_n = max_c x_nc and log s_n = log sum_c exp(x_nc - m_n).

    Rows are processed in chunks of about 4 MiB through one scratch buffer: the softmax of a
    chunk is written there and ``max_c p_nc = exp(0) / s_n`` gives ``log s_n``. Unlike
    ``torch.logsumexp`` this never allocates a logits-sized temporary (on these machines the
    first touch of a fresh 40 MB buffer costs more than the arithmetic).
    """
    M, C = x.shape
    m = x.amax(1)
    log_s = torch.empty_like(m)
    rows = max(1, _CHUNK_BYTES // max(1, C * x.element_size()))
    scratch = x.new_empty(min(rows, M), C)
    for i in range(0, M, rows):
        chunk = x[i : i + rows]
        p = _torch_private.softmax_into(chunk, 1, out=scratch[: chunk.shape[0]])
        torch.neg(p.amax(1).log_(), out=log_s[i : i + rows])  # max_c p_nc = 1 / s_n
    return m, log_s


def _prob_rows(target, weight, smoothing, num_classes):
    """q_nc = w_c ((1 - e) P_nc + e / C) and S_n = sum_c q_nc."""
    q = target * (1.0 - smoothing) + smoothing / num_classes if smoothing else target
    if weight is not None:
        q = q * weight
    return q, q.sum(1)


def _row_dot(a, b):
    """sum_c a_nc b_nc without an (M, C) temporary."""
    return torch.bmm(a.unsqueeze(1), b.unsqueeze(2)).view(-1)


def _reduce(loss_rows, reduction: str, denominator):
    if reduction == "none":
        return loss_rows
    total = loss_rows.sum()
    return total if reduction == "sum" else total / denominator


def _row_count(x):
    """The mean's denominator for probability targets: rows, NaN when there are none (as F)."""
    # new_full, not new_tensor: a fill on the device, not a copy from the host (which on CUDA
    # waits for the copy)
    return x.new_full((), float(x.shape[0]) if x.shape[0] else float("nan"))


def _kept_rows(r, kept):
    """0 on ignored rows, as F: ``where``, not a product, since 0 * (1 / 0) or 0 * inf is NaN
    (every row ignored, or an ignored row of inf/NaN logits)."""
    return torch.where(kept > 0, r, 0.0)


def _row_scale(grad_output, code: int, denominator):
    """r_n of the module docstring, from the incoming gradient."""
    if code == 0:
        return grad_output
    return grad_output if code == 2 else grad_output / denominator


# ----------------------------------------------------------------------------------------
# manual: stable forward, backward recomputes softmax from the saved log-sum-exp.
# ----------------------------------------------------------------------------------------
class ManualCrossEntropy(torch.autograd.Function):
    """Class-index targets. Forward keeps only per-row numbers; backward recomputes p."""

    @staticmethod
    def forward(x, target, weight, ignore_index, code, smoothing):
        t, kept, wt, S, D = _index_rows(
            target, weight, ignore_index, smoothing, x.shape[1], x.dtype
        )
        m, log_s = _max_log_sum_exp(x)
        loss_rows = _kept_rows(_index_loss(x, m, log_s, t, kept, wt, weight, smoothing), kept)
        return _reduce(loss_rows, ("none", "mean", "sum")[code], D), t, kept, wt, S, D

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, _, weight, _, code, smoothing = inputs
        _, t, kept, wt, S, D = output
        ctx.mark_non_differentiable(*output[1:])
        ctx.set_materialize_grads(False)  # no zero grads for the saved intermediates
        ctx.save_for_backward(x, weight, t, kept, wt, S, D)
        ctx.code, ctx.smoothing = code, smoothing

    @staticmethod
    def backward(ctx, grad_output, *_):
        if grad_output is None:  # the loss took no part in what is differentiated
            return (None,) * len(ctx.needs_input_grad)
        _validate.refuse_double_backward()
        x, weight, t, kept, wt, S, D = ctx.saved_tensors
        r = _kept_rows(_row_scale(grad_output, ctx.code, D).expand_as(S), kept)
        p = torch.softmax(x, 1)  # exp(x - m) / s: the max shift keeps large logits exact
        grad = _index_grad_(p, t, kept, wt, weight, ctx.smoothing, r * S, r)
        return grad, None, None, None, None, None


class ManualCrossEntropyProb(torch.autograd.Function):
    """Class-probability targets; the target gets a gradient too when it asks for one."""

    @staticmethod
    def forward(x, target, weight, code, smoothing):
        q, S = _prob_rows(target, weight, smoothing, x.shape[1])
        m, log_s = _max_log_sum_exp(x)
        # sum_c q_nc (lse_n - x_nc) = sum_c q_nc (m_n - x_nc) + S_n log s_n
        loss_rows = _row_dot(m[:, None] - x, q) + S * log_s
        rows = _row_count(x)
        return _reduce(loss_rows, ("none", "mean", "sum")[code], rows), S, rows

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, target, weight, code, smoothing = inputs
        _, S, rows = output
        ctx.mark_non_differentiable(*output[1:])
        ctx.set_materialize_grads(False)  # no zero grads for the saved intermediates
        ctx.save_for_backward(x, target, weight, S, rows)
        ctx.code, ctx.smoothing = code, smoothing

    @staticmethod
    def backward(ctx, grad_output, *_):
        if grad_output is None:  # the loss took no part in what is differentiated
            return (None,) * len(ctx.needs_input_grad)
        _validate.refuse_double_backward()
        x, target, weight, S, rows = ctx.saved_tensors
        r = _row_scale(grad_output, ctx.code, rows).expand_as(S)
        q, _ = _prob_rows(target, weight, ctx.smoothing, x.shape[1])
        grad_target = None
        if ctx.needs_input_grad[1]:
            # d l_n / d P_nc = -(1 - e) w_c log p_nc
            w = 1.0 if weight is None else weight
            grad_target = torch.log_softmax(x, 1) * (-(1.0 - ctx.smoothing) * w) * r[:, None]
        # d l_n / d x_nc = S_n p_nc - q_nc
        grad = torch.softmax(x, 1).mul_((r * S)[:, None]).sub_(q * r[:, None])
        return grad, grad_target, None, None, None


# ----------------------------------------------------------------------------------------
# fused: the gradient is built during the forward pass (one softmax over the logits) and
# saved; backward only scales it by grad_output.
# ----------------------------------------------------------------------------------------
def _softmax_into(g):
    """softmax over dim 1, written into ``g`` itself (no new buffer)."""
    return _torch_private.softmax_into(g, 1, out=g)


class FusedCrossEntropy(torch.autograd.Function):
    """Class-index or class-probability targets (``prob`` flag).

    Memory: one logits-sized buffer ``g`` is allocated in forward (none with ``inplace``,
    which reuses the logits' storage). Backward hands ``g`` itself to autograd when
    grad_output is 1 for a reduced loss, so forward+backward peaks at one extra buffer.
    With ``target_grad`` (probability targets that require grad) forward also builds the
    target's gradient, r_n (-(1 - e) w_c log p_nc), in a second buffer.
    """

    @staticmethod
    def forward(x, target, weight, ignore_index, code, smoothing, prob, inplace, target_grad=False):
        M, C = x.shape
        m = x.amax(1)
        grad_target = None
        if prob:
            q, S = _prob_rows(target, weight, smoothing, C)
            D = _row_count(x)
        else:
            t, kept, wt, S, D = _index_rows(target, weight, ignore_index, smoothing, C, x.dtype)
        if prob or smoothing:  # sum_c q_nc (x_nc - m_n) needs a pass over the shifted logits
            g = x.sub_(m[:, None]) if inplace else x - m[:, None]
            if prob:
                shifted_dot = _row_dot(g, q)
                if target_grad:  # log p = log_softmax(x - m), before g turns into p
                    grad_target = torch.log_softmax(g, 1)
            else:
                w_dot = g.sum(1) if weight is None else g @ weight
                shifted_dot = (1.0 - smoothing) * wt * g.gather(1, t[:, None]).squeeze(1)
                shifted_dot = shifted_dot + (smoothing / C) * kept * w_dot
            g = _softmax_into(g)  # softmax is shift-invariant: softmax(x - m) = p
        else:  # q_nc = wt_n [c = t_n]: sum_c q_nc (x_nc - m_n) = wt_n (x_{n,t_n} - m_n)
            shifted_dot = wt * (x.gather(1, t[:, None]).squeeze(1) - m)
            g = _softmax_into(x) if inplace else torch.softmax(x, 1)
        # max_c p_nc = exp(m_n - m_n) / s_n = 1 / s_n, so log s_n = -log max_c p_nc; the max is
        # >= 1/C (no underflow), and one read pass (amax) is cheaper than argmax + gather.
        log_s = g.amax(1).log_().neg_()
        # l_n = sum_c q_nc (lse_n - x_nc) = S_n log s_n - sum_c q_nc (x_nc - m_n): both
        # terms are >= 0, so no cancellation.
        loss_rows = S * log_s - shifted_dot
        if not prob:
            loss_rows = _kept_rows(loss_rows, kept)
        r = (1.0 / D if code == 1 else S.new_ones(())).expand_as(S)
        # gradient = r_n (S_n p_nc - q_nc)
        if prob:
            g.mul_((r * S)[:, None]).sub_(q * r[:, None])
            if grad_target is not None:
                # d l_n / d P_nc = -(1 - e) w_c log p_nc, times r_n
                w = -(1.0 - smoothing) if weight is None else weight * -(1.0 - smoothing)
                grad_target.mul_(r[:, None] * w)
        else:
            r = _kept_rows(r, kept)
            _index_grad_(g, t, kept, wt, weight, smoothing, r * S, r)
        # (autograd refuses to save an input returned as-is: hand back a view of it)
        loss = _reduce(loss_rows, ("none", "mean", "sum")[code], D)
        if grad_target is None:
            return loss, g.view_as(g)
        return loss, g.view_as(g), grad_target

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.mark_non_differentiable(*output[1:])
        ctx.set_materialize_grads(False)  # no zero grads for the saved intermediates
        ctx.save_for_backward(*output[1:])
        ctx.code = inputs[4]

    @staticmethod
    def backward(ctx, grad_output, *_):
        if grad_output is None:  # the loss took no part in what is differentiated
            return (None,) * len(ctx.needs_input_grad)
        _validate.refuse_double_backward()
        g, *grad_target = ctx.saved_tensors
        grad_target = grad_target[0] if grad_target else None
        if ctx.code == 0:
            g = g * grad_output[:, None]
            if grad_target is not None:
                grad_target = grad_target * grad_output[:, None]
        # 1 (a plain loss.backward()): hand over g itself. Off the CPU the check would cost a
        # device sync, so there g is always scaled.
        elif grad_output.device.type != "cpu" or bool(grad_output != 1):
            g = g * grad_output
            if grad_target is not None:
                grad_target = grad_target * grad_output
        return g, grad_target, None, None, None, None, None, None, None


# ----------------------------------------------------------------------------------------
# The lean path: (N, C) logits, class indices, no class weights, no label smoothing (the
# registry's case, and the common one). The fewest tiny tensor ops and no host-device
# synchronisation; the Functions are old-style (``forward(ctx, ...)``) because ``apply`` of
# a Function with ``setup_context`` binds its arguments through ``inspect.signature`` on every
# call, which costs more than the arithmetic of a small input.
#
#   log p_{n,t_n} = (x_{n,t_n} - m_n) - log s_n     (log_softmax evaluates it in this order:
#                                                   no cancellation at large logits)
#   l_n           = -log p_{n,t_n}
#   d l_n / d x_nc = p_nc - [c = t_n]
#
# scaled by r = 1/D (mean, D = kept rows), 1 (sum) or g_n (none); ignored rows (``kept``
# false) get 0. ``kept`` is None when the argument check proved that no row is ignored.
# ----------------------------------------------------------------------------------------
def _log_p_at_target(x, t2):
    """``log p_{n,t_n}`` as an (M, 1) tensor (``t2``: the (M, 1) targets), through one scratch
    buffer of at most about 4 MiB (chunks of rows, as ``_max_log_sum_exp``), never a
    logits-sized temporary."""
    M, C = x.shape
    rows = max(1, _CHUNK_BYTES // max(1, C * x.element_size()))
    # under torch.compile the compiler fuses the two into one kernel: no chunks, no out=
    if rows >= M or torch.compiler.is_compiling():
        return torch.log_softmax(x, 1).gather(1, t2)
    out = x.new_empty(M, 1)
    scratch = x.new_empty(rows, C)
    for i in range(0, M, rows):
        chunk = x[i : i + rows]
        log_p = _torch_private.log_softmax_into(chunk, 1, out=scratch[: chunk.shape[0]])
        torch.gather(log_p, 1, t2[i : i + rows], out=out[i : i + rows])
    return out


def _lean_loss(log_p_t, kept, code, kept_count):
    """The reduced loss from log p at the targets (M, 1)."""
    if kept is None:
        if code == 1:
            return log_p_t.mean().neg()  # no rows: NaN, as F
        return log_p_t.view(-1).neg() if code == 0 else log_p_t.sum().neg()
    log_p_t = torch.where(kept[:, None], log_p_t, 0.0)  # where: an ignored row's may be NaN
    if code == 0:
        return log_p_t.view(-1).neg()
    total = log_p_t.sum().neg()
    return total if code == 2 else total / kept_count  # nothing kept: NaN, as F


def _lean_scale(grad_output, code, kept, kept_count, rows):
    """r as a 0-dim or (M, 1) tensor; 0 on ignored rows."""
    if code == 0:
        r = grad_output[:, None]
    elif code == 2:
        r = grad_output
    elif kept is None:
        r = grad_output * (1.0 / rows if rows else float("nan"))
    else:
        r = grad_output / kept_count
    if kept is not None:
        r = torch.where(kept[:, None], r, 0.0)
    return r


def _lean_grad_(p, t2, kept, r):
    """Turns the softmax ``p`` into r (p - onehot(t)) in place.

    ``r``: a Python float (a constant scale: no tensor op for it) or a 0-dim or (M, 1) tensor.
    """
    constant = isinstance(r, float)
    if not (constant and r == 1.0):
        p.mul_(r)
    if kept is not None:  # 0 even where an ignored row's logits are inf/NaN (as F)
        p.masked_fill_(~kept[:, None], 0.0)
    minus_r = p.new_full((1, 1), -r) if constant else r.neg()
    return p.scatter_add_(1, t2, minus_r.expand(p.shape[0], 1))


class LeanManual(torch.autograd.Function):
    """manual on the lean path: forward keeps nothing logits-sized; backward recomputes p."""

    @staticmethod
    def forward(ctx, x, t2, kept, code):
        kept_count = None if kept is None else kept.sum()
        loss = _lean_loss(_log_p_at_target(x, t2), kept, code, kept_count)
        ctx.save_for_backward(x, t2, kept, kept_count)
        ctx.code = code
        return loss

    @staticmethod
    def backward(ctx, grad_output):
        _validate.refuse_double_backward()
        x, t2, kept, kept_count = ctx.saved_tensors
        r = _lean_scale(grad_output, ctx.code, kept, kept_count, x.shape[0])
        return _lean_grad_(torch.softmax(x, 1), t2, kept, r), None, None, None


class LeanFused(torch.autograd.Function):
    """fused on the lean path: forward builds the gradient for grad_output = 1 (in the
    logits' storage with ``inplace``); backward scales it."""

    @staticmethod
    def forward(ctx, x, t2, kept, code, inplace):
        M = x.shape[0]
        kept_count = None if kept is None else kept.sum()
        shifted_t = x.gather(1, t2) - x.amax(1, keepdim=True)  # x_{n,t_n} - m_n <= 0, exact
        g = _softmax_into(x) if inplace else torch.softmax(x, 1)
        # max_c p_nc = exp(0) / s_n, so log p_{n,t_n} = (x_{n,t_n} - m_n) + log max_c p_nc:
        # one read pass over p instead of a second pass of exponentials (log_softmax, exp)
        log_p_t = shifted_t.add_(g.amax(1, keepdim=True).log_())
        loss = _lean_loss(log_p_t, kept, code, kept_count)
        if kept is None:  # r: 1 / M (mean), 1 (sum, and none before grad_output)
            r = (1.0 / M if M else float("nan")) if code == 1 else 1.0
        else:
            r = _lean_scale(g.new_ones(()) if code else g.new_ones(M), code, kept, kept_count, M)
        _lean_grad_(g, t2, kept, r)
        ctx.save_for_backward(g)
        ctx.code = code
        return loss

    @staticmethod
    def backward(ctx, grad_output):
        _validate.refuse_double_backward()
        (g,) = ctx.saved_tensors
        if ctx.code == 0:
            g = g * grad_output[:, None]
        # 1 (a plain loss.backward()): hand over g itself. Off the CPU the check would cost a
        # device sync, so there g is always scaled.
        elif grad_output.device.type != "cpu" or grad_output.item() != 1:
            g = g * grad_output
        else:
            # a new tensor over g's storage: with inplace, g is the caller's logits tensor,
            # which autograd would copy before keeping it as a .grad; a view it keeps as is
            g = g.view_as(g)
        return g, None, None, None, None


def _lean_autograd(x, t2, kept, code):
    """The lean forward of ``manual``, left to autograd."""
    kept_count = None if kept is None else kept.sum()
    return _lean_loss(torch.log_softmax(x, 1).gather(1, t2), kept, code, kept_count)


def _cpp_lean_applies(x) -> bool:
    """The C++ lean path (``_cpu_ext``) takes float32/float64 CPU logits, outside
    ``torch.compile`` (which traces the Python Functions)."""
    return (
        x.device.type == "cpu"
        and x.dtype in (torch.float32, torch.float64)
        and not torch.compiler.is_compiling()
    )


def lean_loss(x, t, kept, code: int, impl: str, inplace: bool = False):
    """The lean path on validated (M, C) rows in the compute dtype.

    ``t``: int64 class indices (ignored rows pointed at any valid class), ``kept``: None (no
    row ignored) or the bool mask of kept rows; ``code``: 0 none, 1 mean, 2 sum.
    """
    if impl != "autograd" and _cpp_lean_applies(x):
        ext = _cpu_ext.module()
        if ext is not None and impl == "manual":
            return ext.manual(x.contiguous(), t.contiguous(), kept, code)
        if ext is not None:  # inplace: x is contiguous (checked), so x itself is written
            return ext.fused(x.contiguous(), t.contiguous(), kept, code, inplace)
    t2 = t[:, None]
    if impl == "manual":
        return LeanManual.apply(x, t2, kept, code)
    if impl == "fused":
        return LeanFused.apply(x if inplace else x.contiguous(), t2, kept, code, inplace)
    return _lean_autograd(x, t2, kept, code)


# ----------------------------------------------------------------------------------------
# Layout: (C,), (N, C) and (N, C, d1, ..., dk) inputs become (M, C) rows.
# ----------------------------------------------------------------------------------------
def _to_rows(input, target, spec):
    if spec.unbatched:
        return input.unsqueeze(0), target.unsqueeze(0)
    if input.dim() == 2:
        return input, target
    C = spec.num_classes
    x = input.movedim(1, -1).reshape(-1, C)
    t = target.movedim(1, -1).reshape(-1, C) if spec.prob_target else target.reshape(-1)
    return x, t


def _from_rows(loss, input, spec, reduction):
    if reduction != "none":
        return loss
    if spec.unbatched:
        return loss.squeeze(0)
    return loss.reshape(input.shape[0], *input.shape[2:])


def _autograd_rows(x, t, weight, ignore_index, reduction, smoothing, prob):
    """The same stable math as ``manual``'s forward, left to autograd.

    ``m`` is detached: l_n does not depend on it (d/dm [(m - x) + log sum exp(x - m)] = 0).
    """
    m = x.detach().amax(1)
    log_s = torch.logsumexp(x - m[:, None], 1)
    if prob:
        q, _ = _prob_rows(t, weight, smoothing, x.shape[1])
        rows = _row_count(x)
        to_lse = (m[:, None] - x) + log_s[:, None]
        return _reduce((to_lse * q).sum(1), reduction, rows)
    ti, kept, wt, _, D = _index_rows(t, weight, ignore_index, smoothing, x.shape[1], x.dtype)
    loss_rows = _index_loss(x, m, log_s, ti, kept, wt, weight, smoothing)
    # autograd would scale ignored rows by 0 * (1 / D) = NaN when D = 0; F gives them 0
    return _reduce(_kept_rows(loss_rows, kept), reduction, D)


def _dispatch(input, target, weight, options: Options, spec):
    """Runs a validated call."""
    impl, reduction, ignore_index = options.impl, options.reduction, options.ignore_index
    smoothing, inplace = options.label_smoothing, options.inplace
    if impl == "torch":
        return F.cross_entropy(
            input,
            target.to(input.dtype) if spec.prob_target else target.long(),
            weight=None if weight is None else weight.to(input.dtype),
            ignore_index=ignore_index,
            reduction=reduction,
            label_smoothing=smoothing,
        )
    dtype = input.dtype
    if (
        weight is None
        and not smoothing
        and not spec.prob_target
        and (input.dim() == 2 or spec.unbatched)
    ):
        return _dispatch_lean(input, target, options, spec)
    x, t = _to_rows(input, target, spec)
    cdt = _compute_dtype(dtype)
    if cdt != dtype:
        x = x.to(cdt)
    if spec.prob_target:
        t = t.to(cdt)
    w = None if weight is None else weight.to(cdt)
    smoothing = float(smoothing)
    code = _REDUCTION_CODES[reduction]
    if impl == "autograd":
        loss = _autograd_rows(x, t, w, ignore_index, reduction, smoothing, spec.prob_target)
    elif impl == "manual" and spec.prob_target:
        loss = ManualCrossEntropyProb.apply(x, t, w, code, smoothing)[0]
    elif impl == "manual":
        loss = ManualCrossEntropy.apply(x, t, w, ignore_index, code, smoothing)[0]
    else:
        if not inplace:
            x = x.contiguous()
        target_grad = spec.prob_target and target.requires_grad and torch.is_grad_enabled()
        loss = FusedCrossEntropy.apply(
            x, t, w, ignore_index, code, smoothing, spec.prob_target, inplace, target_grad
        )[0]
    return _from_rows(loss.to(dtype), input, spec, reduction)


def _dispatch_lean(input, target, options: Options, spec):
    """The lean path of a validated (N, C) or (C,) call with class indices, no weight and no
    label smoothing."""
    dtype = input.dtype
    x, t = (input.unsqueeze(0), target.unsqueeze(0)) if spec.unbatched else (input, target)
    cdt = _compute_dtype(dtype)
    if cdt != dtype:
        x = x.to(cdt)
    if t.dtype != torch.int64:
        t = t.long()
    kept = None
    if not spec.none_ignored:
        kept = t != options.ignore_index
        t = t.masked_fill(~kept, 0)
    code = _REDUCTION_CODES[options.reduction]
    loss = lean_loss(x, t, kept, code, options.impl, options.inplace)
    if spec.unbatched and code == 0:
        loss = loss.squeeze(0)
    return loss.to(dtype)


def _check_inplace(input, impl, spec):
    if impl != "fused":
        raise ValueError(f"inplace=True needs impl='fused', got impl={impl!r}")
    if input.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"inplace=True needs float32 or float64 input, got {input.dtype}")
    if not (spec.unbatched or input.dim() == 2) or not input.is_contiguous():
        raise ValueError(
            f"inplace=True needs contiguous (N, C) or (C,) input, got shape "
            f"{tuple(input.shape)} (contiguous={input.is_contiguous()})"
        )
    base = _torch_private.view_base(input)
    if base.is_leaf and base.requires_grad:
        raise ValueError(
            "inplace=True overwrites input with its gradient, so input must not be a leaf "
            "that requires grad, nor a view of one (its .grad would alias its data); pass "
            "the output of the "
            "layer that produces the logits"
        )


def cross_entropy(
    input,
    target,
    weight=None,
    size_average=None,
    ignore_index: int = -100,
    reduce=None,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    *,
    impl: str = "manual",
    inplace: bool = False,
):
    """``torch.nn.functional.cross_entropy`` with a hand-written gradient.

    Arguments, positions and results are those of ``F.cross_entropy`` (including the
    deprecated ``size_average``/``reduce`` slots). Extra keyword-only arguments:

    impl: ``"manual"`` (stable forward, hand-written backward), ``"fused"`` (gradient built
        in forward, backward only scales it), ``"autograd"`` (the same forward, autograd's
        gradient) or ``"torch"`` (``F.cross_entropy`` itself).
    inplace: with ``impl="fused"``, write the gradient into ``input``'s storage instead of a
        new buffer. ``input``'s values are destroyed. Its version counter is bumped, so any
        autograd node that saved ``input`` (``tanh``, ``sigmoid``, ``exp``, ...) raises at
        backward instead of reading garbage; a leaf input that requires grad is refused.

    An all-ignored batch with ``reduction="mean"`` returns NaN, as F.cross_entropy does.
    Class-probability targets that require grad get their gradient from every impl.

    Off the CPU no check reads a value back from the device (no host-device
    synchronisation): a class index out of range then fails at the next synchronisation, as
    a device-side assertion (as ``F.cross_entropy``'s own check does), instead of raising
    ``IndexError`` here.
    """
    if size_average is not None or reduce is not None:
        reduction = _torch_private.legacy_reduction(size_average, reduce)
    _check_impl(impl, inplace)
    spec = _validate.check_all(input, target, weight, ignore_index, reduction, label_smoothing)
    if inplace:
        _check_inplace(input, impl, spec)
    options = Options(impl, reduction, ignore_index, label_smoothing, inplace)
    return _dispatch(input, target, weight, options, spec)


def _check_impl(impl, inplace) -> None:
    if impl not in IMPL_CHOICES:
        raise ValueError(f"impl must be one of {IMPL_CHOICES}, got {impl!r}")
    if not isinstance(inplace, bool):
        raise TypeError(f"inplace must be a bool, got {type(inplace).__name__}")


def cross_entropy_rows(logits, target, options: Options = Options()):
    """Cross-entropy of ``(N, C)`` logits and ``(N,)`` class indices, all in ``[0, C)``.

    The registry's contract (no index is ignored, so every target must be a valid class);
    ``options`` carries the scalar options (``Options()``: ``impl="manual"``, mean). The
    registry entries are this function with a fixed ``Options``. Checks every argument before
    any arithmetic, as ``cross_entropy`` does.
    """
    if not isinstance(options, Options):
        raise TypeError(f"options must be a softmaxloss Options, got {type(options).__name__}")
    _check_impl(options.impl, options.inplace)
    spec = _validate.check_registry_call(logits, target)
    _validate.check_options(
        logits, spec.num_classes, None, options.reduction, options.label_smoothing
    )
    if options.inplace:
        if logits.dtype not in (torch.float32, torch.float64):  # a skip for the benchmarks
            raise UnsupportedDtypeError(
                f"inplace=True needs float32 or float64 logits, got {logits.dtype}"
            )
        _check_inplace(logits, options.impl, spec)
    return _dispatch(logits, target, None, options, spec)


class SoftmaxCrossEntropyLoss(nn.Module):
    """``nn.CrossEntropyLoss`` twin: same constructor arguments, plus ``impl``/``inplace``."""

    def __init__(
        self,
        weight=None,
        size_average=None,
        ignore_index: int = -100,
        reduce=None,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
        *,
        impl: str = "manual",
        inplace: bool = False,
    ) -> None:
        super().__init__()
        if size_average is not None or reduce is not None:
            reduction = _torch_private.legacy_reduction(size_average, reduce)
        if impl not in IMPL_CHOICES:
            raise ValueError(f"impl must be one of {IMPL_CHOICES}, got {impl!r}")
        if reduction not in _validate.REDUCTIONS:
            raise ValueError(f"reduction must be one of {_validate.REDUCTIONS}, got {reduction!r}")
        self.register_buffer("weight", weight)
        self.ignore_index = ignore_index
        self.reduction = reduction
        self.label_smoothing = label_smoothing
        self.impl = impl
        self.inplace = inplace

    def forward(self, input, target):
        return cross_entropy(
            input,
            target,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
            label_smoothing=self.label_smoothing,
            impl=self.impl,
            inplace=self.inplace,
        )

    def extra_repr(self) -> str:
        return f"impl={self.impl!r}, reduction={self.reduction!r}"
