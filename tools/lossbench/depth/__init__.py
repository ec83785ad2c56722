r"""The depth experiment (``python -m lossbench depth``): the gradient difference vs depth.

The seed's second experiment ("compute difference of gradient with increasing of depth"),
defined here as follows.

Network
    A multilayer perceptron on flattened, standardised images: ``d`` hidden blocks
    ``Linear(width) + ReLU`` and an output ``Linear(classes)``, so ``d + 1`` weight layers;
    logits are ``logit_scale * output``. He-normal weights (std ``sqrt(2 / fan_in)``), zero
    biases: activations keep their scale with depth, so a trend with depth is the gradient's,
    not a shrinking signal's. Linear + ReLU is the element every deeper model repeats (a
    convolution is a linear map too), it costs nothing on a CPU even for CIFAR-10's 3,072
    inputs, and its exact backward is a few lines of extended-precision numpy.

Training
    ``steps`` Adam steps (float64, ``F.cross_entropy``, minibatches of the training split) from
    the seeded initialisation, then the gradients are measured on a fixed batch of the test
    split. A trained network has confident logits (softmax near one-hot), the regime where
    ``softmax - onehot`` cancels and implementations differ; at initialisation every
    probability is about 1/C. ``--steps 0`` measures at initialisation.

Measurement, per depth and dtype
    The float64 weights are rounded to the dtype once; every implementation in
    ``softmaxloss.IMPLEMENTATIONS`` then computes the loss of the *same* rounded network on the
    *same* batch, and the gradient is back-propagated through the dtype network by autograd.
    For the logits and for every Linear layer (weight and bias together) it records

    * ``A_vs_B``: the difference between twin implementations' gradients (``manual`` vs
      ``autograd``, ``naive_manual`` vs ``naive_autograd``; pairs found by name in the
      registry). Both run the identical network in the identical dtype, so this is exactly
      the loss-level difference, carried back through the layers.
    * ``I_vs_exact``: implementation ``I`` against the exact gradient: the same rounded
      weights and inputs, forward and backward through the whole network in numpy
      ``longdouble`` (x86-64: 64-bit significand, eps 1.1e-19), with the exact
      cross-entropy gradient at the logits. This is the total error a user sees (network
      rounding included), resolved far below float64's eps.

    Both as normwise relative errors ``max|g - h| / max(max|g*|, tiny)`` (``g*`` the exact
    gradient of that layer; columns ``*_rel``) and in units of the dtype's eps (``*_eps``).
    A non-finite gradient (the naive pair overflowing at large logits) is recorded as
    ``inf``, never dropped; an implementation that refuses a dtype (``TypeError``, e.g. the
    naive pair in float16) is skipped with a note and leaves its columns empty.

Rows: ``layer`` is ``1 .. d+1`` counted from the input (``d+1`` is the output layer) or
``logits`` for the gradient at the logits; ``back`` counts the steps from the loss
(0 = logits, 1 = output layer, ``d+1`` = first layer), the x axis of the plot.

One job per module: ``data`` (the data sets), ``model`` (network and training), ``exact``
(the extended-precision backward), ``measure`` (the measurement, and ``first_layer_error``,
the asv benchmark's one call) and ``output`` (CSV, plot, table); the command is
``lossbench.commands.depth``.
"""

from lossbench.depth.exact import exact_gradients, exact_loss_grad
from lossbench.depth.measure import (
    experiment,
    first_layer_error,
    implementation_gradients,
    measure_network,
    twin_pairs,
)
from lossbench.depth.model import linears, make_mlp, train
from lossbench.depth.output import columns, format_table, plot_panels, write_csv, write_plot

__all__ = [
    "columns",
    "exact_gradients",
    "exact_loss_grad",
    "experiment",
    "first_layer_error",
    "format_table",
    "implementation_gradients",
    "linears",
    "make_mlp",
    "measure_network",
    "plot_panels",
    "train",
    "twin_pairs",
    "write_csv",
    "write_plot",
]
