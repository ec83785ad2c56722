"""The exact reference (numpy longdouble) against mpmath at 50 digits, and the error metrics
(grad_error_eps, loss_error_eps, capped, measure, grad_l1_distance) on hand-computed cases.
"""

from __future__ import annotations

import math
from fractions import Fraction

import mpmath
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import softmaxloss
from lossbench.reference import (
    ERROR_CAP,
    capped,
    grad_error_eps,
    grad_l1_distance,
    loss_error_eps,
    measure,
    reference_loss_and_grad,
)

needs_extended = pytest.mark.skipif(
    np.finfo(np.longdouble).eps > 1e-18, reason="numpy longdouble is not an extended format here"
)


def ld_to_mpf(v) -> mpmath.mpf:
    """A longdouble, exactly: its 64-bit significand split into two float64 halves."""
    m, e = np.frexp(np.longdouble(v))
    hi = np.float64(m)
    lo = np.float64(m - np.longdouble(hi))
    assert np.longdouble(hi) + np.longdouble(lo) == m
    return mpmath.ldexp(mpmath.mpf(float(hi)) + mpmath.mpf(float(lo)), int(e))


def mp_loss_and_grad(x: torch.Tensor, t: torch.Tensor):
    """Mean cross-entropy and gradient at 50 significant digits (float64 inputs are exact)."""
    with mpmath.workdps(50):
        rows = [[mpmath.mpf(v) for v in row] for row in x.double().tolist()]
        n = len(rows)
        loss, grad = mpmath.mpf(0), []
        for row, ti in zip(rows, t.tolist(), strict=True):
            s = mpmath.fsum(mpmath.exp(v) for v in row)
            loss += mpmath.log(s) - row[ti]
            grad.append([(mpmath.exp(v) / s - (j == ti)) / n for j, v in enumerate(row)])
        return loss / n, grad


def _cases():
    gen = torch.Generator().manual_seed(0)
    out = {}
    for name, scale in [("unit", 1.0), ("moderate", 30.0), ("large_1e4", 1e4)]:
        x = torch.randn(4, 6, generator=gen, dtype=torch.float64) * scale
        t = torch.randint(0, 6, (4,), generator=gen)
        out[name] = (x, t)
    x, t = out["large_1e4"]
    x[0, 1] = x[0, 0] + 0.5  # a near tie at magnitude 1e4: softmax neither 0 nor 1
    t[0] = 0
    # float32-rounded inputs, the way the registry sees them
    x = (torch.randn(3, 5, generator=gen) * 8).double()
    out["float32_values"] = (x, torch.tensor([4, 0, 2]))
    out["one_class"] = (torch.tensor([[3.0], [-2.0]], dtype=torch.float64), torch.tensor([0, 0]))
    return out


CASES = _cases()


@needs_extended
@pytest.mark.parametrize("case", CASES)
def test_reference_agrees_with_mpmath_50_digits(case):
    x, t = CASES[case]
    loss, grad = reference_loss_and_grad(x, t)
    assert isinstance(loss, np.longdouble) and grad.dtype == np.longdouble
    assert grad.shape == tuple(x.shape)
    mp_loss, mp_grad = mp_loss_and_grad(x, t)
    with mpmath.workdps(50):
        if mp_loss == 0:
            assert loss == 0
        else:
            assert abs(ld_to_mpf(loss) - mp_loss) / abs(mp_loss) < 1e-18
        scale = max(abs(v) for row in mp_grad for v in row)
        err = max(
            abs(ld_to_mpf(grad[i, j]) - mp_grad[i][j])
            for i in range(x.shape[0])
            for j in range(x.shape[1])
        )
        if scale == 0:
            assert err == 0
        else:
            assert err / scale < 1e-18


# ---------------------------------------------------------------------------------------
# Metric definitions on hand-computed cases (expected values computed with Fractions)
# ---------------------------------------------------------------------------------------
EPS32 = Fraction(2) ** -23
EPS64 = Fraction(2) ** -52


def test_grad_error_eps_definition_normwise():
    ref = np.array([[0.5, -0.25], [0.125, 2.0]], dtype=np.longdouble)
    g = torch.tensor([[0.5, -0.25], [0.125 + 2.0**-20, 2.0 - 2.0**-22]], dtype=torch.float32)
    # max|g - g*| = 2**-20, max|g*| = 2: (2**-20 / 2) / 2**-23 = 4 eps
    expected = (Fraction(2) ** -20 / 2) / EPS32
    assert grad_error_eps(g, ref, torch.float32) == pytest.approx(float(expected), rel=1e-15)
    # the same gradient read as float64 is 2**29 times more eps
    assert grad_error_eps(g.double(), ref, torch.float64) == pytest.approx(
        float((Fraction(2) ** -20 / 2) / EPS64), rel=1e-15
    )
    assert grad_error_eps(torch.from_numpy(ref.astype(np.float64)), ref, torch.float64) == 0.0


