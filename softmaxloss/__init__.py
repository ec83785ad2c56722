"""Softmax cross-entropy with hand-written gradients, measured against an exact reference.

``IMPLEMENTATIONS`` is the single registry (a plain dict, name -> ``f(logits, target)``):
tests, benchmarks, the report command and the plots all iterate over it, so assigning a new
entry is all it takes to have an implementation measured everywhere.
"""

from softmaxloss._validate import UnsupportedDtypeError
from softmaxloss.functional import IMPLS, SoftmaxCrossEntropyLoss, cross_entropy
from softmaxloss.implementations import default_implementations
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

IMPLEMENTATIONS: dict = default_implementations()

__version__ = "0.1.0"

__all__ = [
    "ERROR_CAP",
    "IMPLEMENTATIONS",
    "IMPLS",
    "ErrorReport",
    "SoftmaxCrossEntropyLoss",
    "UnsupportedDtypeError",
    "capped",
    "cross_entropy",
    "default_implementations",
    "grad_error_eps",
    "grad_l1_distance",
    "loss_error_eps",
    "measure",
    "reference_loss_and_grad",
]
