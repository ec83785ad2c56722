"""The private torch APIs the package relies on (``softmaxloss._torch_private``).

If a torch release renames or changes ``torch._softmax(..., out=)``, ``Tensor._base`` or
``torch.nn._reduction.legacy_get_string``, these tests fail and name the call.
"""

from __future__ import annotations

import warnings

import pytest
import torch

from softmaxloss import _torch_private


def test_private_softmax_with_out_exists_and_writes_into_out():
    assert hasattr(torch, "_softmax"), "torch._softmax is gone: fix softmaxloss/_torch_private.py"
    gen = torch.Generator().manual_seed(0)
    for dtype in (torch.float32, torch.float64):
        x = torch.randn(7, 5, generator=gen, dtype=torch.float64).to(dtype)
        expected = torch.softmax(x.double(), 1)  # the public op, in float64
        out = torch.empty_like(x)
        got = _torch_private.softmax_into(x, 1, out=out)
        assert got.data_ptr() == out.data_ptr(), "torch._softmax(out=) no longer writes into out"
        tol = 4 * torch.finfo(dtype).eps
        assert float((got.double() - expected).abs().max()) <= tol


def test_private_softmax_in_place_into_its_own_input():
    x = torch.tensor([[1.0, 2.0, 3.0], [-1.0, 0.0, 1000.0]], dtype=torch.float64)
    expected = torch.softmax(x.clone(), 1)
    ptr = x.data_ptr()
    got = _torch_private.softmax_into(x, 1, out=x)
    assert got.data_ptr() == ptr and x.data_ptr() == ptr
    assert torch.allclose(x, expected, rtol=1e-15, atol=0)


def test_private_softmax_into_a_row_slice_of_a_scratch_buffer():
    scratch = torch.full((4, 3), -7.0)
    chunk = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, -1.0]])
    got = _torch_private.softmax_into(chunk, 1, out=scratch[:2])
    assert torch.allclose(got, torch.softmax(chunk, 1), rtol=1e-6, atol=0)
    assert torch.equal(scratch[2:], torch.full((2, 3), -7.0))  # rows past the slice untouched


def test_tensor_base_names_the_viewed_tensor():
    leaf = torch.zeros(6, requires_grad=True)
    assert hasattr(leaf, "_base"), "Tensor._base is gone: fix softmaxloss/_torch_private.py"
    assert leaf._base is None
    assert _torch_private.view_base(leaf) is leaf
    view = leaf.view(2, 3)
    assert view._base is leaf
    assert _torch_private.view_base(view) is leaf
    assert _torch_private.view_base(view[0]) is leaf  # a view of a view: the storage owner
    owned = leaf * 2
    assert _torch_private.view_base(owned) is owned


def test_private_log_softmax_with_out_writes_into_out_and_in_place():
    assert hasattr(torch, "_log_softmax"), "torch._log_softmax is gone: fix _torch_private.py"
    gen = torch.Generator().manual_seed(1)
    for dtype in (torch.float32, torch.float64):
        x = (torch.randn(6, 5, generator=gen, dtype=torch.float64) * 50).to(dtype)
        expected = torch.log_softmax(x.double(), 1)
        out = torch.empty_like(x)
        got = _torch_private.log_softmax_into(x, 1, out=out)
        assert got.data_ptr() == out.data_ptr(), "torch._log_softmax(out=) ignores out"
        scale = float(expected.abs().max())
        assert float((got.double() - expected).abs().max()) <= 4 * torch.finfo(dtype).eps * scale
        y = x.clone()
        ptr = y.data_ptr()
        _torch_private.log_softmax_into(y, 1, out=y)
        assert y.data_ptr() == ptr and torch.equal(y, got)


def test_private_assert_async_passes_true_and_raises_false_on_the_cpu():
    assert hasattr(torch, "_assert_async"), "torch._assert_async is gone: fix _torch_private.py"
    _torch_private.assert_async(torch.tensor(True), "never raised")
    with pytest.raises(RuntimeError, match="class index outside"):
        _torch_private.assert_async(torch.tensor(False), "class index outside [0, 3)")


@pytest.mark.parametrize(
    ("size_average", "reduce", "expected"),
    [(None, None, "mean"), (True, None, "mean"), (False, None, "sum"), (None, False, "none"),
     (False, True, "sum"), (True, False, "none")],
)  # fmt: skip
def test_legacy_reduction_maps_as_the_documented_nn_loss_arguments(size_average, reduce, expected):
    # torch.nn docs: reduce=False -> 'none' whatever size_average; else size_average=False ->
    # 'sum'; else 'mean'
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert _torch_private.legacy_reduction(size_average, reduce) == expected
    x = torch.tensor([[1.0, 2.0], [0.5, -1.0]])
    t = torch.tensor([0, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = torch.nn.functional.cross_entropy(x, t, reduction=expected)
        legacy = torch.nn.functional.cross_entropy(x, t, size_average=size_average, reduce=reduce)
    assert torch.equal(ours, legacy)
