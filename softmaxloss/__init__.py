"""Softmax cross-entropy with hand-written gradients, measured against an exact reference.

Public API re-exports only. ``IMPLEMENTATIONS`` (``softmaxloss.registry``) is the single
registry, a plain dict ``name -> f(logits, target)``: tests, benchmarks, the commands and the
plots all iterate over it, so assigning a new entry is all it takes to have an implementation
measured everywhere.
"""

from softmaxloss.errors import UnsupportedDtypeError, UsageError
from softmaxloss.functional import (
    IMPLS,
    Options,
    SoftmaxCrossEntropyLoss,
    cross_entropy,
    cross_entropy_rows,
)
from softmaxloss.reference import (
    ERROR_CAP,
    ErrorReport,
    capped,
    grad_error_eps,
    grad_l1_distance,
    loss_error_eps,
    measure,
    reference_loss_and_grad,
)
from softmaxloss.registry import IMPLEMENTATIONS, default_implementations

__version__ = "0.1.0"

__all__ = [
    "ERROR_CAP",
    "IMPLEMENTATIONS",
    "IMPLS",
    "ErrorReport",
    "Options",
    "SoftmaxCrossEntropyLoss",
    "UnsupportedDtypeError",
    "UsageError",
    "capped",
    "cross_entropy",
    "cross_entropy_rows",
    "default_implementations",
    "grad_error_eps",
    "grad_l1_distance",
    "loss_error_eps",
    "measure",
    "reference_loss_and_grad",
]
