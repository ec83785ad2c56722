"""The registry ``softmaxloss.IMPLEMENTATIONS``: every entry against F.cross_entropy in
float64, the dict is the single mutable source the report iterates over, and the overflow
behaviour of the naive pair vs the stable ones at logits of magnitude 1e4 (scored against
the extended-precision reference by ``softmaxloss.measure``).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import assert_normwise

import softmaxloss
from lossbench import reference
from lossbench.commands.compare import compare
from lossbench.reference import capped, measure, reference_loss_and_grad

NAMES = tuple(softmaxloss.IMPLEMENTATIONS)
NAIVE = ("naive_manual", "naive_autograd")
STABLE = tuple(n for n in NAMES if n not in NAIVE)
BUILT_INS = {
    "naive_manual",
    "naive_autograd",
    "manual",
    "autograd",
    "fused",
    "fused_inplace",
    "torch",
}


def test_registry_is_a_plain_dict_with_the_built_ins():
    assert type(softmaxloss.IMPLEMENTATIONS) is dict
    assert set(softmaxloss.IMPLEMENTATIONS) >= BUILT_INS
    assert all(callable(f) for f in softmaxloss.IMPLEMENTATIONS.values())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("shape", [(16, 10), (1, 3), (33, 2), (5, 1)])
@pytest.mark.parametrize("name", NAMES)
def test_every_entry_matches_f_cross_entropy_float64(name, shape, dtype):
    gen = torch.Generator().manual_seed(shape[0] * 100 + shape[1])
    x = (torch.randn(shape, generator=gen, dtype=torch.float64) * 2).to(dtype)
    t = torch.randint(0, shape[1], (shape[0],), generator=gen)
    xr = x.detach().double().clone().requires_grad_(True)
    ref = F.cross_entropy(xr, t)
    ref.backward()
    xi = x.clone().requires_grad_(True)
    loss = softmaxloss.IMPLEMENTATIONS[name](xi.clone(), t)  # non-leaf logits, as a layer's
    assert loss.dtype == dtype and loss.dim() == 0
    go = torch.tensor(0.75, dtype=dtype)  # a non-unit grad_output: gradient scales with it
    loss.backward(go)
    # float64: round-off; float32: 64 eps32 (see conftest.tolerance), |x| <= ~8 here
    tol = 1e-12 if dtype == torch.float64 else 64 * torch.finfo(torch.float32).eps
    assert_normwise(loss, ref, tol, name, floor=float(x.abs().max()))
    assert_normwise(xi.grad, 0.75 * xr.grad, tol, name, floor=1e-2 / shape[0])


@pytest.mark.parametrize("name", STABLE)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_stable_entries_accept_low_precision(name, dtype):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(8, 6, generator=gen).to(dtype)
    t = torch.randint(0, 6, (8,), generator=gen)
    report = measure(name, x, t)
    assert report.grad.dtype == dtype
    # one rounding of float32 results to the dtype (torch's own path rounds more)
    assert report.loss_error_eps <= 2 and report.grad_error_eps <= (16 if name == "torch" else 2)


@pytest.mark.parametrize("name", NAIVE)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_naive_entries_refuse_low_precision(name, dtype):
    with pytest.raises(TypeError, match=str(dtype)):
        softmaxloss.IMPLEMENTATIONS[name](torch.zeros(2, 3, dtype=dtype), torch.tensor([0, 1]))


def test_inplace_entry_refuses_float8_as_unsupported():
    """fused_inplace writes the gradient in the logits' dtype: float16, bfloat16, float32 or
    float64; any other floating dtype is a skip for the benchmarks, with the logits kept."""
    x = torch.tensor([[0.5, -1.0, 2.0], [1.0, 0.25, -0.5]]).to(torch.float8_e4m3fn)
    before = x.clone()
    with pytest.raises(softmaxloss.UnsupportedDtypeError, match="float8_e4m3fn"):
        softmaxloss.IMPLEMENTATIONS["fused_inplace"](x, torch.tensor([0, 1]))
    assert torch.equal(x.view(torch.uint8), before.view(torch.uint8))


def test_registering_an_entry_makes_compare_measure_it(monkeypatch):
    """Assigning into the dict is all it takes: the report command picks the entry up."""

    def scaled_torch(logits, target):  # deliberately 2**-10 too large: a visible error
        return F.cross_entropy(logits, target) * (1 + 2.0**-10)

    def raising(logits, target):
        raise RuntimeError("boom")

    monkeypatch.setitem(softmaxloss.IMPLEMENTATIONS, "scaled_torch", scaled_torch)
    monkeypatch.setitem(softmaxloss.IMPLEMENTATIONS, "raising", raising)
    monkeypatch.delitem(softmaxloss.IMPLEMENTATIONS, "naive_autograd")
    rep = compare(size=12, classes=7, dtype="float64", repeats=1)
    assert set(rep["loss"]) == set(softmaxloss.IMPLEMENTATIONS) - {"raising"}
    assert "naive_autograd" not in rep["loss"]
    assert rep["errors"] == {"raising": "RuntimeError: boom"}
    # 2**-10 relative in float64 is 2**42 eps in loss and gradient
    assert rep["loss_error_eps"]["scaled_torch"] == pytest.approx(2.0**42, rel=1e-6)
    assert rep["grad_error_eps"]["scaled_torch"] == pytest.approx(2.0**42, rel=1e-6)
    assert rep["grad_error_eps"]["manual"] < 16
    assert set(rep["seconds"]["scaled_torch"]) == {"forward", "backward"}


def test_compare_numbers_match_an_independent_computation():
    rep = compare(size=10, classes=4, dtype="float64", seed=3, repeats=1)
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(10, 4, generator=gen, dtype=torch.float64)
    t = torch.arange(10) % 4
    ref = F.cross_entropy(x, t).item()
    for name in softmaxloss.IMPLEMENTATIONS:
        assert rep["loss"][name] == pytest.approx(ref, rel=1e-13), name
    assert rep["reference_loss"] == pytest.approx(ref, rel=1e-14)
    assert 0 <= rep["grad_l1_distance"] < 1e-14


# ---------------------------------------------------------------------------------------
# Overflow at logits of magnitude 1e4
# ---------------------------------------------------------------------------------------
def _large_logits(dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(32, 10, generator=gen, dtype=torch.float64) * 1e4
    t = torch.randint(0, 10, (32,), generator=gen)
    # a few rows whose top two logits are close (softmax strictly between 0 and 1 there),
    # with the target on either of them or elsewhere
    for row, gap, target in [(0, 0.5, 0), (1, 2.0, 1), (2, 0.0, 3)]:
        top = int(x[row].argmax())
        other = (top + 1) % 10
        x[row, other] = x[row, top] - gap
        t[row] = [top, other, (top + 2) % 10][target % 3]
    return x.to(dtype), t


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_naive_pair_overflows_at_1e4(dtype):
    x, t = _large_logits(dtype)
    ref = reference_loss_and_grad(x, t)
    assert np.isfinite(ref[0]) and np.isfinite(ref[1]).all()
    for name in NAIVE:
        xi = x.clone().requires_grad_(True)
        loss = softmaxloss.IMPLEMENTATIONS[name](xi, t)
        loss.backward()
        assert not torch.isfinite(loss), name
        assert not torch.isfinite(xi.grad).all(), name
        report = measure(name, x, t, ref)
        assert report.loss_error_eps == math.inf and report.grad_error_eps == math.inf
        assert capped(report.grad_error_eps) == reference.ERROR_CAP


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("name", STABLE)
def test_stable_entries_are_finite_and_accurate_at_1e4(name, dtype):
    x, t = _large_logits(dtype)
    report = measure(name, x, t)
    assert math.isfinite(report.loss) and torch.isfinite(report.grad).all()
    assert report.loss_error_eps <= 4
    # Every stable entry subtracts the row max exactly (m - x is exact to an ulp) and keeps
    # log s apart from m, so logits of 1e4 cost no precision: a few eps, at least 1e9 x
    # better than the naive pair's inf. (Forming p = exp(x - lse) with lse rounded at
    # magnitude 1e4 would cost up to 4096 eps here: this bound catches that regression.)
    bound = 8
    assert report.grad_error_eps <= bound, report.grad_error_eps
