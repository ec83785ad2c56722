"""The one place that uses private torch APIs; ``tests/test_torch_private.py`` pins them.

* ``torch._softmax(x, dim, half_to_float, out=...)``: softmax written into an existing buffer.
  The public ``torch.softmax`` has no ``out=`` argument, and a fresh logits-sized buffer costs
  more than the arithmetic on these machines (the first touch of 40 MB) and, for the fused
  gradient, one extra buffer of peak memory.
* ``tensor._base``: the tensor a view was taken of (None for a tensor that owns its storage).
  Used to refuse ``inplace=True`` on a view of a leaf that requires grad.
* ``torch.nn._reduction.legacy_get_string(size_average, reduce)``: the deprecated
  ``size_average``/``reduce`` arguments turned into a ``reduction`` (with torch's own
  deprecation warning), exactly as ``F.cross_entropy`` does.

If a torch release renames or changes either, the test fails loudly, naming the call.
"""

from __future__ import annotations

import torch


def softmax_into(x: torch.Tensor, dim: int, out: torch.Tensor) -> torch.Tensor:
    """``softmax(x, dim)`` written into ``out`` (which may be ``x`` itself); returns ``out``."""
    return torch._softmax(x, dim, False, out=out)


def view_base(t: torch.Tensor) -> torch.Tensor:
    """The tensor owning ``t``'s storage: ``t._base`` for a view, ``t`` itself otherwise."""
    base = t._base
    return t if base is None else base


def legacy_reduction(size_average, reduce) -> str:
    """``reduction`` for the deprecated ``size_average``/``reduce`` pair (warns, as torch)."""
    return torch.nn._reduction.legacy_get_string(size_average, reduce)
