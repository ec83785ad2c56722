"""Softmax cross-entropy with hand-written gradients, a drop-in for ``F.cross_entropy``.

Public API re-exports only. ``IMPLEMENTATIONS`` (``softmaxloss.registry``) is the single
registry, a plain dict ``name -> f(logits, target)``: the tests, the asv benchmarks and the
measuring tools (``lossbench``, beside this package; it imports this package, never the
reverse) all iterate over it, so assigning a new entry is all it takes to have an
implementation measured everywhere.
"""

from softmaxloss.errors import UnsupportedDtypeError
from softmaxloss.functional import (
    IMPL_CHOICES,
    Options,
    Reduction,
    SoftmaxCrossEntropyLoss,
    cross_entropy,
    cross_entropy_rows,
)
from softmaxloss.registry import IMPLEMENTATIONS, default_implementations

__version__ = "0.2.0"

__all__ = [
    "IMPLEMENTATIONS",
    "IMPL_CHOICES",
    "Options",
    "Reduction",
    "SoftmaxCrossEntropyLoss",
    "UnsupportedDtypeError",
    "cross_entropy",
    "cross_entropy_rows",
    "default_implementations",
]
