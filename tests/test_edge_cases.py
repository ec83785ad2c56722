"""Edge cases found in review: each compared with F.cross_entropy or a clear refusal."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import softmaxloss
from lossbench import reference
from softmaxloss import cross_entropy

HANDWRITTEN = ["manual", "fused"]


def _data(rows=6, classes=5, seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, classes, generator=gen, dtype=dtype)
    t = torch.randint(0, classes, (rows,), generator=gen)
    return x, t


@pytest.mark.parametrize("impl", HANDWRITTEN)
def test_double_backward_is_refused_not_silently_constant(impl):
    x, t = _data()
    x.requires_grad_(True)
    loss = cross_entropy(x, t, impl=impl)
    with pytest.raises(RuntimeError, match="not differentiable.*impl='autograd'"):
        torch.autograd.grad(loss, x, create_graph=True)


def test_naive_manual_double_backward_is_refused():
    x, t = _data()
    x.requires_grad_(True)
    loss = softmaxloss.IMPLEMENTATIONS["naive_manual"](x, t)
    with pytest.raises(RuntimeError, match="not differentiable"):
        torch.autograd.grad(loss, x, create_graph=True)


def test_autograd_impl_supports_double_backward_like_torch():
    x, t = _data()
    xa = x.clone().requires_grad_(True)
    xr = x.clone().requires_grad_(True)
    (ga,) = torch.autograd.grad(cross_entropy(xa, t, impl="autograd"), xa, create_graph=True)
    (gr,) = torch.autograd.grad(F.cross_entropy(xr, t), xr, create_graph=True)
    (ga**2).sum().backward()
    (gr**2).sum().backward()
    torch.testing.assert_close(xa.grad, xr.grad, rtol=1e-10, atol=1e-14)


def test_inplace_refuses_a_view_of_a_leaf_that_requires_grad():
    leaf = torch.randn(30, dtype=torch.float64, requires_grad=True)
    before = leaf.detach().clone()
    _, t = _data()
    with pytest.raises(ValueError, match="view of one"):
        cross_entropy(leaf.view(6, 5), t, impl="fused", inplace=True)
    assert torch.equal(leaf.detach(), before)


@pytest.mark.parametrize("impl", ["manual", "fused", "autograd"])
@pytest.mark.parametrize("bad", [float("-inf"), float("nan")])
def test_ignored_rows_with_non_finite_logits(impl, bad):
    x, t = _data()
    x[1] = bad
    t[1] = -100
    xi = x.clone().requires_grad_(True)
    xr = x.clone().requires_grad_(True)
    loss = cross_entropy(xi, t, impl=impl)
    ref = F.cross_entropy(xr, t)
    assert torch.isfinite(ref)
    torch.testing.assert_close(loss, ref, rtol=1e-13, atol=0)
    loss.backward()
    ref.backward()
    kept = t != -100
    torch.testing.assert_close(xi.grad[kept], xr.grad[kept], rtol=1e-12, atol=1e-15)
    if impl != "autograd":  # the hand-written gradients give ignored rows exact zeros
        assert torch.equal(xi.grad[1], torch.zeros(5, dtype=x.dtype))


@pytest.mark.parametrize("value", [None, 1.5, True, torch.tensor(-100)])
def test_ignore_index_must_be_an_int(value):
    x, t = _data()
    with pytest.raises(TypeError, match="ignore_index must be an int"):
        cross_entropy(x, t, ignore_index=value)


def test_probability_targets_refuse_a_custom_ignore_index():
    x, _ = _data()
    with pytest.raises(ValueError, match="ignore_index=2 is not supported"):
        cross_entropy(x, torch.softmax(torch.randn_like(x), 1), ignore_index=2)


@pytest.mark.parametrize("impl", ["manual", "fused", "autograd", "torch"])
def test_probability_targets_of_another_dtype(impl):
    x, _ = _data(dtype=torch.float32)
    p = torch.softmax(torch.randn(6, 5, dtype=torch.float64), 1)
    got = cross_entropy(x, p, impl=impl)
    ref = F.cross_entropy(x.double(), p)
    assert got.dtype == torch.float32
    assert abs(float(got) - float(ref)) <= 4 * torch.finfo(torch.float32).eps * float(ref)


@pytest.mark.parametrize("impl", ["manual", "fused", "autograd", "torch"])
def test_int32_targets(impl):
    x, t = _data()
    torch.testing.assert_close(
        cross_entropy(x, t.int(), impl=impl), F.cross_entropy(x, t), rtol=1e-13, atol=0
    )


def test_numpy_label_smoothing_is_accepted():
    x, t = _data()
    got = cross_entropy(x, t, label_smoothing=np.float32(0.25))
    torch.testing.assert_close(got, F.cross_entropy(x, t, label_smoothing=0.25))


def test_inplace_must_be_a_bool():
    x, t = _data()
    with pytest.raises(TypeError, match="inplace must be a bool"):
        cross_entropy(x, t, impl="fused", inplace="no")


@pytest.mark.parametrize("impl", ["manual", "torch"])
def test_weight_requiring_grad_is_refused_for_every_impl(impl):
    x, t = _data()
    w = torch.rand(5, dtype=x.dtype, requires_grad=True)
    with pytest.raises(ValueError, match="weight requires grad"):
        cross_entropy(x, t, weight=w, impl=impl)


def test_reference_validates_its_input():
    x, _ = _data()
    with pytest.raises(IndexError, match="class index -1"):
        reference.reference_loss_and_grad(x, torch.tensor([0, 1, 2, 3, 4, -1]))
    with pytest.raises(ValueError, match="logits must have shape"):
        reference.reference_loss_and_grad(x[None], torch.zeros(1, 6, dtype=torch.long))


def test_measure_names_an_impl_that_gives_no_gradient():
    x, t = _data()

    def detached(logits, target):
        return F.cross_entropy(logits.detach(), target).requires_grad_(True)

    with pytest.raises(RuntimeError, match="detached gave no gradient"):
        reference.measure(detached, x, t)
