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
    (``enum class Reduction`` in ``csrc/cross_entropy_cpu.cpp``, the same values;
    tests/test_cpu_ext.py fails if they ever disagree)."""

    NONE = 0
    MEAN = 1
    SUM = 2

    @classmethod
    def of(cls, name: str) -> Reduction:
        """``"none"``, ``"mean"`` or ``"sum"`` (``F.cross_entropy``'s names)."""
        return _REDUCTION_NAMES[name]


_REDUCTION_NAMES = {r.name.lower(): r for r in Reduction}
# The members as module globals for the per-call code: a global reads in ~20 ns, an enum
# member (``Reduction.NONE``) in ~300 ns, and every call makes several such reads.
_NONE, _MEAN, _SUM = Reduction.NONE, Reduction.MEAN, Reduction.SUM


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


# ----------------------------------------------------------------------------------------
# Shared pieces of math: plain tensor code, so the autograd twin reuses them. Per-row
# quantities are (M, 1) tensors; ``kept2`` is the (M, 1) bool mask of kept rows, or None when
# the argument check proved that no row is ignored. ``None`` also stands for a trivial
# factor (no class weights: w = 1), so the simple case issues no op for it.
# ----------------------------------------------------------------------------------------
def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float16/bfloat16 are computed in float32 (PyTorch's 'opmath'), results cast back."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _grad_output_is_one(grad_output) -> bool:
    """Whether grad_output is exactly 1 (a plain ``loss.backward()``), asked on the CPU only:
    off the CPU reading the value back would wait for the device (a host-device
    synchronisation), so there the answer is False and the caller scales."""
    return grad_output.device.type == "cpu" and grad_output.item() == 1


_CHUNK_BYTES = 4 << 20


def _log_p_at_target(x, t2):
    """``log p_{n,t_n}`` as an (M, 1) tensor (``t2``: the (M, 1) targets), through one scratch
    buffer of at most about 4 MiB (chunks of rows), never a logits-sized temporary (on these
    machines the first touch of a fresh 40 MB buffer costs more than the arithmetic).

    log p_{n,t_n} = (x_{n,t_n} - m_n) - log s_n: log_softmax evaluates it in this order, so
    large logits cost no precision.
    """
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


def _index_rows(x, t2, kept2, weight, smoothing):
    """``(wt, S, D)`` of class-index targets for the (M, C) logits ``x``.

    wt_n = w_{t_n} and S_n = sum_c q_nc = (1 - e) wt_n + (e / C) sum_c w_c, as (M, 1); both
    None without class weights (w = 1, so S_n = (1 - e) + e = 1). D = sum_n wt_n [n kept],
    the mean's denominator (0-dim, in x's dtype); None when it is the row count (no weights,
    no row ignored).
    """
    if weight is None:
        return None, None, None if kept2 is None else kept2.sum(dtype=x.dtype)
    wt = weight[t2]
    S = wt * (1.0 - smoothing) + (smoothing / x.shape[1]) * weight.sum() if smoothing else wt
    return wt, S, wt.sum() if kept2 is None else (wt * kept2).sum()


def _index_loss(log_p, log_p_t, wt, weight, smoothing):
    """l_n = (1 - e) wt_n (-log p_{n,t_n}) + (e / C) sum_c w_c (-log p_nc), as (M, 1).

    Every term is >= 0 (-log p = (m - x) + log s), so nothing cancels. ``log_p`` (the whole
    log-softmax) is read with smoothing only.
    """
    loss = log_p_t.neg()
    if wt is not None:
        loss = loss.mul_(wt)
    if smoothing:
        C = log_p.shape[1]
        dense = log_p.sum(1, keepdim=True) if weight is None else log_p @ weight[:, None]
        loss = loss.mul_(1.0 - smoothing).sub_(dense, alpha=smoothing / C)
    return loss


def _prob_rows(target, weight, smoothing, num_classes):
    """q_nc = w_c ((1 - e) P_nc + e / C) and S_n = sum_c q_nc (M, 1)."""
    q = target * (1.0 - smoothing) + smoothing / num_classes if smoothing else target
    if weight is not None:
        q = q * weight
    return q, q.sum(1, keepdim=True)


def _row_dot(a, b):
    """sum_c a_nc b_nc as (M, 1), without an (M, C) temporary."""
    return torch.bmm(a.unsqueeze(1), b.unsqueeze(2)).view(-1, 1)


def _reduce(loss_rows, kept2, reduction: Reduction, denominator):
    """The loss from its (M, 1) rows: 0 on ignored rows (``where``, not a product: an ignored
    row of inf/NaN logits has a NaN l_n, and 0 * NaN is NaN), then the rows (none), their
    sum (sum) or sum / D (mean; D = the row count when None). No rows, or D = 0: NaN, as F."""
    if kept2 is not None:
        loss_rows = torch.where(kept2, loss_rows, 0.0)
    if reduction == _NONE:
        return loss_rows.view(-1)
    if reduction == _SUM:
        return loss_rows.sum()
    return loss_rows.mean() if denominator is None else loss_rows.sum() / denominator


def _row_scale(grad_output, reduction: Reduction, denominator, rows):
    """r_n of the module docstring from the incoming gradient: g_n as (M, 1) (none), g
    (sum) or g / D (mean; D = ``rows`` when None), a 0-dim tensor."""
    if reduction == _NONE:
        return grad_output[:, None]
    if reduction == _SUM:
        return grad_output
    if denominator is None:
        return grad_output * (1.0 / rows if rows else float("nan"))
    return grad_output / denominator


def _index_grad_(p, t2, kept2, r, wt, S, weight, smoothing):
    """Turns the softmax ``p`` into the gradient r_n (S_n p_nc - q_nc) in place, 0 on ignored
    rows, with q_nc = (1 - e) wt_n [c = t_n] + (e / C) w_c.

    ``r``: a Python float (a constant scale: no tensor op for it) or a 0-dim or (M, 1) tensor.
    """
    constant = isinstance(r, float)
    #   r_n S_n p_nc
    if S is not None:
        p.mul_(r * S)
    elif not (constant and r == 1.0):
        p.mul_(r)
    #   - r_n (1 - e) wt_n   at (n, t_n)
    if constant:
        at_t = p.new_full((1, 1), -(1.0 - smoothing) * r)
    else:
        at_t = r * -(1.0 - smoothing) if smoothing else r.neg()
    if wt is not None:
        at_t = at_t * wt
    p.scatter_add_(1, t2, at_t.expand(p.shape[0], 1))
    if smoothing:
        #   - r_n (e / C) w_c   on every row
        e_c = smoothing / p.shape[1]
        if weight is None:
            p.sub_(r * e_c)
        elif constant:
            p.add_(weight, alpha=-r * e_c)
        else:
            p.addcmul_(r, weight, value=-e_c)
    # ignored rows: 0 even where their logits are inf/NaN (as F); unconditionally, since
    # asking whether any row is ignored would wait for the device
    if kept2 is not None:
        p.masked_fill_(~kept2, 0.0)
    return p


def _softmax_into(g):
    """softmax over dim 1, written into ``g`` itself (no new buffer)."""
    return _torch_private.softmax_into(g, 1, out=g)


# ----------------------------------------------------------------------------------------
# The hand-written Functions: one per gradient, each covering every option on (M, C) rows in
# the compute dtype. ``t``: (M,) int64 class indices (ignored rows pointed at any valid
# class) with ``kept`` the (M,) bool mask of kept rows or None, or (M, C) class
# probabilities (``kept`` None). The simple case (class indices, no weights, no smoothing:
# every registry call) takes the fewest tiny tensor ops and no logits-sized temporary
# besides the gradient. No host-device synchronisation off the CPU.
#
# Both are old-style Functions (``forward(ctx, ...)``): ``apply`` of a Function with
# ``setup_context`` binds its arguments through ``inspect.signature`` on every call, which
# costs more than the arithmetic of a small input. The arguments after ``reduction`` have
# defaults, so the simple case passes fewer; backward returns a gradient slot for every
# argument, and autograd drops the trailing Nones of those not passed.
# ----------------------------------------------------------------------------------------
class ManualCrossEntropy(torch.autograd.Function):
    """``manual``: the stable forward keeps nothing logits-sized; backward recomputes p."""

    @staticmethod
    def forward(ctx, x, t, kept, reduction: Reduction, weight=None, smoothing: float = 0.0):
        ctx.reduction, ctx.smoothing = reduction, smoothing
        if t.dtype.is_floating_point:  # class probabilities
            q, S = _prob_rows(t, weight, smoothing, x.shape[1])
            # l_n = -sum_c q_nc log p_nc (every term >= 0)
            loss = _row_dot(torch.log_softmax(x, 1), q).neg_()
            ctx.save_for_backward(x, t, None, weight, None, S, None)  # S and no wt: P
            return _reduce(loss, None, reduction, None)  # mean: over rows
        t2 = t.unsqueeze(1)
        kept2 = None if kept is None else kept.unsqueeze(1)
        wt, S, D = _index_rows(x, t2, kept2, weight, smoothing)
        log_p = torch.log_softmax(x, 1) if smoothing else None  # smoothing reads every log p
        log_p_t = _log_p_at_target(x, t2) if log_p is None else log_p.gather(1, t2)
        ctx.save_for_backward(x, t2, kept2, weight, wt, S, D)
        return _reduce(_index_loss(log_p, log_p_t, wt, weight, smoothing), kept2, reduction, D)

    @staticmethod
    def backward(ctx, grad_output):
        _validate.refuse_double_backward()
        smoothing = ctx.smoothing
        x, t, kept2, weight, wt, S, D = ctx.saved_tensors
        r = _row_scale(grad_output, ctx.reduction, D, x.shape[0])
        if S is not None and wt is None:  # class probabilities (t: P; see forward)
            q, _ = _prob_rows(t, weight, smoothing, x.shape[1])
            grad_target = None
            if ctx.needs_input_grad[1]:
                # d l_n / d P_nc = -(1 - e) w_c log p_nc, times r_n
                w = -(1.0 - smoothing) if weight is None else weight * -(1.0 - smoothing)
                grad_target = torch.log_softmax(x, 1).mul_(w).mul_(r)
            # d l_n / d x_nc = r_n (S_n p_nc - q_nc)
            grad = torch.softmax(x, 1).mul_(r * S).sub_(q * r)
            return grad, grad_target, None, None, None, None
        # p = exp(x - m) / s: the max shift keeps large logits exact (t: the (M, 1) indices)
        grad = _index_grad_(torch.softmax(x, 1), t, kept2, r, wt, S, weight, smoothing)
        return grad, None, None, None, None, None


class FusedCrossEntropy(torch.autograd.Function):
    """``fused``: forward builds the gradient for grad_output = 1 with one pass of
    exponentials; backward only scales it.

    Memory: one logits-sized buffer ``g`` (none with ``inplace``, which writes it into the
    logits' storage; float16/bfloat16 in place compute in a float32 working copy here, the
    C++ Function in none). Backward hands ``g`` itself over when grad_output is 1 for a reduced
    loss, so forward+backward peaks at one extra buffer. For probability targets that
    require grad, forward also builds the target's gradient in a second buffer.
    """

    @staticmethod
    def forward(
        ctx, x, t, kept, reduction: Reduction, inplace=False, weight=None, smoothing: float = 0.0
    ):
        M, C = x.shape
        ctx.reduction, ctx.inplace = reduction, inplace
        storage = None
        if inplace and x.dtype != (cdt := _compute_dtype(x.dtype)):
            # float16/bfloat16 in place: the math in float32 on a working copy, the gradient
            # written back into the logits' own storage at the end (the C++ Function, which
            # serves the simple case on the CPU, needs no copy)
            storage, x = x, x.to(cdt)
        m = x.amax(1, keepdim=True)  # m_n
        grad_target = None
        if t.dtype.is_floating_point:  # class probabilities
            q, S = _prob_rows(t, weight, smoothing, C)
            g = x.sub_(m) if inplace else x - m  # x_nc - m_n <= 0, in the gradient's buffer
            shifted_dot = _row_dot(g, q)  # sum_c q_nc (x_nc - m_n)
            if ctx.needs_input_grad[1]:  # log p = log_softmax(x - m), before g turns into p
                grad_target = torch.log_softmax(g, 1)
            g = _softmax_into(g)  # softmax is shift-invariant: softmax(x - m) = p
            # max_c p_nc = exp(0) / s_n, so log s_n = -log max_c p_nc: one read pass over p
            # instead of a second pass of exponentials (the max is >= 1/C: no underflow)
            log_p_max = g.amax(1, keepdim=True).log_()
            # l_n = S_n log s_n - sum_c q_nc (x_nc - m_n): both terms >= 0, no cancellation
            loss = log_p_max.mul_(S).add_(shifted_dot).neg_()
            r = (1.0 / M if M else float("nan")) if reduction == _MEAN else 1.0
            # gradient: r (S_n p_nc - q_nc)
            g.mul_(S * r).sub_(q * r)
            if grad_target is not None:
                # d l_n / d P_nc = -(1 - e) w_c log p_nc, times r
                w = -(1.0 - smoothing) if weight is None else weight * -(1.0 - smoothing)
                grad_target.mul_(w * r)
            ctx.save_for_backward(g if storage is None else storage.copy_(g), grad_target)
            return _reduce(loss, None, reduction, None)
        t2 = t.unsqueeze(1)
        kept2 = None if kept is None else kept.unsqueeze(1)
        wt, S, D = _index_rows(x, t2, kept2, weight, smoothing)
        if smoothing:  # the smoothing term reads every x_nc - m_n
            g = x.sub_(m) if inplace else x - m  # x_nc - m_n <= 0, in the gradient's buffer
            shifted_t = g.gather(1, t2)  # x_{n,t_n} - m_n
            # sum_c w_c (x_nc - m_n), every term <= 0
            w_dot = g.sum(1, keepdim=True) if weight is None else g @ weight[:, None]
            g = _softmax_into(g)  # softmax(x - m) = p
        else:  # read x_{n,t_n} before an inplace softmax overwrites it
            shifted_t = x.gather(1, t2) - m  # x_{n,t_n} - m_n <= 0, exact
            g = _softmax_into(x) if inplace else torch.softmax(x, 1)
        log_p_max = g.amax(1, keepdim=True).log_()  # log max_c p_nc = -log s_n (see above)
        if smoothing:
            # sum_c w_c (lse_n - x_nc) = (sum_c w_c) log s_n - sum_c w_c (x_nc - m_n) >= 0
            w_sum = C if weight is None else weight.sum()
            smooth = (log_p_max * w_sum).add_(w_dot).neg_()
        # -log p_{n,t_n} = (m_n - x_{n,t_n}) + log s_n: both terms >= 0
        loss = log_p_max.add_(shifted_t).neg_()
        if wt is not None:
            loss = loss.mul_(wt)
        if smoothing:  # l_n = (1 - e) wt_n (-log p_{n,t_n}) + (e / C) sum_c w_c (-log p_nc)
            loss = loss.mul_(1.0 - smoothing).add_(smooth, alpha=smoothing / C)
        # r before grad_output: 1 / D (mean), 1 (sum; none, scaled by g_n in backward)
        if reduction != _MEAN:
            r = 1.0
        elif D is None:
            r = 1.0 / M if M else float("nan")
        else:
            r = 1.0 / D
        _index_grad_(g, t2, kept2, r, wt, S, weight, smoothing)
        ctx.save_for_backward(g if storage is None else storage.copy_(g), None)
        return _reduce(loss, kept2, reduction, D)

    @staticmethod
    def backward(ctx, grad_output):
        _validate.refuse_double_backward()
        g, grad_target = ctx.saved_tensors
        if ctx.reduction == _NONE:
            grad_output = grad_output[:, None]
        elif _grad_output_is_one(grad_output):
            # hand g over as it is. Autograd keeps it as a .grad without a copy once this
            # node has released its saved tensors, and copies it while they are kept
            # (retain_graph=True: a later backward reads g again). With inplace, g is the
            # caller's logits tensor, which autograd would always copy: a view of it is kept
            # as is (after which a repeated backward raises: the .grad, accumulated in place,
            # is g's storage, and the version counter says so).
            g = g.view_as(g) if ctx.inplace else g
            return g, grad_target, None, None, None, None, None
        if grad_target is not None:
            grad_target = grad_target * grad_output
        return g * grad_output, grad_target, None, None, None, None, None


# ----------------------------------------------------------------------------------------
# The autograd twin: manual's forward math, differentiated by autograd.
# ----------------------------------------------------------------------------------------
def _autograd_rows(x, t, kept, weight, reduction: Reduction, smoothing: float):
    """The loss of (M, C) rows (``t`` and ``kept`` as the Functions take them) by
    ``manual``'s forward math, left to autograd (log_softmax's own backward)."""
    log_p = torch.log_softmax(x, 1)
    if t.dtype.is_floating_point:  # class probabilities
        q, _ = _prob_rows(t, weight, smoothing, x.shape[1])
        return _reduce((log_p * q).sum(1, keepdim=True).neg(), None, reduction, None)
    t2 = t.unsqueeze(1)
    kept2 = None if kept is None else kept.unsqueeze(1)
    wt, _, D = _index_rows(x, t2, kept2, weight, smoothing)
    loss = _index_loss(log_p, log_p.gather(1, t2), wt, weight, smoothing)
    # autograd would scale ignored rows by 0 * (1 / D) = NaN when D = 0; F gives them 0
    return _reduce(loss, kept2, reduction, D)


# ----------------------------------------------------------------------------------------
# Layout: (C,), (N, C) and (N, C, d1, ..., dk) inputs become (M, C) rows.
# ----------------------------------------------------------------------------------------
def _to_rows(input, target, spec):
    """(C,) or (N, C, d1, ..., dk) input (and target) as rows."""
    if spec.unbatched:
        return input.unsqueeze(0), target.unsqueeze(0)
    C = spec.num_classes
    x = input.movedim(1, -1).reshape(-1, C)
    t = target.movedim(1, -1).reshape(-1, C) if spec.prob_target else target.reshape(-1)
    return x, t


def _from_rows(loss, input, spec):
    """The unreduced loss of (C,) or (N, C, d1, ..., dk) input in its shape."""
    if spec.unbatched:
        return loss.squeeze(0)
    return loss.reshape(input.shape[0], *input.shape[2:])


_DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)
"""The logits' dtypes every backend takes, ``inplace`` included."""


def _cpp_applies(x) -> bool:
    """The C++ Functions (``_cpu_ext``) take float32/float64/bfloat16/float16 CPU logits
    (bfloat16/float16 as they are: widened to float32 in registers, no float32 copy),
    outside ``torch.compile`` (which traces the Python Functions)."""
    return x.device.type == "cpu" and x.dtype in _DTYPES and not torch.compiler.is_compiling()


def _run(input, target, weight, options: Options, spec):
    """Runs a validated call. The one place that decides which backend computes it:
    ``F.cross_entropy`` (impl="torch"), the autograd twin (impl="autograd"), the C++
    Function of ``manual``/``fused`` (the simple case on the CPU, where it is built) or the
    Python Function."""
    impl, inplace = options.impl, options.inplace
    if impl == "torch":
        return F.cross_entropy(
            input,
            target.to(input.dtype) if spec.prob_target else target.long(),
            weight=None if weight is None else weight.to(input.dtype),
            ignore_index=options.ignore_index,
            reduction=options.reduction,
            label_smoothing=options.label_smoothing,
        )
    dtype, as_rows = input.dtype, input.dim() == 2  # (N, C): rows already
    x, t = (input, target) if as_rows else _to_rows(input, target, spec)
    reduction = _REDUCTION_NAMES[options.reduction]
    smoothing = float(options.label_smoothing)
    kept = None
    if not spec.prob_target:
        if t.dtype != torch.int64:
            t = t.long()
        if not spec.none_ignored:
            kept = t != options.ignore_index
            t = t.masked_fill(~kept, 0)  # ignored rows pointed at a valid class
    if (
        impl != "autograd"
        and weight is None
        and not smoothing
        and not spec.prob_target
        and _cpp_applies(x)
        and (ext := _cpu_ext.module()) is not None
    ):
        # the C++ Functions, in the logits' own dtype
        x = x.contiguous()  # inplace: x is contiguous (checked), so x itself is written
        if impl == "manual":
            loss = ext.manual(x, t.contiguous(), kept, reduction)
        else:
            loss = ext.fused(x, t.contiguous(), kept, reduction, inplace)
        return loss if as_rows or reduction != _NONE else _from_rows(loss, input, spec)
    # the Python Functions and the autograd twin compute float16/bfloat16 in float32: a
    # float32 copy of the logits (fused with inplace copies inside, to write the gradient
    # back into the logits' storage)
    cdt = _compute_dtype(dtype)
    if cdt != dtype and not inplace:
        x = x.to(cdt)
    w = None if weight is None else weight.to(cdt)
    if spec.prob_target:
        t = t.to(cdt)
    if impl == "autograd":
        loss = _autograd_rows(x, t, kept, w, reduction, smoothing)
    else:
        # each argument of apply costs about 1 us (torch walks them as a pytree): the simple
        # case leaves weight and smoothing to their defaults
        extra = () if w is None and not smoothing else (w, smoothing)
        if impl == "manual":
            loss = ManualCrossEntropy.apply(x, t, kept, reduction, *extra)
        else:
            x = x if inplace else x.contiguous()
            if t.requires_grad and not torch.is_grad_enabled():
                # forward builds the target's gradient when ctx.needs_input_grad asks for it,
                # and that reports requires_grad whatever the grad mode
                t = t.detach()
            loss = FusedCrossEntropy.apply(x, t, kept, reduction, inplace, *extra)
    loss = loss.to(dtype)
    return loss if as_rows or reduction != _NONE else _from_rows(loss, input, spec)


def _check_inplace(input, impl, spec):
    if impl != "fused":
        raise ValueError(f"inplace=True needs impl='fused', got impl={impl!r}")
    if input.dtype not in _DTYPES:
        raise ValueError(
            f"inplace=True needs float32, float64, bfloat16 or float16 input, got {input.dtype}"
        )
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
    return _run(input, target, weight, options, spec)


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
        if logits.dtype not in _DTYPES:  # a skip for the benchmarks
            raise UnsupportedDtypeError(
                f"inplace=True needs float32, float64, bfloat16 or float16 logits, "
                f"got {logits.dtype}"
            )
        _check_inplace(logits, options.impl, spec)
    return _run(logits, target, None, options, spec)


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
