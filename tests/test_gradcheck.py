"""``torch.autograd.gradcheck`` (finite differences in float64) of the hand-written Functions.

gradcheck compares the backward of each Function with central differences of its forward;
both the Jacobian and the vector-Jacobian products for the reductions are checked. The
fused Function returns the gradient it saved in forward; gradcheck runs it as any other
Function (each perturbed forward recomputes its own saved buffer), so it is checked here too.
"""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck

import softmaxloss
from softmaxloss.functional import FusedCrossEntropy, ManualCrossEntropy, Reduction
from softmaxloss.naive import NaiveSoftmaxLoss

OPTIONS = {
    "plain": dict(),
    "weight": dict(weight=True),
    "ignore": dict(ignore=True),
    "smoothing": dict(smoothing=0.2),
    "weight_ignore_smoothing": dict(weight=True, ignore=True, smoothing=0.3),
}


def _inputs(seed, shape=(5, 4), weight=False, ignore=False, smoothing=0.0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen, dtype=torch.float64).requires_grad_(True)
    C = shape[1] if len(shape) > 1 else shape[0]
    batch = (shape[0], *shape[2:]) if len(shape) > 1 else ()
    t = torch.randint(0, C, batch, generator=gen)
    if ignore:
        t.view(-1)[:2] = -100
    w = torch.rand(C, generator=gen, dtype=torch.float64) + 0.5 if weight else None
    return x, t, dict(weight=w, label_smoothing=smoothing)


@pytest.mark.parametrize("impl", ["manual", "fused"])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("option", OPTIONS)
def test_gradcheck_index_targets(impl, reduction, option):
    x, t, opts = _inputs(1, **OPTIONS[option])

    def f(x):
        return softmaxloss.cross_entropy(x, t, reduction=reduction, impl=impl, **opts)

    assert gradcheck(f, (x,))


@pytest.mark.parametrize("impl", ["manual", "fused"])
@pytest.mark.parametrize("shape", [(3, 4, 2, 2), (4,)], ids=["kdim", "unbatched"])
def test_gradcheck_layouts(impl, shape):
    x, t, opts = _inputs(2, shape=shape, weight=True, smoothing=0.1)
    for reduction in ("none", "mean"):
        assert gradcheck(
            lambda x, r=reduction: softmaxloss.cross_entropy(x, t, reduction=r, impl=impl, **opts),
            (x,),
        )


@pytest.mark.parametrize("impl", ["manual", "fused"])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("option", ["plain", "weight", "smoothing", "weight_ignore_smoothing"])
def test_gradcheck_probability_targets_wrt_input_and_target(impl, reduction, option):
    kw = {k: v for k, v in OPTIONS[option].items() if k != "ignore"}
    x, _, opts = _inputs(3, **kw)
    gen = torch.Generator().manual_seed(4)
    p = torch.softmax(torch.randn(5, 4, generator=gen, dtype=torch.float64), 1)
    p.requires_grad_(True)

    def f(x, p):
        return softmaxloss.cross_entropy(x, p, reduction=reduction, impl=impl, **opts)

    assert gradcheck(f, (x, p))


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_gradcheck_fused_probability_targets_wrt_input(reduction):
    x, _, opts = _inputs(5, weight=True, smoothing=0.2)
    p = torch.softmax(torch.randn(5, 4, dtype=torch.float64), 1)
    assert gradcheck(
        lambda x: softmaxloss.cross_entropy(x, p, reduction=reduction, impl="fused", **opts),
        (x,),
    )


FUNCTIONS = {
    "manual": lambda x, t, kept, w, r, e: ManualCrossEntropy.apply(x, t, kept, r, w, e),
    "fused": lambda x, t, kept, w, r, e: FusedCrossEntropy.apply(x, t, kept, r, False, w, e),
}


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("reduction", list(Reduction), ids=lambda r: r.name.lower())
@pytest.mark.parametrize(
    "option",
    ["simple", "ignored", "weight", "smoothing", "weight_ignored_smoothing"],
)
def test_gradcheck_functions_directly_index_targets(name, reduction, option):
    """Each hand-written Function itself on (M, C) rows of class indices: the simple case
    (no row ignored: ``kept=None``, no weight, no smoothing) and every option."""
    x, t, _ = _inputs(8, shape=(6, 5))
    kept = w = None
    smoothing = 0.2 if "smoothing" in option else 0.0
    if "ignored" in option:
        kept = torch.tensor([True, False, True, True, False, True])
        t = t.masked_fill(~kept, 0)
    if "weight" in option:
        w = torch.tensor([0.5, 1.0, 2.0, 1.5, 0.75], dtype=torch.float64)
    fn = FUNCTIONS[name]
    assert gradcheck(lambda x: fn(x, t, kept, w, reduction, smoothing), (x,))


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("reduction", list(Reduction), ids=lambda r: r.name.lower())
@pytest.mark.parametrize("option", ["plain", "weight_smoothing"])
def test_gradcheck_functions_directly_probability_targets(name, reduction, option):
    """Each hand-written Function itself on (M, C) rows of class probabilities, with respect
    to the logits and to the target (its own gradient: it requires grad)."""
    x, _, _ = _inputs(6)
    w, smoothing = None, 0.0
    if option == "weight_smoothing":
        w, smoothing = torch.tensor([0.5, 1.0, 2.0, 1.5], dtype=torch.float64), 0.1
    gen = torch.Generator().manual_seed(9)
    p = torch.softmax(torch.randn(5, 4, generator=gen, dtype=torch.float64), 1)
    fn = FUNCTIONS[name]
    assert gradcheck(lambda x, p: fn(x, p, None, w, reduction, smoothing), (x, p.requires_grad_()))
    assert gradcheck(lambda x: fn(x, p.detach(), None, w, reduction, smoothing), (x,))


def test_gradcheck_naive_manual():
    x, t, _ = _inputs(7)
    assert gradcheck(lambda x: NaiveSoftmaxLoss.apply(x, t)[0], (x,))
    assert gradcheck(lambda x: softmaxloss.IMPLEMENTATIONS["naive_manual"](x, t), (x,))


def test_gradcheck_fails_on_a_wrong_backward():
    """The check has teeth: a Function whose backward is off by a factor 2 is caught."""

    class Wrong(torch.autograd.Function):
        @staticmethod
        def forward(x):
            return (x * x).sum()

        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.save_for_backward(inputs[0])

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * x  # should be 2 g x

    x = torch.randn(3, dtype=torch.float64, requires_grad=True)
    assert not gradcheck(Wrong.apply, (x,), raise_exception=False)
