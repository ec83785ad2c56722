"""``impl="fused", inplace=True``: the gradient is written into the logits' storage.

Checked: the gradient equals F.cross_entropy's (float64 reference), the storage is reused
(data_ptr of the gradient autograd passes upstream), autograd's version counter turns a
logits tensor saved by another node into a RuntimeError at backward (never a silently wrong
gradient), and leaf inputs / non-fused impls / unsupported layouts are refused. Every test
runs twice on the CPU: with the C++ Functions serving the simple case and with the Python
Functions serving every call (``cpu_backend``).
"""

from __future__ import annotations

import pytest
import torch
from conftest import DTYPES, assert_normwise, f_reference, tolerance

from softmaxloss import SoftmaxCrossEntropyLoss, cross_entropy


@pytest.fixture(autouse=True)
def _both_cpu_backends(cpu_backend):
    return cpu_backend


def _h(shape=(6, 5), dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=gen, dtype=dtype).requires_grad_(True)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize(
    "opts",
    [{}, {"weight": True, "ignore_index": 1, "label_smoothing": 0.2}, {"prob": True}],
    ids=["plain", "weight_ignore_smoothing", "prob"],
)
def test_inplace_gradient_matches_f_and_reuses_storage(dtype, reduction, opts):
    opts = dict(opts)
    h = _h(dtype=dtype)
    gen = torch.Generator().manual_seed(1)
    if opts.pop("prob", False):
        t = torch.softmax(torch.randn(6, 5, generator=gen, dtype=dtype), 1)
    else:
        t = torch.randint(0, 5, (6,), generator=gen)
    if opts.pop("weight", False):
        opts["weight"] = torch.linspace(0.5, 2, 5, dtype=dtype)
    x = h * 3.0  # MulBackward keeps the scalar, not x: overwriting x is safe
    ptr = x.data_ptr()
    seen = []
    x.register_hook(lambda g: seen.append(g.data_ptr()))
    loss = cross_entropy(x, t, reduction=reduction, impl="fused", inplace=True, **opts)
    go = torch.full_like(loss, 1.0 if reduction == "mean" else 0.625)
    ref_loss, ref_grad, _ = f_reference(
        h.detach() * 3.0, t, reduction=reduction, grad_output=go, **opts
    )
    loss.backward(go)
    tol = tolerance(dtype)  # float16/bfloat16: float32 math, the gradient rounded once
    assert_normwise(loss, ref_loss, tol, "loss", floor=float(h.abs().max()) * 3)
    assert_normwise(h.grad, 3.0 * ref_grad, tol, "grad")
    if reduction == "mean":  # grad_output 1: the buffer itself, i.e. x's storage, flows back
        assert seen == [ptr]
    # the logits now hold (a multiple of) the gradient, not the logits
    assert not torch.allclose(x.detach(), h.detach() * 3.0)


def test_inplace_unbatched_matches_f():
    h = _h(shape=(5,))
    x = h + 0.0
    ptr = x.data_ptr()
    seen = []
    x.register_hook(lambda g: seen.append(g.data_ptr()))
    cross_entropy(x, torch.tensor(3), impl="fused", inplace=True).backward()
    _, ref_grad, _ = f_reference(h, torch.tensor(3))
    assert_normwise(h.grad, ref_grad, 1e-12)
    assert seen == [ptr]


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16], ids=str)
@pytest.mark.parametrize(
    "producer",
    [torch.tanh, torch.exp, torch.sigmoid, lambda h: torch.softmax(h, 1)],
    ids=["tanh", "exp", "sigmoid", "softmax"],
)
def test_inplace_on_logits_saved_by_their_producer_raises_at_backward(producer, dtype):
    h = _h(dtype=dtype)
    x = producer(h)  # these backward formulas read their own output
    loss = cross_entropy(x, torch.tensor([0, 1, 2, 3, 4, 0]), impl="fused", inplace=True)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()
    assert h.grad is None


def test_inplace_on_logits_saved_by_another_consumer_raises_at_backward():
    h = _h()
    x = h * 2.0
    other = (x * x).sum()  # MulBackward saves x
    loss = cross_entropy(x, torch.tensor([0, 1, 2, 3, 4, 0]), impl="fused", inplace=True)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        (loss + other).backward()


def test_inplace_refuses_a_leaf_that_requires_grad():
    h = _h()
    before = h.detach().clone()
    with pytest.raises(ValueError, match="leaf"):
        cross_entropy(h, torch.zeros(6, dtype=torch.long), impl="fused", inplace=True)
    assert torch.equal(h.detach(), before)


@pytest.mark.parametrize("impl", ["manual", "autograd", "torch"])
def test_inplace_refuses_non_fused_impls(impl):
    x = _h() * 1.0
    with pytest.raises(ValueError, match=rf"inplace=True needs impl='fused', got impl='{impl}'"):
        cross_entropy(x, torch.zeros(6, dtype=torch.long), impl=impl, inplace=True)
    with pytest.raises(ValueError, match="inplace=True needs impl='fused'"):
        SoftmaxCrossEntropyLoss(impl=impl, inplace=True)(x, torch.zeros(6, dtype=torch.long))


@pytest.mark.parametrize(
    ("x", "target", "match"),
    [
        (
            torch.randn(6, 5).to(torch.float8_e4m3fn),
            torch.zeros(6, dtype=torch.long),
            "float32, float64, bfloat16 or float16 input, got torch.float8_e4m3fn",
        ),
        (torch.randn(2, 5, 3), torch.zeros(2, 3, dtype=torch.long), r"\(2, 5, 3\)"),
        (torch.randn(5, 6).t(), torch.zeros(6, dtype=torch.long), "contiguous=False"),
    ],
    ids=["float8", "kdim", "non_contiguous"],
)
def test_inplace_refuses_unsupported_layouts(x, target, match):
    with pytest.raises(ValueError, match=match):
        cross_entropy(x, target, impl="fused", inplace=True)


def test_inplace_module():
    h = _h()
    t = torch.tensor([4, 3, 2, 1, 0, 4])
    module = SoftmaxCrossEntropyLoss(label_smoothing=0.1, impl="fused", inplace=True)
    module(h * 1.0, t).backward()
    _, ref_grad, _ = f_reference(h, t, label_smoothing=0.1)
    assert_normwise(h.grad, ref_grad, 1e-12)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("call", ["registry", "cross_entropy"])
def test_gradient_reaches_the_leaf_in_the_logits_storage_without_a_copy(call, dtype):
    """grad_output 1 on the CPU: the gradient written over the logits becomes leaf.grad
    itself (a copy would cost a logits-sized buffer and its page faults), in every dtype."""
    import softmaxloss

    leaf = _h(shape=(7, 4), seed=3, dtype=dtype)
    t = torch.tensor([0, 3, 1, 2, 2, 0, 1])
    _, ref_grad, _ = f_reference(leaf.detach(), t)
    logits = leaf.clone()  # CloneBackward passes the gradient through unchanged
    ptr = logits.data_ptr()
    if call == "registry":
        loss = softmaxloss.IMPLEMENTATIONS["fused_inplace"](logits, t)
    else:
        loss = cross_entropy(logits, t, impl="fused", inplace=True)
    loss.backward()
    assert leaf.grad.data_ptr() == ptr and leaf.grad.dtype == dtype
    assert_normwise(leaf.grad, ref_grad, tolerance(dtype))
