r"""The exact reference and the error metrics every consumer reports.

Reference
---------
``reference_loss_and_grad`` recomputes the registry's loss (mean softmax cross-entropy over
class indices) and its gradient in numpy ``longdouble`` from the *same rounded inputs* the
implementation saw. On x86-64 Linux ``longdouble`` is the x87 80-bit format: 64-bit
significand, eps = 2**-63 ~ 1.1e-19, i.e. 2048x finer than float64's eps and 2**40 x finer
than float32's. The reference uses the stable formulas (max subtraction, log-sum-exp) and
numpy's pairwise summation, so its own relative error is a few longdouble eps times
log2(C), far below one float64 eps: errors of float64 implementations are resolved to a
small fraction of an eps. Conversions float16/bfloat16/float32/float64 -> longdouble are
exact. The test suite checks the reference against mpmath at 50 significant digits. On a
platform whose ``longdouble`` is plain double (Windows, macOS on Arm) the reference refuses
to run rather than report a meaningless number.

Metrics (normwise, in units of the input dtype's eps = ``torch.finfo(dtype).eps``)
------------------------------------------------------------------------------------
    grad error = max|g - g*| / max(max|g*|, tiny) / eps
    loss error = |L - L*| / max(|L*|, tiny) / eps

with ``tiny = torch.finfo(dtype).tiny``. A non-finite loss or gradient gives ``inf``, never a
dropped value. The seed's metric, the L1 distance between two gradients, is
``grad_l1_distance``. ``capped`` maps an error to what asv records: ``max(error, 1)`` (so a
harmless 0 -> 0.3 eps change is no regression) and at most ``ERROR_CAP`` (non-finite
included), because asv cannot publish ``inf``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from lossbench.harness import leaf_and_logits

ERROR_CAP = 1e12
"""Ceiling, in eps, for recorded errors; non-finite errors are recorded as this value."""

_LD = np.longdouble


def _require_extended() -> None:
    if np.finfo(_LD).eps > 1e-18:
        raise RuntimeError(
            f"numpy longdouble has eps {np.finfo(_LD).eps} on this platform; the exact "
            "reference needs an extended format (x86-64 Linux: 80-bit, eps 1.1e-19)"
        )


def to_longdouble(t: torch.Tensor) -> np.ndarray:
    # float64 holds every float16/bfloat16/float32 value exactly; float64 -> longdouble too.
    return t.detach().to("cpu", torch.float64).numpy().astype(_LD)


def _check(logits, target) -> None:
    """The registry's contract, checked here and not by the package's own checks: the
    reference must not share code with what it measures."""
    if not (isinstance(logits, torch.Tensor) and logits.is_floating_point()):
        raise TypeError(f"logits must be a floating tensor, got {type(logits).__name__}")
    if logits.dim() != 2:
        raise ValueError(f"logits must have shape (N, C), got shape {tuple(logits.shape)}")
    if not isinstance(target, torch.Tensor) or target.is_floating_point() or target.is_complex():
        raise TypeError("target must be an integer tensor of class indices")
    if target.shape != logits.shape[:1]:
        raise ValueError(f"target must have shape ({logits.shape[0]},), got {tuple(target.shape)}")
    bad = target[(target < 0) | (target >= logits.shape[1])]
    if bad.numel():
        raise IndexError(f"class index {int(bad[0])} is out of range for {logits.shape[1]} classes")


def reference_loss_and_grad(logits: torch.Tensor, target: torch.Tensor):
    """Mean cross-entropy and its gradient in extended precision.

    Returns ``(loss, grad)``: a ``np.longdouble`` and an ``(N, C)`` longdouble array.
    """
    _check(logits, target)
    _require_extended()
    return loss_and_grad_ld(to_longdouble(logits), target.detach().to("cpu", torch.int64).numpy())


def loss_and_grad_ld(x: np.ndarray, t: np.ndarray):
    """:func:`reference_loss_and_grad`'s math on longdouble logits ``x`` and class indices
    ``t`` (numpy arrays, unchecked): the stable formula, in ``x``'s precision."""
    n = x.shape[0]
    rows = np.arange(n)
    m = x.max(axis=1, keepdims=True)
    e = np.exp(x - m)
    s = e.sum(axis=1, keepdims=True)
    lse = m[:, 0] + np.log(s[:, 0])
    loss = (lse - x[rows, t]).sum() / _LD(n)
    grad = e / s
    grad[rows, t] -= 1
    grad /= _LD(n)
    return loss, grad


