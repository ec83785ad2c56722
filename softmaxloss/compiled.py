"""``torch.compile`` of the package's own math, as registry entries.

The argument checks run eagerly, outside the compiled region (they raise Python exceptions
and read values, which would break the graph); only the math is compiled, with
``fullgraph=True`` so that a graph break is an error instead of a silent split:

* ``compiled``: the stable autograd twin (``impl="autograd"``'s forward; autograd, through
  AOTAutograd, derives and compiles the backward);
* ``compiled_manual``: the hand-written ``impl="manual"`` Function, forward and backward.

Shapes are compiled static (``dynamic=False``), as a training loop with a fixed batch sees
them: each new shape compiles once, later calls reuse it. The first call with a shape pays
the compilation (tens of seconds on a small CPU with a cold cache); benchmarks warm up
before timing, and time compilation separately.

Availability: ``unavailable_reason()`` says, without compiling anything, why compilation
cannot work here (``None`` when it can); the registry registers these entries only when it
is ``None`` and records the reason otherwise. Nothing of ``torch._dynamo`` is imported until
the first call.
"""

from __future__ import annotations

import functools
import os
import shutil

import torch

from softmaxloss import _validate, functional

_CXX = ("g++", "clang++", "c++")


@functools.cache
def unavailable_reason() -> str | None:
    """Why ``torch.compile`` cannot compile here, or None. Cheap: compiles nothing."""
    if not hasattr(torch, "compile"):
        return f"torch {torch.__version__} has no torch.compile"
    cxx = os.environ.get("CXX")
    if not (cxx and shutil.which(cxx)) and not any(shutil.which(c) for c in _CXX):
        return (
            "no C++ compiler (CXX, g++, clang++ or c++ on PATH) for inductor's CPU code, "
            "so torch.compile cannot build kernels here"
        )
    return None


def _autograd_math(x, target):
    """The autograd twin's stable forward for the registry's case; autograd differentiates."""
    cdt = functional._compute_dtype(x.dtype)
    loss = functional._autograd_rows(x.to(cdt), target, None, -100, "mean", 0.0, False)
    return loss.to(x.dtype)


def _manual_math(x, target):
    """The hand-written Function (forward and backward) for the registry's case."""
    cdt = functional._compute_dtype(x.dtype)
    loss = functional.ManualCrossEntropy.apply(x.to(cdt), target, None, -100, 1, 0.0)[0]
    return loss.to(x.dtype)


_MATH = {"compiled": _autograd_math, "compiled_manual": _manual_math}


@functools.cache
def compiled_math(name: str):
    """The compiled function of an entry (built once per process, on first use)."""
    return torch.compile(_MATH[name], fullgraph=True, dynamic=False)


def _entry(name: str):
    def loss(logits, target):
        _validate.check_registry_call(logits, target)  # eager, before any compiled code
        return compiled_math(name)(logits, target)

    loss.__name__ = loss.__qualname__ = name
    loss.__doc__ = f"Registry entry: ``torch.compile`` of {_MATH[name].__doc__}"
    return loss


compiled = _entry("compiled")
compiled_manual = _entry("compiled_manual")

ENTRIES = {"compiled": compiled, "compiled_manual": compiled_manual}
"""The entries this module provides, by registry name."""
