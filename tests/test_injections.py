"""The detection study's injections (``lossbench.injections``): each changes what it says and
nothing else. The loss and gradient stay F.cross_entropy's (float64 reference); the Python
slowdowns add exactly the softmax rows they promise, in one region; the precision loss adds
k eps; the memory injection keeps one buffer; every C++ edit applies to today's source once
and refuses a source it does not know (the slow test builds them and checks the loss)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import assert_normwise, tolerance

import softmaxloss
from lossbench import injections
from lossbench.injections import cpp, memory, precision, slowdown
from softmaxloss import _cpu_ext


def _reference(x, t):
    x64 = x.double().requires_grad_(True)
    loss = F.cross_entropy(x64, t)
    loss.backward()
    return loss.detach(), x64.grad


def _installed(module, **params):
    registry = {"manual": softmaxloss.IMPLEMENTATIONS["manual"]}
    module.install(registry, "manual", **params)
    return registry["manual"]


def _case(seed, rows=200, classes=30):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(rows, classes, generator=gen), torch.randint(
        0, classes, (rows,), generator=gen
    )


@pytest.mark.parametrize("region", ["forward", "backward"])
@pytest.mark.parametrize("factor", [1.05, 1.2, 3.0])
def test_python_slowdown_adds_softmax_rows_in_one_region_only(monkeypatch, region, factor):
    change = injections.python_slowdown(factor, region)
    x, t = _case(0)
    rows = []
    real = torch.softmax
    monkeypatch.setattr(
        slowdown.torch, "softmax", lambda a, d: rows.append(a.shape[0]) or real(a, d)
    )
    fn = _installed(slowdown, **change.params)
    leaf = x.clone().requires_grad_(True)
    loss = fn(leaf.clone(), t)
    forward_rows = sum(rows)
    loss.backward()
    backward_rows = sum(rows) - forward_rows
    ref_loss, ref_grad = _reference(x, t)
    torch.testing.assert_close(loss.detach().double(), ref_loss, rtol=1e-6, atol=0)
    torch.testing.assert_close(leaf.grad.double(), ref_grad, rtol=1e-5, atol=1e-9)
    expected = round(change.params["fraction"] * 200 % 200) + 200 * int(change.params["fraction"])
    assert abs(expected - (factor - 1) / (1.11 if region == "forward" else 1.16) * 200) <= 1
    assert (forward_rows, backward_rows) == (
        (expected, 0) if region == "forward" else (0, expected)
    )


@pytest.mark.parametrize("k", [2.0, 1000.0])
def test_precision_injection_adds_k_eps_of_gradient_error(k):
    x, t = _case(1, 64, 10)
    leaf = x.clone().requires_grad_(True)
    loss = _installed(precision, k=k)(leaf.clone(), t)
    loss.backward()
    ref_loss, ref_grad = _reference(x, t)
    torch.testing.assert_close(loss.detach().double(), ref_loss, rtol=1e-6, atol=0)
    eps = torch.finfo(torch.float32).eps
    err = float((leaf.grad.double() - ref_grad).abs().max() / ref_grad.abs().max()) / eps
    assert k - 2 <= err <= k + 2  # k eps injected, within the implementation's own ~1 eps


def test_memory_injection_keeps_one_written_buffer_until_backward():
    x, t = _case(2, 32, 8)
    leaf = x.clone().requires_grad_(True)
    loss = _installed(memory)(leaf.clone(), t)
    (hook,) = loss._backward_hooks.values()
    extra = hook.__defaults__[0]
    assert extra.shape == x.shape and extra.data_ptr() != leaf.data_ptr()
    torch.testing.assert_close(extra, x)
    loss.backward()
    torch.testing.assert_close(leaf.grad.double(), _reference(x, t)[1], rtol=1e-5, atol=0)


EDITS = {
    "extra_pass": {"every": 2},
    "widened_extra_pass": {"every": 2},
    "native_only_extra_pass": {"every": 3},
    "one_accumulator": {},
    "memory_sweep": {},
    "serial_rows": {},
}


@pytest.mark.parametrize("name", sorted(EDITS))
def test_every_cpp_edit_applies_once_to_todays_source(name):
    source = _cpu_ext.SOURCE.read_text()
    edited = getattr(cpp, name)(source, **EDITS[name])
    assert edited != source and len(edited) > len(source) - 10
    with pytest.raises(ValueError, match="found 0 times"):
        getattr(cpp, name)("// not the C++ Functions\n", **EDITS[name])


def test_the_catalogue_names_real_edits_and_modules():
    for change in injections.CATALOGUE.values():
        if change.kind == "cpp":
            assert callable(getattr(cpp, change.target))
        else:
            assert (injections.HERE / f"{change.target}.py").is_file()
        assert change.methods and change.sizes


def _build_and_check(source: str, tmp_path, monkeypatch):
    """Builds ``source`` as the C++ Functions and checks manual and fused against F, on
    float32 and bfloat16 logits."""
    path = tmp_path / "src" / _cpu_ext.SOURCE.name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source)
    monkeypatch.setattr(_cpu_ext, "SOURCE", path)
    module = _cpu_ext.build.__wrapped__()
    x32, t = _case(3, 300, 70)
    for dtype, rtol in ((torch.float32, 1e-5), (torch.bfloat16, tolerance(torch.bfloat16))):
        x = x32.to(dtype)
        ref_loss, ref_grad = _reference(x, t)
        for fn in (module.manual, module.fused):
            leaf = x.clone().requires_grad_(True)
            loss = fn(
                leaf.clone(),
                t,
                None,
                int(softmaxloss.Reduction.MEAN),
                *(() if fn is module.manual else (False,)),
            )
            loss.backward()
            torch.testing.assert_close(loss.detach().double(), ref_loss, rtol=rtol, atol=0)
            if dtype == torch.float32:  # element by element, as before bfloat16
                torch.testing.assert_close(leaf.grad.double(), ref_grad, rtol=1e-5, atol=1e-9)
            else:
                assert_normwise(leaf.grad, ref_grad, rtol)


@pytest.mark.slow
def test_the_cpp_edits_build_and_keep_the_loss(tmp_path, monkeypatch):
    """Two builds: every edit but one at once, and the one that needs valgrind's header."""
    if _cpu_ext.unavailable_reason() is not None:
        pytest.skip(_cpu_ext.status())
    monkeypatch.setenv(_cpu_ext.ENV_DIR, str(tmp_path / "cache"))
    source = _cpu_ext.SOURCE.read_text()
    combined = source
    for name in ("extra_pass", "widened_extra_pass", "one_accumulator", "memory_sweep",
                 "serial_rows"):  # fmt: skip
        combined = getattr(cpp, name)(combined, **EDITS[name])
    _build_and_check(combined, tmp_path, monkeypatch)
    _build_and_check(cpp.native_only_extra_pass(source, every=3), tmp_path, monkeypatch)
