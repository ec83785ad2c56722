"""CUDA: no host-device synchronisation per call, and parity on the device. Skipped without a
GPU.

Every implementation's forward+backward runs under ``torch.cuda.set_sync_debug_mode("error")``
(after one warm-up call: lazy initialisation and compilation may synchronise once), which
raises on any synchronising CUDA call: reading a value back (``bool(t.any())``, ``.item()``),
a blocking copy from the host (``new_tensor``), ``torch.cuda.synchronize``. ``F.cross_entropy``
itself (``impl="torch"``) is left out: it is the baseline, not this package's code.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from conftest import assert_normwise, f_reference

import softmaxloss
from softmaxloss import cross_entropy

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

DEV = "cuda"


def _inputs(shape=(16, 10), prob=False, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen, dtype=torch.float64).float()
    if prob:
        t = torch.softmax(torch.randn(shape, generator=gen, dtype=torch.float64), 1).float()
    else:
        t = torch.randint(0, shape[1], (shape[0], *shape[2:]), generator=gen)
    return x, t


FEATURES = {
    "plain": dict(),
    "ignore": dict(ignore_index=1),
    "weight": dict(weight=True),
    "smoothing": dict(label_smoothing=0.2),
    "sum": dict(reduction="sum"),
    "none": dict(reduction="none"),
    "prob": dict(prob=True),
    "kdim": dict(shape=(4, 5, 3)),
    "inplace": dict(inplace=True),
}


def _call_kwargs(feature, impl):
    kw = dict(FEATURES[feature])
    shape, prob = kw.pop("shape", (16, 10)), kw.pop("prob", False)
    if kw.pop("weight", False):
        kw["weight"] = torch.linspace(0.5, 2.0, shape[1], device=DEV)
    if kw.get("inplace") and impl != "fused":
        pytest.skip("inplace=True is fused's option")
    return shape, prob, kw


def _no_sync(run):
    run()  # warm-up: one-time initialisation may synchronise
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        out = run()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.cuda.synchronize()
    return out


@pytest.mark.parametrize("feature", FEATURES)
@pytest.mark.parametrize("impl", ["manual", "fused", "autograd"])
def test_cross_entropy_never_synchronises(impl, feature):
    shape, prob, kw = _call_kwargs(feature, impl)
    x, t = _inputs(shape, prob)
    xd, td = x.to(DEV), t.to(DEV)

    def run():
        leaf = xd.clone().requires_grad_(True)
        loss = cross_entropy(leaf * 1.0, td, impl=impl, **kw)
        loss.backward(torch.ones_like(loss))
        return loss, leaf.grad

    loss, grad = _no_sync(run)
    ref_kw = {k: v for k, v in kw.items() if k != "inplace"}
    if "weight" in ref_kw:
        ref_kw["weight"] = ref_kw["weight"].cpu()
    ones = torch.ones(loss.shape, dtype=torch.float64)
    ref_loss, ref_grad, _ = f_reference(x, t, **ref_kw, grad_output=ones)
    tol = 64 * torch.finfo(torch.float32).eps
    assert_normwise(loss, ref_loss, tol, "loss", floor=4.0)
    assert_normwise(grad, ref_grad, tol, "grad", floor=1e-3)


@pytest.mark.parametrize("name", [n for n in softmaxloss.IMPLEMENTATIONS if n != "torch"])
def test_registry_entries_never_synchronise(name):
    x, t = _inputs((64, 100))
    xd, td = x.to(DEV), t.to(DEV)
    fn = softmaxloss.IMPLEMENTATIONS[name]

    def run():
        leaf = xd.clone().requires_grad_(True)
        loss = fn(leaf.clone(), td)
        loss.backward()
        return loss, leaf.grad

    loss, grad = _no_sync(run)
    ref_loss, ref_grad, _ = f_reference(x, t)
    tol = 64 * torch.finfo(torch.float32).eps
    assert_normwise(loss, ref_loss, tol, name, floor=4.0)
    assert_normwise(grad, ref_grad, tol, name, floor=1e-4)


def test_bad_class_index_fails_on_the_device_without_a_sync():
    """The range check runs on the device: the call returns, the failure surfaces at the next
    synchronisation (a device-side assertion ends the CUDA context, so: a subprocess)."""
    code = (
        "import torch, softmaxloss\n"
        "x = torch.randn(4, 3, device='cuda')\n"
        "t = torch.tensor([0, 3, 1, 2], device='cuda')\n"
        "torch.cuda.set_sync_debug_mode('error')\n"
        "loss = softmaxloss.cross_entropy(x, t)\n"
        "torch.cuda.set_sync_debug_mode('default')\n"
        "print('returned', flush=True)\n"
        "torch.cuda.synchronize()\n"
        "print('no error')\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "returned" in res.stdout, res.stderr[-3000:]
    assert "no error" not in res.stdout
    assert res.returncode != 0