def _eps(dtype: torch.dtype) -> tuple[float, float]:
    info = torch.finfo(dtype)
    return info.eps, info.tiny


def grad_error_eps(grad: torch.Tensor, ref_grad: np.ndarray, dtype: torch.dtype) -> float:
    """max|g - g*| / max(max|g*|, tiny) / eps(dtype); inf if ``grad`` is not finite."""
    eps, tiny = _eps(dtype)
    g = to_longdouble(grad)
    if not np.isfinite(g).all():
        return math.inf
    scale = max(float(np.abs(ref_grad).max(initial=0)), tiny)
    return float(np.abs(g - ref_grad).max(initial=0)) / scale / eps


def loss_error_eps(loss, ref_loss, dtype: torch.dtype) -> float:
    """|L - L*| / max(|L*|, tiny) / eps(dtype); inf if ``loss`` is not finite."""
    eps, tiny = _eps(dtype)
    value = _LD(float(loss)) if not isinstance(loss, torch.Tensor) else to_longdouble(loss)[()]
    if not np.isfinite(value):
        return math.inf
    return float(abs(value - ref_loss)) / max(float(abs(ref_loss)), tiny) / eps


def grad_l1_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """The seed's metric: sum |a - b|, accumulated in float64."""
    return float((a.detach().double() - b.detach().double()).abs().sum())


def capped(error: float) -> float:
    """What asv records: ``max(error, 1)``, at most ``ERROR_CAP`` (non-finite -> cap)."""
    if not math.isfinite(error):
        return ERROR_CAP
    return min(max(error, 1.0), ERROR_CAP)


@dataclass(frozen=True)
class ErrorReport:
    loss: float
    loss_error_eps: float
    grad_error_eps: float
    grad: torch.Tensor


def measure(impl, logits: torch.Tensor, target: torch.Tensor, reference=None) -> ErrorReport:
    """Runs ``impl`` (a registry name or callable) forward+backward and scores it.

    ``impl`` is fed a non-leaf copy of ``logits`` (``harness.leaf_and_logits``); the gradient
    scored is the one that reaches the leaf.

    ``reference`` is a precomputed ``reference_loss_and_grad(logits, target)`` (it is the
    slow part, so callers measuring several implementations compute it once).
    """
    if isinstance(impl, str):
        from softmaxloss import IMPLEMENTATIONS  # the public registry of the measured package

        if impl not in IMPLEMENTATIONS:
            raise ValueError(
                f"impl must be one of {tuple(IMPLEMENTATIONS)} (softmaxloss.IMPLEMENTATIONS), "
                f"got {impl!r}"
            )
        impl = IMPLEMENTATIONS[impl]
    ref_loss, ref_grad = reference or reference_loss_and_grad(logits, target)
    x, fed = leaf_and_logits(logits)  # non-leaf logits: see softmaxloss.registry
    loss = impl(fed, target)
    loss.backward()
    if x.grad is None:
        name = getattr(impl, "__name__", repr(impl))
        raise RuntimeError(f"implementation {name} gave no gradient with respect to logits")
    dtype = logits.dtype
    return ErrorReport(
        loss=float(loss.detach()),
        loss_error_eps=loss_error_eps(loss, ref_loss, dtype),
        grad_error_eps=grad_error_eps(x.grad, ref_grad, dtype),
        grad=x.grad,
    )
