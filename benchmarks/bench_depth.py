"""Precision of the gradient deep in a network (issue 4, the depth experiment).

A seeded MLP of ``depth`` hidden Linear+ReLU layers (width 32) on the synthetic Gaussian
mixture of ``softmaxloss.data`` is trained for 30 float64 Adam steps, rounded to ``dtype``, and
each registered implementation's loss is back-propagated through it. The ``track_`` value is
the normwise error of the first layer's gradient (farthest from the loss), in eps of the dtype,
against the exact (numpy longdouble) gradient of the same rounded network, so a precision
regression that only shows deep in the network is tracked across commits (the logits' error
is the ``depth`` command's ``logits`` row; one track keeps the grid at 72 calls).
``logit_scale`` 64 multiplies the logits (the naive pair overflows: recorded at the cap).

Self-contained on purpose (no ``benchmarks/common.py`` import). ``setup`` trains one small
network (~0.1 s), single-threaded and seeded, so the values are deterministic; an
implementation missing from ``softmaxloss.IMPLEMENTATIONS`` at the measured commit, a commit
without the depth experiment, or an implementation refusing a dtype raises
``NotImplementedError`` (skipped), never ``KeyError``.
"""

import numpy as np
import torch

_IMPLS = ["naive_manual", "naive_autograd", "manual", "autograd", "fused", "fused_inplace", "torch"]


class DepthGradientError:
    params = [_IMPLS, ["float32", "float64"], [1, 4, 8], [1, 64]]
    param_names = ["impl", "dtype", "depth", "logit_scale"]
    timeout = 120

    def setup(self, impl, dtype, depth, logit_scale):
        try:
            import softmaxloss
            from softmaxloss import data
            from softmaxloss import depth as experiment
        except ModuleNotFoundError as exc:  # only a commit without the modules is skipped
            if exc.name not in ("softmaxloss.data", "softmaxloss.depth"):
                raise
            raise NotImplementedError(f"no depth experiment at this commit: {exc}") from None
        if not hasattr(experiment, "exact_gradients"):
            raise NotImplementedError("no depth experiment at this commit")
        if impl not in softmaxloss.IMPLEMENTATIONS:
            raise NotImplementedError(f"{impl} is not registered at this commit")
        torch.set_num_threads(1)
        torch.manual_seed(0)
        tdtype = getattr(torch, dtype)
        ds = data.load_synthetic(seed=0, n_train=512, n_test=128)
        model = experiment.make_mlp(ds.features, 32, depth, ds.classes, seed=0)
        experiment.train(model, ds, steps=30, batch=128, lr=1e-2, seed=0)
        x64, y = ds.batch("test", np.arange(128))
        net = model.to(tdtype)
        x = torch.from_numpy(x64).to(tdtype)
        _, exact_layers = experiment.exact_gradients(net, x, y, float(logit_scale))
        try:
            _, got_layers = experiment.implementation_gradients(
                net, x, torch.from_numpy(y), float(logit_scale), softmaxloss.IMPLEMENTATIONS[impl]
            )
        except getattr(softmaxloss, "UnsupportedDtypeError", TypeError) as exc:  # naive, fp16
            raise NotImplementedError(str(exc)) from None
        eps = torch.finfo(tdtype).eps
        self.errors = {"first": _error_eps(got_layers[0], exact_layers[0], eps)}
        self.capped = softmaxloss.capped

    def track_first_layer_error(self, impl, dtype, depth, logit_scale):
        return self.capped(self.errors["first"])

    track_first_layer_error.unit = "eps"


def _error_eps(got, exact, eps):
    """max|g - g*| / max|g*| / eps; inf for a non-finite gradient (capped by the track)."""
    if not np.isfinite(got).all():
        return float("inf")
    ref = exact.astype(np.longdouble)
    scale = max(float(np.abs(ref).max(initial=0)), np.finfo(np.float64).tiny)
    return float(np.abs(got.astype(np.longdouble) - ref).max(initial=0)) / scale / eps
