"""Precision of the gradient deep in a network (issue 4, the depth experiment).

One call per combination: ``softmaxloss.depth.first_layer_error`` (a seeded MLP of ``depth``
hidden layers, width 32, trained 30 float64 Adam steps on the synthetic Gaussian mixture,
rounded to ``dtype``; the normwise error, in eps of the dtype, of the first layer's gradient,
farthest from the loss, against the exact longdouble gradient of the same rounded network).
A precision regression that only shows deep in the network is tracked across commits (the
logits' error is the ``depth`` command's ``logits`` row; one track keeps the grid small).
``logit_scale`` 64 multiplies the logits (the naive pair overflows: recorded at the cap).

Self-contained on purpose (no ``benchmarks/common.py`` import). An implementation missing from
``softmaxloss.IMPLEMENTATIONS`` at the measured commit, a commit without
``softmaxloss.depth.first_layer_error``, or an implementation refusing a dtype raises
``NotImplementedError`` (skipped), never ``KeyError``.
"""

_IMPLS = ["naive_manual", "naive_autograd", "manual", "autograd", "fused", "fused_inplace", "torch"]


class DepthGradientError:
    params = [_IMPLS, ["float32", "float64"], [1, 4, 8], [1, 64]]
    param_names = ["impl", "dtype", "depth", "logit_scale"]
    timeout = 120

    def setup(self, impl, dtype, depth, logit_scale):
        import softmaxloss

        first_layer_error = getattr(getattr(softmaxloss, "depth", None), "first_layer_error", None)
        if first_layer_error is None:
            try:
                from softmaxloss.depth import first_layer_error
            except ImportError:
                raise NotImplementedError("no depth.first_layer_error at this commit") from None
        if impl not in softmaxloss.IMPLEMENTATIONS:
            raise NotImplementedError(f"{impl} is not registered at this commit")
        unsupported = getattr(softmaxloss, "UnsupportedDtypeError", TypeError)
        try:
            error = first_layer_error(
                softmaxloss.IMPLEMENTATIONS[impl], dtype, depth, float(logit_scale)
            )
        except unsupported as exc:  # the naive pair in float16, fused_inplace in bfloat16
            raise NotImplementedError(str(exc)) from None
        self.error = softmaxloss.capped(error)

    def track_first_layer_error(self, impl, dtype, depth, logit_scale):
        return self.error

    track_first_layer_error.unit = "eps"
