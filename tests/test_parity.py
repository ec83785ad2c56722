"""Parity of ``softmaxloss.cross_entropy`` (every impl) with ``F.cross_entropy`` in float64.

Loss and gradient with respect to the input (and to probability targets) are compared, for a
random non-unit ``grad_output``, against F.cross_entropy evaluated in float64 on the *same
rounded inputs* (see conftest.f_reference), with normwise tolerances derived from the dtype's
eps (conftest.tolerance).
"""

from __future__ import annotations

import os
import warnings
import zlib

import pytest
import torch
import torch.nn.functional as F
from conftest import (
    DTYPES,
    assert_normwise,
    f_reference,
    random_grad_output,
    tolerance,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from softmaxloss import IMPL_CHOICES, SoftmaxCrossEntropyLoss, cross_entropy

REDUCTIONS = ("none", "mean", "sum")


def make_case(
    seed,
    dtype,
    *,
    batch=(6,),
    classes=5,
    prob=False,
    weight=False,
    ignore=None,
    smoothing=0.0,
    scale=3.0,
):
    """Inputs for one call. ``batch`` is () for an unbatched (C,) input, (N,) or (N, d1, ...).

    ignore: None (nothing ignored), "some" (ignore_index=-100 on some entries), "class"
    (ignore_index=1, a valid class, with that class present) or "all" (every entry ignored).
    """
    gen = torch.Generator().manual_seed(seed)
    shape = (batch[0], classes, *batch[1:]) if batch else (classes,)
    x = (torch.randn(shape, generator=gen, dtype=torch.float64) * scale).to(dtype)
    ignore_index = -100
    if prob:
        logits_t = torch.randn(shape, generator=gen, dtype=torch.float64)
        cdim = 1 if batch else 0
        t = torch.softmax(logits_t * 2, cdim).to(dtype)
    else:
        t = torch.randint(0, classes, batch, generator=gen)
        if ignore == "some":
            mask = torch.rand(batch, generator=gen) < 0.4
            if t.numel() > 1:  # at least one kept and one ignored entry
                mask.view(-1)[0], mask.view(-1)[-1] = True, False
            t = torch.where(mask, torch.tensor(-100), t)
        elif ignore == "class":
            ignore_index = 1
            t.view(-1)[0] = 1
        elif ignore == "all":
            t = torch.full(batch, -100, dtype=torch.int64)
    w = None
    if weight:
        w = (0.25 + 2 * torch.rand(classes, generator=gen, dtype=torch.float64)).to(dtype)
    return x, t, dict(weight=w, ignore_index=ignore_index, label_smoothing=smoothing), gen


def check_parity(impl, x, t, opts, reduction, gen, target_grad=False, call=None):
    """Runs the impl forward and backward with a random grad_output and compares with F."""
    xi = x.detach().clone().requires_grad_(True)
    ti = t.detach().clone().requires_grad_(True) if target_grad else t
    if call is None:
        loss = cross_entropy(xi, ti, reduction=reduction, impl=impl, **opts)
    else:
        loss = call(xi, ti)
    assert loss.dtype == x.dtype
    go = random_grad_output(loss, gen)
    inputs = [xi, ti] if target_grad else [xi]
    grads = torch.autograd.grad(loss, inputs, go)
    ref_loss, ref_gx, ref_gt = f_reference(
        x, t, reduction=reduction, grad_output=go, target_grad=target_grad, **opts
    )
    tol = tolerance(x.dtype, impl)
    # Natural magnitudes (see assert_normwise): a row's loss is a difference of terms of size
    # w |x|, summed over rows for "sum"; a gradient entry is at most |go| w, over D for "mean".
    rows = max(1, x.numel() // x.shape[1 if x.dim() > 1 else 0])
    wmax = 1.0 if opts["weight"] is None else float(opts["weight"].abs().max())
    xmax = max(1.0, float(x.double().abs().max()))
    loss_floor = wmax * xmax * (rows if reduction == "sum" else 1)
    grad_floor = 0.1 * float(go.double().abs().max()) * wmax / rows
    assert_normwise(loss, ref_loss, tol, f"{impl} loss", loss_floor)
    assert_normwise(grads[0], ref_gx, tol, f"{impl} grad wrt input", grad_floor)
    assert grads[0].dtype == x.dtype
    if target_grad:
        assert grads[1].dtype == t.dtype
        assert_normwise(grads[1], ref_gt, tol, f"{impl} grad wrt target", grad_floor * xmax)


FEATURES = {
    "plain": dict(),
    "weight": dict(weight=True),
    "ignore": dict(ignore="some"),
    "ignore_valid_class": dict(ignore="class"),
    "weight_ignore": dict(weight=True, ignore="some"),
    "all_ignored": dict(ignore="all"),
    "all_ignored_weight": dict(ignore="all", weight=True),
    "smoothing": dict(smoothing=0.2),
    "smoothing_1": dict(smoothing=1.0),
    "smoothing_weight": dict(smoothing=0.3, weight=True),
    "smoothing_ignore": dict(smoothing=0.3, ignore="some"),
    "smoothing_weight_ignore": dict(smoothing=0.1, weight=True, ignore="some"),
    "smoothing_all_ignored": dict(smoothing=0.1, ignore="all"),
    "prob": dict(prob=True),
    "prob_weight": dict(prob=True, weight=True),
    "prob_smoothing": dict(prob=True, smoothing=0.25),
    "prob_weight_smoothing": dict(prob=True, weight=True, smoothing=0.25),
    "kdim": dict(batch=(3, 4, 2)),
    "kdim_1": dict(batch=(2, 5)),
    "kdim_all_options": dict(batch=(3, 2, 3), weight=True, ignore="some", smoothing=0.2),
    "kdim_prob": dict(batch=(2, 3, 2), prob=True, weight=True, smoothing=0.1),
    "unbatched": dict(batch=()),
    "unbatched_weight_smoothing": dict(batch=(), weight=True, smoothing=0.2),
    "unbatched_ignored": dict(batch=(), ignore="all"),
    "unbatched_prob": dict(batch=(), prob=True, weight=True),
    "one_row_one_class": dict(batch=(1,), classes=1),
    "large_logits": dict(scale=300.0, weight=True, smoothing=0.1),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("feature", FEATURES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("impl", IMPL_CHOICES)
def test_parity_every_feature(impl, reduction, feature, dtype):
    kwargs = FEATURES[feature]
    seed = zlib.crc32(f"{impl} {reduction} {feature}".encode())
    x, t, opts, gen = make_case(seed, dtype, **kwargs)
    check_parity(impl, x, t, opts, reduction, gen)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_all_ignored_batch_matches_f_exactly(reduction):
    """mean -> NaN loss (as F), sum -> 0, none -> zeros; the gradient is F's (zeros)."""
    x, t, opts, gen = make_case(3, torch.float64, ignore="all")
    ref_loss, ref_grad, _ = f_reference(x, t, reduction=reduction)
    for impl in IMPL_CHOICES:
        xi = x.clone().requires_grad_(True)
        loss = cross_entropy(xi, t, reduction=reduction, impl=impl)
        loss.backward(torch.full_like(loss, 0.75))
        if reduction == "mean":
            assert torch.isnan(loss) and torch.isnan(ref_loss)
        else:
            assert torch.equal(loss.detach(), torch.zeros_like(loss))
        assert torch.equal(xi.grad, torch.zeros_like(xi)), impl
        assert torch.equal(ref_grad, torch.zeros_like(ref_grad))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("smoothing", [0.0, 0.3])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("impl", IMPL_CHOICES)
def test_gradient_wrt_probability_targets(impl, reduction, smoothing, dtype):
    x, t, opts, gen = make_case(11, dtype, prob=True, weight=True, smoothing=smoothing)
    check_parity(impl, x, t, opts, reduction, gen, target_grad=True)


@pytest.mark.parametrize("inplace", [False, True])
def test_fused_target_gradient_only_when_asked(inplace):
    """fused builds the target's gradient (an extra buffer) only when target requires grad
    and grad mode is on; it matches F's either way, in place too."""
    x, t, opts, gen = make_case(12, torch.float64, prob=True, weight=True, smoothing=0.2)
    ref_loss, ref_gx, ref_gt = f_reference(x, t, target_grad=True, **opts)
    leaf = x.clone().requires_grad_(True)
    tt = t.clone().requires_grad_(True)
    loss = cross_entropy(leaf * 1.0, tt, impl="fused", inplace=inplace, **opts)
    gx, gt = torch.autograd.grad(loss, [leaf, tt])
    assert_normwise(loss, ref_loss, 1e-12)
    assert_normwise(gx, ref_gx, 1e-12)
    assert_normwise(gt, ref_gt, 1e-12)
    with torch.no_grad():  # under no_grad a target with requires_grad is fine
        loss = cross_entropy(x, t.clone().requires_grad_(True), impl="fused", **opts)
    assert_normwise(loss, ref_loss, 1e-12)


@pytest.mark.parametrize("impl", IMPL_CHOICES)
def test_unit_grad_output_and_repeated_backward(impl):
    """grad_output == 1 (fused hands its saved buffer to autograd) and retain_graph reuse."""
    x, t, opts, _ = make_case(5, torch.float64, weight=True, smoothing=0.1, ignore="some")
    _, ref_grad, _ = f_reference(x, t, **opts)
    xi = x.clone().requires_grad_(True)
    loss = cross_entropy(xi, t, impl=impl, **opts)
    loss.backward(retain_graph=True)
    assert_normwise(xi.grad, ref_grad, 1e-12, "first backward")
    loss.backward(retain_graph=True)
    loss.backward()
    assert_normwise(xi.grad, 3 * ref_grad, 1e-12, "three accumulated backwards")
    # the same input used twice in one graph: gradients add up
    xi.grad = None
    (
        cross_entropy(xi, t, impl=impl, **opts) + 2 * cross_entropy(xi, t, impl=impl, **opts)
    ).backward()
    assert_normwise(xi.grad, 3 * ref_grad, 1e-12, "input used twice")


@pytest.mark.parametrize("impl", IMPL_CHOICES)
@pytest.mark.parametrize(
    ("size_average", "reduce"),
    [(None, None), (True, None), (False, None), (None, True), (None, False), (False, True)],
)
def test_legacy_size_average_reduce_positional_slots(impl, size_average, reduce):
    x, t, _, gen = make_case(7, torch.float64, ignore="some")
    w = torch.linspace(0.5, 2.0, 5, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the deprecation warning of the slots
        xr = x.clone().requires_grad_(True)
        ref = F.cross_entropy(xr, t, w, size_average, -100, reduce)
        xi = x.clone().requires_grad_(True)
        loss = cross_entropy(xi, t, w, size_average, -100, reduce, impl=impl)
    assert loss.shape == ref.shape
    go = random_grad_output(ref, gen)
    ref.backward(go)
    loss.backward(go)
    assert_normwise(loss, ref, 1e-12)
    assert_normwise(xi.grad, xr.grad, 1e-12)


@pytest.mark.parametrize("impl", IMPL_CHOICES)
@pytest.mark.parametrize("feature", ["weight_ignore", "smoothing_weight_ignore", "prob_weight"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_module_matches_nn_cross_entropy_loss(impl, feature, reduction):
    x, t, opts, gen = make_case(8, torch.float64, **FEATURES[feature])
    module = SoftmaxCrossEntropyLoss(
        opts["weight"],
        None,
        opts["ignore_index"],
        None,
        reduction,
        opts["label_smoothing"],
        impl=impl,
    )
    ref_module = nn.CrossEntropyLoss(
        opts["weight"], None, opts["ignore_index"], None, reduction, opts["label_smoothing"]
    )
    assert isinstance(module, nn.Module)
    assert torch.equal(module.weight, ref_module.weight) if opts["weight"] is not None else True
    check_parity(impl, x, t, opts, reduction, gen, call=module)
    xr = x.clone().requires_grad_(True)
    ref_module(xr, t).sum().backward()
    xi = x.clone().requires_grad_(True)
    module(xi, t).sum().backward()
    assert_normwise(xi.grad, xr.grad, 1e-12, "module vs nn.CrossEntropyLoss")


def test_module_legacy_slots_and_buffer():
    w = torch.tensor([1.0, 2.0, 0.5])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        module = SoftmaxCrossEntropyLoss(w, False)  # size_average=False -> sum
        ref = nn.CrossEntropyLoss(w, False)
    assert module.reduction == ref.reduction == "sum"
    assert "weight" in dict(module.named_buffers())
    module, ref = module.double(), ref.double()
    assert module.weight.dtype == torch.float64
    x = torch.randn(4, 3, dtype=torch.float64)
    t = torch.tensor([0, 2, 1, 2])
    assert_normwise(module(x, t), ref(x, t), 1e-12)


# ---------------------------------------------------------------------------------------
# Random shapes and options (hypothesis)
# ---------------------------------------------------------------------------------------
@st.composite
def cases(draw):
    kind = draw(st.sampled_from(["unbatched", "2d", "kdim"]))
    n = draw(st.integers(1, 7))
    if kind == "unbatched":
        batch = ()
    elif kind == "2d":
        batch = (n,)
    else:
        batch = (n, *draw(st.lists(st.integers(1, 3), min_size=1, max_size=3)))
    prob = draw(st.booleans())
    return dict(
        dtype=draw(st.sampled_from(DTYPES)),
        impl=draw(st.sampled_from(IMPL_CHOICES)),
        reduction=draw(st.sampled_from(REDUCTIONS)),
        batch=batch,
        classes=draw(st.integers(1, 12)),
        prob=prob,
        weight=draw(st.booleans()),
        ignore=None if prob else draw(st.sampled_from([None, "some", "class", "all"])),
        smoothing=draw(st.sampled_from([0.0, 0.0, 1.0]) | st.floats(0.0, 1.0)),
        scale=draw(st.sampled_from([0.1, 1.0, 5.0, 20.0])),
        target_grad=prob and draw(st.booleans()),
        seed=draw(st.integers(0, 2**31 - 1)),
    )


@settings(max_examples=int(os.environ.get("HYPOTHESIS_EXAMPLES", 150)), deadline=None)
@given(cases())
def test_parity_random_shapes_and_options(case):
    case = dict(case)
    impl, reduction, dtype = case.pop("impl"), case.pop("reduction"), case.pop("dtype")
    target_grad, seed = case.pop("target_grad"), case.pop("seed")
    if case["ignore"] == "class" and case["classes"] < 2:
        case["ignore"] = "some"
    x, t, opts, gen = make_case(seed, dtype, **case)
    check_parity(impl, x, t, opts, reduction, gen, target_grad=target_grad)


@pytest.mark.parametrize("impl", IMPL_CHOICES)
def test_mean_over_zero_weight_mass_matches_f_nan_pattern(impl):
    """Every kept row has class weight 0: D = 0, F gives NaN loss, NaN on the kept rows' grad
    and 0 on the ignored rows' grad; the same pattern is expected, not an error."""
    x = torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    t = torch.tensor([1, -100, 1, -100])
    w = torch.tensor([1.0, 0.0, 2.0], dtype=torch.float64)
    ref_loss, ref_grad, _ = f_reference(x, t, w)
    assert torch.isnan(ref_loss) and torch.isnan(ref_grad[0]).all()
    assert torch.equal(ref_grad[1], torch.zeros(3, dtype=torch.float64))
    xi = x.clone().requires_grad_(True)
    loss = cross_entropy(xi, t, w, impl=impl)
    loss.backward()
    assert torch.isnan(loss)
    assert_normwise(xi.grad, ref_grad, 1e-12)
