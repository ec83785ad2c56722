"""The ``torch.compile`` entries (``softmaxloss.compiled``): the math compiles to one graph
without breaks, the compiled entries match float64 ``F.cross_entropy``, the argument checks
stay eager, and where compilation cannot work the registry lacks the entries and says why.

Registry-wide tests (test_registry.py, test_bad_input.py, test_opinfo.py) cover the entries
too; this file resets dynamo first, so its calls are compiled, not run eagerly past dynamo's
recompile limit.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import assert_normwise, f_reference, random_grad_output, tolerance

from softmaxloss import compiled, registry

pytestmark = pytest.mark.skipif(
    "compiled" not in registry.IMPLEMENTATIONS,
    reason=f"torch.compile unavailable here: {registry.UNAVAILABLE.get('compiled')}",
)

NAMES = tuple(compiled.ENTRIES)


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    yield
    torch._dynamo.reset()


def _case(shape, dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = (torch.randn(shape, generator=gen, dtype=torch.float64) * 3).to(dtype)
    return x, torch.randint(0, shape[1], shape[:1], generator=gen), gen


@pytest.mark.parametrize("name", NAMES)
def test_the_math_is_one_graph_without_breaks(name):
    x, t, _ = _case((8, 5), torch.float32)
    explanation = torch._dynamo.explain(compiled._MATH[name])(x.requires_grad_(True), t)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=str)
@pytest.mark.parametrize("name", NAMES)
def test_compiled_entry_matches_f_float64(name, dtype):
    """Two shapes: the first compiled static, the second with dynamic sizes."""
    for shape in [(16, 10), (33, 7)]:
        x, t, gen = _case(shape, dtype, seed=shape[0])
        leaf = x.clone().requires_grad_(True)
        loss = registry.IMPLEMENTATIONS[name](leaf.clone(), t)
        assert loss.dtype == dtype and loss.dim() == 0
        go = random_grad_output(loss, gen)
        loss.backward(go)
        ref_loss, ref_grad, _ = f_reference(x, t, grad_output=go)
        tol = tolerance(dtype)
        assert_normwise(loss, ref_loss, tol, f"{name} loss", floor=float(x.abs().max()))
        assert_normwise(leaf.grad, ref_grad, tol, f"{name} grad", floor=1e-2 / shape[0])
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 1  # compiled, not eager


@pytest.mark.parametrize("name", NAMES)
def test_checks_run_eagerly_before_any_compiled_code(name):
    x = torch.randn(4, 3)
    with pytest.raises(IndexError, match=r"class index 3.*\[0, 3\)"):
        registry.IMPLEMENTATIONS[name](x, torch.tensor([0, 3, 1, 2]))
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 0


def test_large_logits_stay_exact():
    x, t, _ = _case((32, 10), torch.float64)
    x = x * 3e3
    for name in NAMES:
        leaf = x.clone().requires_grad_(True)
        loss = registry.IMPLEMENTATIONS[name](leaf.clone(), t)
        loss.backward()
        xr = x.clone().requires_grad_(True)
        ref = F.cross_entropy(xr, t)
        ref.backward()
        assert_normwise(loss, ref, 1e-12, name)
        assert_normwise(leaf.grad, xr.grad, 1e-12, name)


def test_without_a_compiler_the_registry_lacks_the_entries_and_says_why(monkeypatch):
    monkeypatch.setenv("PATH", "")
    monkeypatch.delenv("CXX", raising=False)
    compiled.unavailable_reason.cache_clear()
    try:
        entries, unavailable = registry._optional_entries()
        assert not set(compiled.ENTRIES) & set(entries)
        for name in compiled.ENTRIES:
            assert "C++ compiler" in unavailable[name]
    finally:
        compiled.unavailable_reason.cache_clear()


def test_a_chunked_size_compiles_after_another_size():
    """Rows of more than the 4 MiB chunk go through the chunked loop eagerly; compiled (here
    with dynamic sizes, after a first shape) they take the one-kernel path."""
    for shape in [(8, 5), (600, 2000)]:
        x, t, _ = _case(shape, torch.float32, seed=3)
        for name in NAMES:
            leaf = x.clone().requires_grad_(True)
            loss = registry.IMPLEMENTATIONS[name](leaf.clone(), t)
            loss.backward()
            ref_loss, ref_grad, _ = f_reference(x, t)
            tol = tolerance(torch.float32)
            assert_normwise(loss, ref_loss, tol, name, floor=float(x.abs().max()))
            assert_normwise(leaf.grad, ref_grad, tol, name, floor=1e-2 / shape[0])
