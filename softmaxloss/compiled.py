"""``torch.compile`` of the package's own math, as registry entries.

The argument checks run eagerly, outside the compiled region (they raise Python exceptions
and read values, which would break the graph); only the math is compiled, and it compiles to
one graph without breaks (tests/test_compiled.py checks it):

* ``compiled``: the autograd twin (``impl="autograd"``: ``manual``'s forward math; autograd,
  through AOTAutograd, derives and compiles the backward);
* ``compiled_manual``: ``manual``'s hand-written Python Function (``ManualCrossEntropy``),
  forward and backward.

Both run the registry's case (class indices in ``[0, C)``, no class weights, no smoothing,
mean), which the Functions take on their fast path. Which backend serves is fixed here (the
Python code, which the compiler traces), not decided per call as in ``functional._run``.

``torch.compile``'s defaults, as a user would call it: the first shape is compiled static (a
training loop with a fixed batch never compiles again); a second shape recompiles with
dynamic sizes; past dynamo's recompile limit calls run eagerly. The first call pays the
compilation (tens of seconds on a small CPU with a cold cache); benchmarks warm up before
timing, and time compilation separately (bench_compile.py).

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


_MEAN = functional.Reduction.MEAN


def _autograd_math(x, target):
    """the autograd twin of ``manual``'s forward (autograd derives the backward)."""
    cdt = functional._compute_dtype(x.dtype)
    loss = functional._autograd_rows(x.to(cdt), target.long(), None, None, _MEAN, 0.0)
    return loss.to(x.dtype)


def _manual_math(x, target):
    """the hand-written ``manual`` Function, forward and backward."""
    cdt = functional._compute_dtype(x.dtype)
    loss = functional.ManualCrossEntropy.apply(x.to(cdt), target.long(), None, _MEAN)
    return loss.to(x.dtype)


_MATH = {"compiled": _autograd_math, "compiled_manual": _manual_math}


@functools.cache
def compiled_math(name: str):
    """The compiled function of an entry (built once per process, on first use)."""
    return torch.compile(_MATH[name])


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
