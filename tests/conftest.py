"""Shared helpers: the independent reference (``F.cross_entropy`` in float64 on the same
rounded inputs) and a normwise comparison with NaN positions compared exactly.

Nothing here calls the code under test; every expected number comes from ``F`` in float64
(or, in test_reference.py, from mpmath).
"""

from __future__ import annotations

import os
import warnings

import pytest
import torch
import torch.nn.functional as F
from hypothesis import settings

# Every tensor here is tiny: intra-op threads only add OpenMP spin/wake-up cost (10x slower
# on this shared 2-core machine), so the suite runs single-threaded.
torch.set_num_threads(1)

# CI (CI=true): the same hypothesis examples on every run, no example database writes.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")

LOW_PRECISION = (torch.float16, torch.bfloat16)
DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def tolerance(dtype: torch.dtype, impl: str = "manual") -> float:
    """Normwise relative tolerance of a result in ``dtype`` against the float64 reference.

    float64: the brief's round-off level, 1e-12 (~4500 eps64; the inputs here have at most a
    few hundred rows and 16 classes, so the accumulated round-off is a few dozen eps).
    float32: 64 eps32 ~ 7.6e-6: log-sum-exp over C <= 16 terms plus a reduction over a few
    hundred rows accumulate at most ~(C + log2 M) eps, with a 2x margin.
    float16/bfloat16: the package computes in float32 and rounds the result once, so the
    error is 0.5 eps(dtype) from that rounding plus float32 round-off (< 0.02 eps16); 2 eps.
    ``impl="torch"`` (F.cross_entropy in the low-precision dtype itself, the sanity baseline)
    rounds its intermediates (log_softmax output) to the dtype: 16 eps.
    """
    eps = torch.finfo(dtype).eps
    if dtype == torch.float64:
        return 1e-12
    if dtype == torch.float32:
        return 64 * eps
    return (16 if impl == "torch" else 2) * eps


def assert_normwise(actual, expected, tol, what="", floor=0.0):
    """NaN positions identical; elsewhere max|a - e| <= tol * max(max|e|, floor, tiny).

    ``floor`` is the natural magnitude of the quantity's terms, for results that are small
    by cancellation (a row whose loss lse - x_t is 0.005 while |x| is 5 is known only to
    eps * |x| absolute, in any floating-point evaluation of F.cross_entropy too).
    """
    actual = actual.detach().double().cpu()
    expected = expected.detach().double().cpu()
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    nan_a, nan_e = actual.isnan(), expected.isnan()
    assert torch.equal(nan_a, nan_e), f"{what}: NaN pattern differs\n{actual}\n{expected}"
    a, e = actual[~nan_e], expected[~nan_e]
    if e.numel() == 0:
        return
    assert torch.isfinite(a).all(), f"{what}: non-finite values {a}"
    scale = max(float(e.abs().max()), floor, torch.finfo(torch.float64).tiny)
    err = float((a - e).abs().max()) / scale
    assert err <= tol, f"{what}: normwise error {err:.3g} > {tol:.3g}"


def f_reference(
    input,
    target,
    weight=None,
    ignore_index=-100,
    reduction="mean",
    label_smoothing=0.0,
    grad_output=None,
    target_grad=False,
):
    """``F.cross_entropy`` in float64 on the upcast (same rounded) inputs.

    Returns ``(loss, grad_input, grad_target)`` in float64 (grad_target None unless asked).
    """
    x = input.detach().double().requires_grad_(True)
    prob = target.is_floating_point()
    t = target.detach().double() if prob else target
    if target_grad:
        t.requires_grad_(True)
    w = None if weight is None else weight.detach().double()
    loss = F.cross_entropy(
        x,
        t,
        weight=w,
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=label_smoothing,
    )
    go = torch.ones_like(loss) if grad_output is None else grad_output.double()
    inputs = [x, t] if target_grad else [x]
    grads = torch.autograd.grad(loss, inputs, go)
    return loss.detach(), grads[0], grads[1] if target_grad else None


def random_grad_output(loss: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """A non-unit grad_output in the loss' dtype (values in [0.5, 2), sign random)."""
    mag = 0.5 + 1.5 * torch.rand(loss.shape, generator=gen, dtype=torch.float64)
    sign = torch.where(torch.rand(loss.shape, generator=gen) < 0.5, -1.0, 1.0)
    return (mag * sign).to(loss.dtype)


@pytest.fixture(autouse=True)
def _quiet_scalar_warning():
    # float(loss) on a tensor that requires grad warns; the tests read values on purpose.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad")
        yield


@pytest.fixture
def cli_refuses(capsys):
    """``cli_refuses(argv, match)``: ``python -m lossbench ARGV`` exits 2 with one stderr
    line matching ``match`` and nothing on stdout (the command line's bad-input contract)."""
    import re

    from lossbench.commands import main

    def check(argv, match):
        rc = main(argv)
        err = capsys.readouterr()
        assert rc == 2 and err.out == "", (rc, err.out)
        assert len(err.err.splitlines()) == 1 and re.search(match, err.err), err.err
        return err.err

    return check


@pytest.fixture
def kept_file(tmp_path):
    """A file with earlier results in it, for checks that a command never overwrites one."""
    path = tmp_path / "kept.json"
    path.write_text("earlier results")
    return path


@pytest.fixture(params=["cpp", "python"])
def cpu_backend(request, monkeypatch):
    """Which Functions serve CPU calls of manual and fused in the simple case (class indices,
    no class weights, no label smoothing): ``"cpp"``, the C++ Functions
    (``softmaxloss._cpu_ext``; skipped where they cannot be built), or ``"python"``, the
    Python Functions (which serve every other case, CUDA, torch.compile and machines
    without a compiler)."""
    from softmaxloss import _cpu_ext

    if request.param == "python":
        monkeypatch.setattr(_cpu_ext, "_loaded", [None])
    elif _cpu_ext.module() is None:
        pytest.skip(f"no C++ Functions here: {_cpu_ext.status()}")
    return request.param
