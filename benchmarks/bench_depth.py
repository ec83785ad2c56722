"""Precision of the gradient deep in a network (issue 4, the depth experiment).

One call per combination: ``lossbench.depth.first_layer_error`` of this checkout (a seeded
MLP of ``depth`` hidden layers, width 32, trained 30 float64 Adam steps on the synthetic
Gaussian mixture, rounded to ``dtype``; the normwise error, in eps of the dtype, of the first
layer's gradient, farthest from the loss, against the exact longdouble gradient of the same
rounded network), with the measured commit's implementation as the loss. A precision
regression that only shows deep in the network is tracked across commits (the logits' error
is the ``depth`` command's ``logits`` row; one track keeps the grid small). ``logit_scale``
64 multiplies the logits (the naive pair overflows: recorded at the cap).

An implementation missing from ``softmaxloss.IMPLEMENTATIONS`` at the measured commit, or
refusing a dtype, raises ``NotImplementedError`` (skipped), never ``KeyError``.
"""

from benchmarks.common import get_impl, unsupported_error
from lossbench import reference
from lossbench.depth import first_layer_error

_IMPLS = ["naive_manual", "naive_autograd", "manual", "autograd", "fused", "fused_inplace", "torch"]


class DepthGradientError:
    params = [_IMPLS, ["float32", "float64"], [1, 4, 8], [1, 64]]
    param_names = ["impl", "dtype", "depth", "logit_scale"]
    timeout = 120

    def setup(self, impl, dtype, depth, logit_scale):
        fn = get_impl(impl)
        try:
            error = first_layer_error(fn, dtype, depth, float(logit_scale))
        except unsupported_error() as exc:  # the naive pair in float16, fused_inplace in bf16
            raise NotImplementedError(str(exc)) from None
        self.error = reference.capped(error)

    def track_first_layer_error(self, impl, dtype, depth, logit_scale):
        return self.error

    track_first_layer_error.unit = "eps"
