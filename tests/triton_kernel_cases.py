"""Parity of the Triton kernel with float64 ``F.cross_entropy``; run by test_triton.py.

Not collected by a plain ``pytest`` run (the name does not start with ``test_``): the kernel
runs on CUDA tensors, or on CPU tensors only in a process started with ``TRITON_INTERPRET=1``,
so test_triton.py starts ``pytest`` on this file in a subprocess with that environment (and
once more without it when a GPU is present).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import assert_normwise, f_reference, random_grad_output, tolerance

triton_ce = pytest.importorskip("softmaxloss.triton_ce", reason="triton is not installed")

# numpy (the interpreter) warns on the inf - inf of an ignored row of non-finite logits
pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")

if triton_ce.INTERPRETED:
    DEVICE = "cpu"
elif torch.cuda.is_available():
    DEVICE = "cuda"
else:
    pytest.skip("needs TRITON_INTERPRET=1 or a CUDA device", allow_module_level=True)

DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
# (N, C): one chunk; C = 1; a single row; 4096 < C: two chunks of the online max/sum
SHAPES = [(16, 10), (5, 1), (1, 7), (33, 2), (3, 5000)]


def _case(shape, dtype, seed, scale=3.0):
    gen = torch.Generator().manual_seed(seed)
    x = (torch.randn(shape, generator=gen, dtype=torch.float64) * scale).to(dtype)
    t = torch.randint(0, shape[1], shape[:1], generator=gen)
    return x.to(DEVICE), t.to(DEVICE), gen


def _run(fn, x, t, go):
    xi = x.detach().clone().requires_grad_(True)
    loss = fn(xi, t)
    loss.backward(go)
    return loss, xi.grad


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_registry_entry_matches_f_float64(shape, dtype):
    x, t, gen = _case(shape, dtype, seed=shape[0] * 1000 + shape[1])
    go = random_grad_output(torch.zeros((), dtype=dtype), gen).to(DEVICE)
    loss, grad = _run(triton_ce.triton_entry, x, t, go)
    ref_loss, ref_grad, _ = f_reference(x, t, grad_output=go)
    assert loss.dtype == dtype and loss.dim() == 0 and grad.dtype == dtype
    tol = tolerance(dtype)
    assert_normwise(loss, ref_loss, tol, "loss", floor=float(x.abs().max()))
    assert_normwise(grad, ref_grad, tol, "grad", floor=1e-2 / shape[0])


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("ignore", ["none", "some", "all"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_reductions_and_ignore_index_match_f_float64(reduction, ignore, dtype):
    x, t, gen = _case((12, 6), dtype, seed=7)
    if ignore == "some":
        t[::3] = -100
    elif ignore == "all":
        t[:] = -100
    loss = triton_ce.cross_entropy_triton(x, t, reduction=reduction)
    go = random_grad_output(loss.detach().cpu(), gen).to(DEVICE)
    loss, grad = _run(
        lambda a, b: triton_ce.cross_entropy_triton(a, b, reduction=reduction), x, t, go
    )
    ref_loss, ref_grad, _ = f_reference(x, t, reduction=reduction, grad_output=go)
    tol = tolerance(dtype)
    assert_normwise(loss, ref_loss, tol, "loss", floor=8.0)
    assert_normwise(grad, ref_grad, tol, "grad", floor=1e-2 / 12)


@pytest.mark.parametrize("bad", [float("-inf"), float("inf"), float("nan")])
def test_ignored_rows_with_non_finite_logits_get_zero_gradient(bad):
    x, t, _ = _case((6, 5), torch.float64, seed=4)
    x[1], t[1] = bad, -100
    ref_loss, ref_grad, _ = f_reference(x, t)
    loss, grad = _run(triton_ce.cross_entropy_triton, x, t, None)
    assert torch.isfinite(ref_loss)
    assert_normwise(loss, ref_loss, 1e-12, "loss")
    kept = t != -100
    assert_normwise(grad[kept], ref_grad[kept], 1e-12, "grad of kept rows")
    assert torch.equal(grad[1].cpu(), torch.zeros(5, dtype=x.dtype))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_large_logits_stay_exact(dtype):
    """|x| ~ 1e4: the max shift keeps exp finite; p = exp(x - m) / s costs no precision."""
    x, t, gen = _case((32, 10), dtype, seed=3, scale=1e4)
    top = x.argmax(1)
    x[0, (top[0] + 1) % 10] = x[0, top[0]] - 0.5  # a row with softmax strictly inside (0, 1)
    t[0] = top[0]
    loss, grad = _run(triton_ce.triton_entry, x, t, None)
    ref_loss, ref_grad, _ = f_reference(x, t)
    assert torch.isfinite(loss) and torch.isfinite(grad).all()
    eps = torch.finfo(dtype).eps
    assert_normwise(loss, ref_loss, 8 * eps, "loss", floor=float(x.abs().max()))
    assert_normwise(grad, ref_grad, 8 * eps, "grad")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_inplace_writes_the_gradient_into_the_logits_storage(dtype):
    x, t, gen = _case((9, 7), dtype, seed=11)
    ref_loss, ref_grad, _ = f_reference(x, t)
    leaf = x.detach().clone().requires_grad_(True)
    logits = leaf * 1.0  # a non-leaf, as a layer's output
    loss = triton_ce.cross_entropy_triton(logits, t, inplace=True)
    tol = tolerance(dtype)
    assert_normwise(loss, ref_loss, tol, "loss", floor=8.0)
    # after forward the logits' storage holds the gradient of the mean loss
    assert_normwise(logits.detach(), ref_grad, tol, "storage after forward")
    loss.backward(torch.tensor(0.5, dtype=dtype, device=DEVICE))
    assert_normwise(leaf.grad, 0.5 * ref_grad, tol, "grad")
    with pytest.raises(RuntimeError, match="retain_graph"):
        logits2 = leaf * 1.0
        loss2 = triton_ce.cross_entropy_triton(logits2, t, inplace=True)
        loss2.backward(retain_graph=True)
        loss2.backward()


def test_inplace_bumps_the_version_so_a_saved_producer_refuses_backward():
    x, t, _ = _case((4, 3), torch.float32, seed=2)
    leaf = x.detach().clone().requires_grad_(True)
    logits = leaf.exp()  # exp saves its output: overwriting it must be detected
    loss = triton_ce.cross_entropy_triton(logits, t, inplace=True)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


def test_inplace_refuses_a_leaf_and_noncontiguous_logits():
    x, t, _ = _case((4, 3), torch.float32, seed=2)
    with pytest.raises(ValueError, match="leaf"):
        triton_ce.cross_entropy_triton(x.clone().requires_grad_(True), t, inplace=True)
    with pytest.raises(ValueError, match="contiguous"):
        triton_ce.cross_entropy_triton(x.t().contiguous().t() * 1.0, t, inplace=True)


def test_noncontiguous_rows_and_int32_targets():
    x, t, _ = _case((6, 20), torch.float64, seed=5)
    wide = torch.zeros(6, 40, dtype=torch.float64, device=DEVICE)
    wide[:, ::2] = x  # column stride 2: copied to a contiguous buffer first
    sliced = torch.zeros(6, 25, dtype=torch.float64, device=DEVICE)
    sliced[:, :20] = x  # row stride 25, column stride 1: read in place
    ref_loss, ref_grad, _ = f_reference(x, t)
    for logits in (wide[:, ::2], sliced[:, :20]):
        for tt in (t, t.int()):
            loss, grad = _run(triton_ce.triton_entry, logits, tt.clone(), None)
            assert_normwise(loss, ref_loss, 1e-12, "loss")
            assert_normwise(grad, ref_grad, 1e-12, "grad")


def test_bad_input_is_refused_before_the_kernel():
    x, t, _ = _case((4, 3), torch.float32, seed=2)
    with pytest.raises(IndexError, match="class index 3"):
        triton_ce.triton_entry(x, torch.tensor([0, 3, 1, 2], device=DEVICE))
    with pytest.raises(IndexError, match="class index -100"):
        triton_ce.triton_entry(x, torch.tensor([0, -100, 1, 2], device=DEVICE))
    with pytest.raises(ValueError, match=r"\(N, C\)"):
        triton_ce.triton_entry(x[0], t[0])
    with pytest.raises(TypeError, match="class indices"):
        triton_ce.cross_entropy_triton(x, torch.softmax(x, 1))
    with pytest.raises(ValueError, match="reduction"):
        triton_ce.cross_entropy_triton(x, t, reduction="avg")


def test_double_backward_is_refused():
    x, t, _ = _case((4, 3), torch.float32, seed=2)
    xi = x.clone().requires_grad_(True)
    loss = triton_ce.triton_entry(xi, t)
    with pytest.raises(RuntimeError, match="create_graph"):
        torch.autograd.grad(loss, xi, create_graph=True)


def test_matches_f_on_a_float32_call_exactly_enough():
    """The float32 loss and gradient against F.cross_entropy in float32 itself (a sanity
    check of the float64 comparison's scale, not a looser bound)."""
    x, t, _ = _case((64, 100), torch.float32, seed=9)
    loss, grad = _run(triton_ce.triton_entry, x, t, None)
    xf = x.clone().requires_grad_(True)
    F.cross_entropy(xf, t).backward()
    assert_normwise(grad, xf.grad, tolerance(torch.float32), "grad vs F float32")
