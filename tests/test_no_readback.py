"""No call reads a value back from a tensor off the CPU, checked without a GPU.

On CUDA, reading a value back (``bool(t.any())``, ``.item()``, ``int(t)``) waits for the
device: a host-device synchronisation per call. The "meta" device stands in for a GPU here:
a meta tensor has a shape and a dtype but no values, so any such read raises. Every
implementation's forward+backward, for every feature, must run on meta tensors.
(tests/test_cuda.py checks the same on a GPU with ``torch.cuda.set_sync_debug_mode``.)
"""

from __future__ import annotations

import pytest
import torch

import softmaxloss
from softmaxloss import cross_entropy

META = "meta"

FEATURES = {
    "plain": dict(),
    "ignore_valid_class": dict(ignore_index=1),
    "weight": dict(weight=True),
    "smoothing": dict(label_smoothing=0.2),
    "weight_smoothing_sum": dict(weight=True, label_smoothing=0.1, reduction="sum"),
    "none": dict(reduction="none"),
    "prob": dict(prob=True),
    "prob_target_grad": dict(prob=True, target_grad=True),
    "kdim": dict(shape=(4, 5, 3)),
    "unbatched": dict(shape=(7,)),
    "inplace": dict(inplace=True),
    "bfloat16": dict(dtype=torch.bfloat16),
}


def test_reading_a_meta_value_raises():
    """The premise: a read back from the stand-in device fails (so the tests below can)."""
    with pytest.raises(Exception, match="meta"):
        bool(torch.zeros(3, device=META).any())
    with pytest.raises(Exception, match="meta"):
        torch.ones((), device=META).item()


@pytest.mark.parametrize("feature", FEATURES)
@pytest.mark.parametrize("impl", ["manual", "fused", "autograd", "torch"])
def test_cross_entropy_reads_nothing_back(impl, feature):
    kw = dict(FEATURES[feature])
    shape, prob = kw.pop("shape", (16, 10)), kw.pop("prob", False)
    target_grad, dtype = kw.pop("target_grad", False), kw.pop("dtype", torch.float32)
    classes = shape[0] if len(shape) == 1 else shape[1]
    if kw.pop("weight", False):
        kw["weight"] = torch.ones(classes, device=META)
    if kw.get("inplace") and impl != "fused":
        pytest.skip("inplace=True is fused's option")
    leaf = torch.randn(shape, device=META, dtype=dtype).requires_grad_(True)
    if prob:
        t = torch.rand(shape, device=META).requires_grad_(target_grad)
    else:
        batch = () if len(shape) == 1 else (shape[0], *shape[2:])
        t = torch.randint(0, classes, batch, device=META)
    loss = cross_entropy(leaf * 1.0, t, impl=impl, **kw)
    loss.backward(torch.ones_like(loss))
    assert leaf.grad.shape == leaf.shape
    if target_grad:
        assert t.grad.shape == t.shape


@pytest.mark.parametrize("name", tuple(softmaxloss.IMPLEMENTATIONS))
def test_registry_entries_read_nothing_back(name):
    if name.startswith("triton"):
        pytest.skip("the Triton kernel needs real device memory")
    leaf = torch.randn(16, 10, device=META).requires_grad_(True)
    softmaxloss.IMPLEMENTATIONS[name](
        leaf.clone(), torch.randint(0, 10, (16,), device=META)
    ).backward()
    assert leaf.grad.shape == leaf.shape
