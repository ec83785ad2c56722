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

Optional entries are registered only where they can run: ``compiled``/``compiled_manual``
(``torch.compile``) where a compiler is available, ``triton``/``triton_inplace`` where the
``triton`` package imports and a CUDA device is present (or, for tests, under Triton's
interpreter, ``TRITON_INTERPRET=1``, on CPU tensors). ``UNAVAILABLE`` says why an optional
entry is missing (name -> reason).
"""

from __future__ import annotations

import importlib.util
import os

import torch

from softmaxloss import compiled
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


def _triton_unavailable_reason() -> str | None:
    """Why the Triton entries cannot run here, or None. Imports nothing of triton."""
    if importlib.util.find_spec("triton") is None:
        return "the triton package is not installed (pip install triton)"
    interpreted = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
    if not torch.cuda.is_available() and not interpreted:
        return (
            "no CUDA device: the Triton kernel runs on CUDA tensors (on the CPU only under "
            "Triton's interpreter, TRITON_INTERPRET=1)"
        )
    return None


def _optional_entries() -> tuple[dict, dict]:
    """``(entries, unavailable)``: the optional entries that can run here, and the reason
    for each that cannot."""
    entries, unavailable = {}, {}
    reason = compiled.unavailable_reason()
    for name, entry in compiled.ENTRIES.items():
        if reason is None:
            entries[name] = entry
        else:
            unavailable[name] = reason
    reason = _triton_unavailable_reason()
    if reason is None:
        from softmaxloss import triton_ce  # imports triton: only where it can run

        entries.update(triton_ce.ENTRIES)
    else:
        unavailable.update(triton=reason, triton_inplace=reason)
    return entries, unavailable


_OPTIONAL, UNAVAILABLE = _optional_entries()
"""``UNAVAILABLE``: optional entries this machine cannot run, name -> reason."""


def default_implementations() -> dict:
    """A fresh copy of the built-in registry (the optional entries that can run here)."""
    return {
        "naive_manual": naive_manual,
        "naive_autograd": naive_autograd,
        "manual": manual,
        "autograd": autograd,
        "fused": fused,
        "fused_inplace": fused_inplace,
        "torch": torch_,
        **_OPTIONAL,
    }


IMPLEMENTATIONS: dict = default_implementations()
