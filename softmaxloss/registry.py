"""The registry: ``IMPLEMENTATIONS``, a plain dict ``name -> f(logits, target) -> loss``.

Tests, the asv benchmarks, the ``compare``/``ratios``/``depth`` commands and the plots all
iterate over it, so assigning a new entry is all it takes to have an implementation measured
everywhere.

Contract shared by every entry: ``logits`` is an ``(N, C)`` floating tensor, ``target`` an
``(N,)`` integer tensor of class indices in ``[0, C)``, the result is the mean loss as a 0-dim
tensor of the logits' dtype, differentiable with respect to ``logits``. Bad input raises
before any arithmetic.

Every consumer feeds an entry *non-leaf* logits (``leaf.clone()``, as a layer's output would
be) and a fresh copy per call: ``fused_inplace`` writes the gradient into the logits' storage
(their values are destroyed) and refuses a leaf that requires grad.
"""

from __future__ import annotations

from softmaxloss.functional import Options, cross_entropy_rows
from softmaxloss.naive import naive_autograd, naive_manual


def _entry(name: str, options: Options):
    def loss(logits, target):
        return cross_entropy_rows(logits, target, options)

    loss.__name__ = name
    loss.__qualname__ = name
    loss.__doc__ = f"Registry entry: ``cross_entropy_rows(logits, target, {options!r})``."
    return loss


manual = _entry("manual", Options(impl="manual"))
autograd = _entry("autograd", Options(impl="autograd"))
fused = _entry("fused", Options(impl="fused"))
fused_inplace = _entry("fused_inplace", Options(impl="fused", inplace=True))
torch_ = _entry("torch", Options(impl="torch"))


def default_implementations() -> dict:
    """A fresh copy of the built-in registry."""
    return {
        "naive_manual": naive_manual,
        "naive_autograd": naive_autograd,
        "manual": manual,
        "autograd": autograd,
        "fused": fused,
        "fused_inplace": fused_inplace,
        "torch": torch_,
    }


IMPLEMENTATIONS: dict = default_implementations()
