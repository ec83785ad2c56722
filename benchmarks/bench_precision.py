"""Precision: loss and gradient error of every implementation versus the exact reference.

Errors use the tools' definitions of this checkout (``lossbench.reference.measure``:
normwise, in units of the input dtype's eps, against ``reference_loss_and_grad`` in extended
precision), not the measured commit's, and are recorded through ``reference.capped``:
``max(error, 1)`` so that a harmless 0 -> 0.3 eps change is not a regression, and at most
1e12 eps, the value recorded for non-finite results (asv cannot publish ``inf`` and drops
``nan``). Smaller is better, as asv assumes.

Inputs (``input`` param): ``normal`` standard normal logits, ``large`` rows scaled to
magnitudes 1e2..1e4 (the naive formula overflows), ``many_classes`` a vocabulary-sized row
width. Seeded and run on one thread: the same commit gives the same numbers. The references
are computed once per environment in ``setup_cache``.
"""

from benchmarks.common import DEVICES, IMPLS, make_inputs, prepare
from lossbench import reference

CASES = {
    # input: (size, scale)
    "normal": ("256x1000", "normal"),
    "large": ("256x1000", "large"),
    "many_classes": ("16x32000", "normal"),
}
DTYPES_PRECISION = ["float32", "float64", "bfloat16"]


class PrecisionSoftmaxLoss:
    params = [IMPLS, list(CASES), DTYPES_PRECISION, DEVICES]
    param_names = ["impl", "input", "dtype", "device"]
    timeout = 300

    def setup_cache(self):
        refs = {}
        for case, (size, scale) in CASES.items():
            for dtype in DTYPES_PRECISION:
                logits, target = make_inputs(size, dtype, "cpu", scale)
                refs[case, dtype] = reference.reference_loss_and_grad(logits, target)
        return refs

    def setup(self, refs, impl, case, dtype, device):
        size, scale = CASES[case]
        self.fn, self.logits, self.target = prepare(impl, size, dtype, device, scale)
        self.ref = refs[case, dtype]

    def _report(self):
        return reference.measure(self.fn, self.logits, self.target, reference=self.ref)

    def track_loss_error(self, refs, impl, case, dtype, device):
        return reference.capped(self._report().loss_error_eps)

    def track_grad_error(self, refs, impl, case, dtype, device):
        return reference.capped(self._report().grad_error_eps)

    track_loss_error.unit = "eps"
    track_grad_error.unit = "eps"
