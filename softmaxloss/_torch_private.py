"""The one place that uses private torch APIs; ``tests/test_torch_private.py`` pins them.

* ``torch._softmax(x, dim, half_to_float, out=...)``: softmax written into an existing buffer.
  The public ``torch.softmax`` has no ``out=`` argument, and a fresh logits-sized buffer costs
  more than the arithmetic on these machines (the first touch of 40 MB) and, for the fused
  gradient, one extra buffer of peak memory.
* ``torch._log_softmax(x, dim, half_to_float, out=...)``: log-softmax written into an existing
  buffer (``manual``'s chunked forward: log p at the targets).
* ``tensor._base``: the tensor a view was taken of (None for a tensor that owns its storage).
  Used to refuse ``inplace=True`` on a view of a leaf that requires grad.
* ``torch.nn._reduction.legacy_get_string(size_average, reduce)``: the deprecated
  ``size_average``/``reduce`` arguments turned into a ``reduction`` (with torch's own
  deprecation warning), exactly as ``F.cross_entropy`` does.
* ``torch._assert_async(cond, msg)``: an assertion checked on the tensor's device without
  waiting for it (on CUDA it fails at the next synchronisation, as ``F.cross_entropy``'s own
  target check does). The class-index range check off the CPU.

If a torch release renames or changes any of them, the test fails loudly, naming the call.
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


def log_softmax_into(x: torch.Tensor, dim: int, out: torch.Tensor) -> torch.Tensor:
    """``log_softmax(x, dim)`` written into ``out`` (which may be ``x``); returns ``out``."""
    return torch._log_softmax(x, dim, False, out=out)


def assert_async(cond: torch.Tensor, message: str) -> None:
    """Asserts the 1-element boolean ``cond`` on its device, without a host synchronisation.

    On the CPU it raises ``RuntimeError(message)`` at once; on CUDA the failure surfaces at the
    next synchronisation (a device-side assertion).
    """
    torch._assert_async(cond, message)