def test_grad_error_eps_uses_tiny_for_a_zero_reference_and_inf_for_non_finite():
    ref = np.zeros((1, 2), dtype=np.longdouble)
    tiny = torch.finfo(torch.float32).tiny
    g = torch.tensor([[0.0, 2 * tiny]], dtype=torch.float32)
    assert grad_error_eps(g, ref, torch.float32) == pytest.approx(2 / float(EPS32))
    ref = np.ones((1, 2), dtype=np.longdouble)
    for bad in (math.inf, -math.inf, math.nan):
        g = torch.tensor([[1.0, bad]])
        assert grad_error_eps(g, ref, torch.float32) == math.inf


def test_loss_error_eps_definition():
    ref = np.longdouble(1.5) + np.longdouble(2.0) ** -40
    expected = (Fraction(2) ** -40) / (Fraction(3, 2) + Fraction(2) ** -40) / EPS64
    got = loss_error_eps(torch.tensor(1.5, dtype=torch.float64), ref, torch.float64)
    assert got == pytest.approx(float(expected), rel=1e-12)
    # a Python float works the same; float32 eps gives a 2**29 smaller number
    assert loss_error_eps(1.5, ref, torch.float64) == pytest.approx(float(expected), rel=1e-12)
    expected32 = (Fraction(2) ** -40) / (Fraction(3, 2) + Fraction(2) ** -40) / EPS32
    assert loss_error_eps(1.5, ref, torch.float32) == pytest.approx(float(expected32), rel=1e-12)
    for bad in (math.inf, math.nan, torch.tensor(math.nan)):
        assert loss_error_eps(bad, ref, torch.float32) == math.inf
    # zero reference: the denominator is tiny, not 0
    tiny = torch.finfo(torch.float64).tiny
    assert loss_error_eps(tiny, np.longdouble(0), torch.float64) == pytest.approx(1 / float(EPS64))


@pytest.mark.parametrize(
    ("error", "recorded"),
    [
        (0.0, 1.0),
        (0.3, 1.0),
        (1.0, 1.0),
        (2.5, 2.5),
        (20.0, 20.0),
        (1e11, 1e11),
        (1e12, 1e12),
        (3e15, 1e12),
        (math.inf, 1e12),
        (-math.inf, 1e12),
        (math.nan, 1e12),
    ],
)
def test_capped(error, recorded):
    assert ERROR_CAP == 1e12
    assert capped(error) == recorded


def test_grad_l1_distance_is_sum_of_absolute_differences():
    a = torch.tensor([[1.0, -2.0], [0.5, 0.0]], dtype=torch.float32)
    b = torch.tensor([[1.5, -2.0], [0.0, 0.25]], dtype=torch.float32)
    assert grad_l1_distance(a, b) == 0.5 + 0.0 + 0.5 + 0.25
    assert grad_l1_distance(a, a) == 0.0


@needs_extended
def test_measure_scores_a_known_perturbation():
    """An impl whose loss is off by exactly (1 + 2**-20) in float32 scores 8 loss eps."""
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(8, 5, generator=gen)
    t = torch.randint(0, 5, (8,), generator=gen)
    ref_loss, ref_grad = reference_loss_and_grad(x, t)

    def off(logits, target):
        return F.cross_entropy(logits.double(), target).float() * (1 + 2.0**-20)

    report = measure(off, x, t)
    # the float64 loss rounded to float32 is within 0.5 eps of exact: 8 +- 0.5(1 + 2**-20)
    assert 7.4 < report.loss_error_eps < 8.6
    # its gradient is scaled by the same factor: normwise error 2**-20 / eps32 = 8 eps
    assert 7.4 < report.grad_error_eps < 8.6
    assert report.grad.shape == x.shape
    # and the reference passed in is used as is
    again = measure(off, x, t, (ref_loss, ref_grad))
    assert again.grad_error_eps == report.grad_error_eps


@needs_extended
def test_measure_reports_non_finite_as_inf():
    x = torch.randn(3, 4)
    t = torch.tensor([0, 1, 2])

    def broken(logits, target):
        return (logits * math.nan).sum()

    report = measure(broken, x, t)
    assert report.loss_error_eps == math.inf
    assert report.grad_error_eps == math.inf
    assert capped(report.grad_error_eps) == ERROR_CAP


def test_measure_unknown_name_lists_the_registry():
    with pytest.raises(ValueError, match=r"impl must be one of .*'manual'.*got 'nope'"):
        measure("nope", torch.zeros(2, 3), torch.tensor([0, 1]))
    assert "manual" in softmaxloss.IMPLEMENTATIONS
