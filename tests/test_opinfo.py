"""PyTorch's own sample inputs for ``nn.functional.cross_entropy`` (its OpInfo, the inputs
PyTorch tests the operator with) as a parity test of every implementation.

For every sample and dtype: ``cross_entropy(..., impl=...)`` for each impl, loss and the
gradients with respect to the input and (class-probability samples, which PyTorch marks as
requiring grad) the target, against ``F.cross_entropy`` in float64 on the same rounded inputs,
for a random non-unit grad_output. Registry entries get the samples that fit their contract
((N, C) logits, class indices, the mean) and are compared the same way.

Importing PyTorch's test helpers needs the ``expecttest`` package (a test extra).
"""

from __future__ import annotations

import zlib

import pytest
import torch
from conftest import DTYPES, assert_normwise, f_reference, random_grad_output, tolerance

import softmaxloss
from softmaxloss import IMPL_CHOICES, UnsupportedDtypeError, cross_entropy

pytest.importorskip("expecttest", reason="PyTorch's OpInfo samples need expecttest")
from torch.testing._internal.common_methods_invocations import op_db  # noqa: E402

OP = next(op for op in op_db if op.name == "nn.functional.cross_entropy")


def _describe(sample) -> str:
    target = sample.args[0]
    kind = "prob" if target.is_floating_point() else "index"
    opts = ",".join(
        f"{k}={tuple(v.shape) if isinstance(v, torch.Tensor) else v}"
        for k, v in sorted(sample.kwargs.items())
    )
    return f"{tuple(sample.input.shape)}-{kind}{'-' + opts if opts else ''}"


def _samples(dtype):
    """PyTorch's samples, detached (inputs and targets are re-made per call)."""
    out = []
    for i, s in enumerate(OP.sample_inputs("cpu", dtype, requires_grad=True)):
        target = s.args[0]
        kwargs = {
            k: (v.detach() if isinstance(v, torch.Tensor) else v) for k, v in s.kwargs.items()
        }
        out.append(
            pytest.param(
                s.input.detach(),
                target.detach(),
                target.requires_grad,
                kwargs,
                id=f"{i}-{_describe(s)}",
            )
        )
    return out


SAMPLES = {dtype: _samples(dtype) for dtype in DTYPES}
CASES = [
    pytest.param(dtype, *p.values, id=f"{dtype}-{p.id}") for dtype in DTYPES for p in SAMPLES[dtype]
]


def _fits_registry(input, target, kwargs) -> bool:
    return (
        input.dim() == 2
        and not target.is_floating_point()
        and set(kwargs) <= {"reduction"}
        and kwargs.get("reduction", "mean") == "mean"
    )


REGISTRY_CASES = [
    pytest.param(dtype, p.values[0], p.values[1], id=f"{dtype}-{p.id}")
    for dtype in DTYPES
    for p in SAMPLES[dtype]
    if _fits_registry(p.values[0], p.values[1], p.values[3])
]


def _floors(x, kwargs, go, reduction):
    """The natural magnitudes of assert_normwise, as in test_parity.check_parity."""
    rows = max(1, x.numel() // x.shape[1 if x.dim() > 1 else 0])
    weight = kwargs.get("weight")
    wmax = 1.0 if weight is None else float(weight.abs().max())
    xmax = max(1.0, float(x.double().abs().max()))
    loss_floor = wmax * xmax * (rows if reduction == "sum" else 1)
    grad_floor = 0.1 * float(go.double().abs().max()) * wmax / rows
    return loss_floor, grad_floor, xmax


def test_pytorch_provides_the_samples():
    """The OpInfo still covers what this file relies on: both target kinds, weights,
    reductions, ignore_index and K-dimensional inputs."""
    descriptions = " ".join(p.id for p in SAMPLES[torch.float64])
    for feature in ("prob", "index", "weight=", "reduction=none", "ignore_index=", "(2, 3, 1, 2)"):
        assert feature in descriptions, feature
    assert len(SAMPLES[torch.float64]) >= 20
    assert len(REGISTRY_CASES) >= len(DTYPES)


@pytest.mark.parametrize(("dtype", "input", "target", "target_grad", "kwargs"), CASES)
@pytest.mark.parametrize("impl", IMPL_CHOICES)
def test_opinfo_sample(impl, dtype, input, target, target_grad, kwargs):
    gen = torch.Generator().manual_seed(zlib.crc32(f"{impl} {dtype} {kwargs}".encode()))
    reduction = kwargs.get("reduction", "mean")
    xi = input.clone().requires_grad_(True)
    ti = target.clone().requires_grad_(True) if target_grad else target
    loss = cross_entropy(xi, ti, impl=impl, **kwargs)
    assert loss.dtype == dtype
    go = random_grad_output(loss, gen)
    inputs = [xi, ti] if target_grad else [xi]
    grads = torch.autograd.grad(loss, inputs, go)
    ref_loss, ref_gx, ref_gt = f_reference(
        input, target, grad_output=go, target_grad=target_grad, **kwargs
    )
    tol = tolerance(dtype, impl)
    loss_floor, grad_floor, xmax = _floors(input, kwargs, go, reduction)
    assert_normwise(loss, ref_loss, tol, f"{impl} loss", loss_floor)
    assert grads[0].dtype == dtype
    assert_normwise(grads[0], ref_gx, tol, f"{impl} grad wrt input", grad_floor)
    if target_grad:
        assert grads[1].dtype == target.dtype
        assert_normwise(grads[1], ref_gt, tol, f"{impl} grad wrt target", grad_floor * xmax)


@pytest.mark.parametrize(("dtype", "input", "target"), REGISTRY_CASES)
@pytest.mark.parametrize("name", tuple(softmaxloss.IMPLEMENTATIONS))
def test_opinfo_sample_registry_entry(name, dtype, input, target):
    fn = softmaxloss.IMPLEMENTATIONS[name]
    gen = torch.Generator().manual_seed(zlib.crc32(f"{name} {dtype}".encode()))
    leaf = input.clone().requires_grad_(True)
    try:  # non-leaf logits, as every consumer feeds the registry (fused_inplace needs it)
        loss = fn(leaf.clone(), target)
    except UnsupportedDtypeError as exc:  # the naive pair on float16/bfloat16, by design
        pytest.skip(str(exc))
    assert loss.dtype == dtype and loss.dim() == 0
    go = random_grad_output(loss, gen)
    (grad,) = torch.autograd.grad(loss, [leaf], go)
    ref_loss, ref_gx, _ = f_reference(input, target, grad_output=go)
    impl = "torch" if name == "torch" else "manual"
    tol = tolerance(dtype, impl)
    loss_floor, grad_floor, _ = _floors(input, {}, go, "mean")
    assert_normwise(loss, ref_loss, tol, f"{name} loss", loss_floor)
    assert_normwise(grad, ref_gx, tol, f"{name} grad", grad_floor)
