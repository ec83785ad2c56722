"""The C++ Functions for the CPU (``softmaxloss._cpu_ext``, ``csrc/cross_entropy_cpu.cpp``).

Both backends of the simple case (class indices, no class weights, no smoothing) on the
CPU, the C++ Functions and the Python Functions (which serve every other case, CUDA,
``torch.compile`` and machines without a compiler), are checked against
float64 ``F.cross_entropy`` on the same grid: dtypes (float16 and bfloat16, which the C++
Functions read as they are, and float32, float64), reductions, ignored rows, class
counts around the vector widths and the four-way unrolled row loops (1, 7, 8, 9, 17, 64,
100, 200 classes). Also: the backend really in
use (the grad_fn), the fallback when the build fails, the switch, the double-backward
refusal, the caller contract the C++ code checks and the reduction's values, which the
Python and C++ code must agree on.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zlib

import pytest
import torch
from conftest import DTYPES, LOW_PRECISION, assert_normwise, f_reference, tolerance
from test_parity import check_parity, make_case

from softmaxloss import _cpu_ext, cross_entropy
from softmaxloss.__main__ import main
from softmaxloss.functional import Reduction

GRAD_FN = {
    ("cpp", "manual"): "ManualCpu",
    ("cpp", "fused"): "FusedCpu",
    ("python", "manual"): "ManualCrossEntropyBackward",
    ("python", "fused"): "FusedCrossEntropyBackward",
}


@pytest.fixture
def backend(cpu_backend):
    return cpu_backend


def served_by(loss) -> str:
    """The Function that computed ``loss``: the Python Functions compute float16/bfloat16 in
    float32 and cast the loss back (ToCopyBackward first), the C++ Functions take them."""
    fn = loss.grad_fn
    if "ToCopyBackward" in fn.name():
        fn = fn.next_functions[0][0]
    return fn.name()


def test_the_extension_builds_where_it_can():
    """Where nothing rules it out (a compiler, ninja, not switched off) it must load: a
    build error would otherwise only show as slower small calls."""
    if _cpu_ext.unavailable_reason() is not None and not _cpu_ext._failure:
        pytest.skip(_cpu_ext.status())
    assert _cpu_ext.module() is not None, _cpu_ext.status()
    assert _cpu_ext.status().startswith("C++ Functions")


def test_a_loss_call_leaves_torchs_extension_builder_unimported(tmp_path):
    """Importing torch.utils.cpp_extension in a CUDA build of torch, where a CUDA toolkit is
    found and no GPU is, logs "No CUDA runtime is found" on stderr: a loss call that imported
    it printed that line in every such user's process. The build runs in a subprocess of its
    own; the loss process loads the built module and runs ninja's check without it."""
    if _cpu_ext.unavailable_reason() is not None:
        pytest.skip(_cpu_ext.status())
    code = (
        "import sys, torch; from softmaxloss import _cpu_ext, cross_entropy\n"
        "x = torch.randn(4, 5, requires_grad=True)\n"
        "cross_entropy(x, torch.tensor([0, 1, 2, 3])).backward()\n"
        "print(_cpu_ext.module() is not None, 'torch.utils.cpp_extension' in sys.modules)\n"
    )
    env = {**os.environ, "CUDA_HOME": str(tmp_path), "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "False"]  # the C++ Functions, no builder module
    assert proc.stderr == ""


@pytest.mark.parametrize("impl", ["manual", "fused"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("ignore", [None, "some", "class", "all"])
@pytest.mark.parametrize("classes", [1, 7, 8, 9, 17, 64, 100, 200])
def test_matches_float64_f(backend, impl, dtype, reduction, ignore, classes):
    seed = zlib.crc32(repr((impl, dtype, reduction, ignore, classes)).encode())
    x, t, opts, gen = make_case(seed, dtype, batch=(13,), classes=classes, ignore=ignore)
    loss = cross_entropy(x.clone().requires_grad_(), t, reduction=reduction, impl=impl, **opts)
    assert GRAD_FN[backend, impl] in served_by(loss)
    check_parity(impl, x, t, opts, reduction, gen)


@pytest.mark.parametrize("impl", ["manual", "fused"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_the_cpp_functions_take_low_precision_logits_as_they_are(impl, dtype):
    """No float32 copy: the C++ Function's node is the loss's own (no cast before or after
    it), and the gradient reaching the logits is in their dtype."""
    if _cpu_ext.module() is None:
        pytest.skip(_cpu_ext.status())
    x, t, _, _ = make_case(4, dtype, batch=(9,), classes=40)
    leaf = x.clone().requires_grad_()
    loss = cross_entropy(leaf, t, impl=impl)
    assert loss.dtype == dtype and GRAD_FN["cpp", impl] in loss.grad_fn.name()
    assert [f.name() for f, _ in loss.grad_fn.next_functions if f] == [
        "torch::autograd::AccumulateGrad"
    ]
    loss.backward()
    assert leaf.grad.dtype == dtype
    assert_normwise(leaf.grad, f_reference(x, t)[1], tolerance(dtype))


@pytest.mark.parametrize("impl", ["manual", "fused"])
def test_ignored_rows_of_inf_and_nan_logits_give_zero(backend, impl):
    x = torch.randn(4, 9, dtype=torch.float64)
    x[1] = float("inf")
    x[2, 3] = float("nan")
    t = torch.tensor([0, -100, -100, 5])
    xi = x.clone().requires_grad_()
    loss = cross_entropy(xi, t, impl=impl)
    loss.backward()
    xr = x.clone().requires_grad_()
    ref = torch.nn.functional.cross_entropy(xr, t)
    ref.backward()
    torch.testing.assert_close(loss, ref, rtol=1e-12, atol=0)
    kept = [0, 3]  # F's own gradient is NaN on the ignored rows (log_softmax's backward)
    torch.testing.assert_close(xi.grad[kept], xr.grad[kept], rtol=1e-12, atol=1e-15)
    assert not xi.grad[1:3].any()


@pytest.mark.parametrize("impl", ["manual", "fused"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
# 200 classes: every accumulator of the unrolled max/sum loops, the single vectors after
# them and the masked tail (float32, float16, bfloat16: 3 x 64 + 8; float64: 6 x 32 + 8)
@pytest.mark.parametrize("column", [0, 17, 40, 63, 150, 196, 199])
def test_a_kept_row_of_nan_gives_nan_as_f(backend, impl, dtype, column):
    x = torch.randn(3, 200, dtype=dtype)
    x[1, column] = float("nan")
    t = torch.tensor([0, 2, 5])
    xi = x.clone().requires_grad_()
    loss = cross_entropy(xi, t, impl=impl, reduction="none")
    loss.sum().backward()
    assert loss.isnan().tolist() == [False, True, False]
    assert xi.grad[1].isnan().all() and not xi.grad[[0, 2]].isnan().any()


@pytest.mark.parametrize("impl", ["manual", "fused"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("column", [0, 17, 40, 63, 150, 196, 199])
def test_the_row_max_is_found_in_every_lane(backend, impl, dtype, column):
    """A logit 1e4 above the rest: a row max that missed it (one accumulator or the tail
    left out) would give exp(1e4 - m) = inf, where F's loss and gradient are finite."""
    x = torch.randn(3, 200, dtype=dtype)
    x[:, column] = 1e4
    t = torch.tensor([column, 2, 5])
    xi = x.clone().requires_grad_()
    loss = cross_entropy(xi, t, impl=impl, reduction="none")
    loss.sum().backward()
    ref, ref_grad, _ = f_reference(x, t, reduction="none")
    if dtype in LOW_PRECISION:  # read as they are, computed in float32, rounded once
        assert_normwise(loss, ref, tolerance(dtype), "loss")
        assert_normwise(xi.grad, ref_grad, tolerance(dtype), "grad")
    else:  # element by element, as for float32 and float64 before the low-precision dtypes
        torch.testing.assert_close(loss.double(), ref)
        torch.testing.assert_close(xi.grad.double(), ref_grad)


@pytest.mark.parametrize("impl", ["manual", "fused"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("column", [0, 63, 199])
def test_infinite_logits_in_a_kept_row_as_f(backend, impl, dtype, column):
    """+inf in a row: its loss and gradient are NaN, as F's. -inf: that class has p = 0 and
    gradient 0, and the row's loss is finite unless it is the target (then inf, as F's)."""
    x = torch.randn(4, 200, dtype=dtype)
    x[0, column] = float("inf")
    x[1, column] = x[2, column] = float("-inf")
    t = torch.tensor([5, column, 7, 9])
    xi = x.clone().requires_grad_()
    loss = cross_entropy(xi, t, impl=impl, reduction="none")
    loss.sum().backward()
    ref, ref_grad, _ = f_reference(x, t, reduction="none")
    assert loss[0].isnan() and xi.grad[0].isnan().all() and ref_grad[0].isnan().all()
    assert loss[1] == ref[1] == float("inf")
    assert_normwise(loss[2:], ref[2:], tolerance(dtype), "loss")
    assert_normwise(xi.grad[1:], ref_grad[1:], tolerance(dtype), "grad")
    assert xi.grad[2, column] == 0


@pytest.mark.parametrize("impl", ["manual", "fused"])
def test_repeated_backward_accumulates(backend, impl):
    """grad_output 1 (fused hands its buffer over as the .grad) with retain_graph: three
    backwards of one graph accumulate three gradients (the buffer handed over must not be
    the one a later backward reads)."""
    x, t = torch.randn(6, 9, dtype=torch.float64), torch.tensor([0, 1, 2, 3, 4, 8])
    _, ref_grad, _ = f_reference(x, t)
    xi = x.clone().requires_grad_()
    loss = cross_entropy(xi, t, impl=impl)
    assert GRAD_FN[backend, impl] in loss.grad_fn.name()
    loss.backward(retain_graph=True)
    assert_normwise(xi.grad, ref_grad, 1e-12, "first backward")
    loss.backward(retain_graph=True)
    loss.backward()
    assert_normwise(xi.grad, 3 * ref_grad, 1e-12, "three accumulated backwards")


@pytest.mark.parametrize("impl", ["manual", "fused"])
def test_double_backward_is_refused(backend, impl):
    x = torch.randn(3, 5, requires_grad=True)
    loss = cross_entropy(x * 1, torch.tensor([0, 1, 2]), impl=impl)
    with pytest.raises(RuntimeError, match="not differentiable"):
        torch.autograd.grad(loss, x, create_graph=True)


_PEAK = """
import torch
from lossbench import harness
from softmaxloss import _cpu_ext, cross_entropy
harness.use_mmap_for_tensors()  # before any tensor: no freed heap memory to reuse later
x, t = torch.randn(2048, 2048).to(torch.{dtype}), torch.randint(0, 2048, (2048,))
for impl, inplace in (("manual", False), ("fused", False), ("fused", True)):
    fn = lambda a, b: cross_entropy(a, b, impl=impl, inplace=inplace)
    print(fn(x.clone().requires_grad_() * 1, t).grad_fn.name())
    print(harness.extra_bytes(fn, x, t) / x.nbytes)
"""


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_forward_backward_peaks_at_one_logits_sized_buffer(backend, dtype):
    """manual: the gradient, allocated in backward; fused: the gradient built in forward and
    handed over as .grad without a copy (grad_output 1); fused with inplace: none, the
    gradient is written over the logits. Buffers of the logits' dtype: bfloat16 logits are
    read as they are (a float32 copy and a float32 gradient were 4 bf16 buffers). 16 MiB
    float32 logits: one buffer reads 1.000 (page noise: test_harness); a copy would read 2.
    In a fresh process, as asv measures: after the torch.compile tests this process's
    reading is 0 (memory freed elsewhere while the call runs)."""
    if backend == "python" and dtype != "float32":
        pytest.skip("the Python Functions compute bfloat16 in a float32 copy")
    env = dict(os.environ)
    if backend == "python":
        env[_cpu_ext.ENV_SWITCH] = "0"
    code = _PEAK.format(dtype=dtype)
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()[-6:]
    for (impl, buffers), grad_fn, measured in zip(
        [("manual", 1), ("fused", 1), ("fused_inplace", 0)], lines[::2], lines[1::2], strict=True
    ):
        assert GRAD_FN[backend, impl.removesuffix("_inplace")] in grad_fn, impl
        assert abs(float(measured) - buffers) <= 0.05, f"{impl}: {measured} buffers"


def test_a_failed_build_falls_back_with_one_warning(monkeypatch):
    def broken(isa=None):
        raise RuntimeError("Error building extension 'x': c++ exited 1")

    monkeypatch.setattr(_cpu_ext, "_loaded", [])
    monkeypatch.setattr(_cpu_ext, "_failure", [])
    monkeypatch.setattr(_cpu_ext, "build", broken)
    monkeypatch.delenv(_cpu_ext.ENV_SWITCH, raising=False)
    if _cpu_ext.unavailable_reason() is not None:
        pytest.skip(_cpu_ext.status())
    x, t = torch.randn(5, 4, dtype=torch.float64), torch.tensor([0, 1, 2, 3, 0])
    with pytest.warns(RuntimeWarning, match="did not build: RuntimeError: Error building"):
        loss = cross_entropy(x, t)
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(x, t), rtol=1e-12, atol=0)
    assert "did not build" in _cpu_ext.status()
    cross_entropy(x, t)  # decided once: no second warning (pytest's config errors on one)


def test_the_switch_turns_it_off(monkeypatch):
    monkeypatch.setenv(_cpu_ext.ENV_SWITCH, "0")
    monkeypatch.setattr(_cpu_ext, "_loaded", [])
    assert _cpu_ext.module() is None
    assert _cpu_ext.status() == f"Python Functions ({_cpu_ext.ENV_SWITCH}=0)"
    loss = cross_entropy(torch.randn(3, 4, requires_grad=True) * 1, torch.tensor([0, 1, 2]))
    assert "ManualCrossEntropyBackward" in loss.grad_fn.name()


def test_the_reduction_has_the_same_values_in_python_and_cpp():
    """softmaxloss.functional.Reduction and the C++ ``enum class Reduction``: the values the
    built module reports, and those its source declares (checked without a build)."""
    python = {r.name: r.value for r in Reduction}
    assert python == {"NONE": 0, "MEAN": 1, "SUM": 2}
    source = _cpu_ext.SOURCE.read_text()
    (body,) = re.findall(r"enum class Reduction : int64_t \{([^}]*)\};", source)
    declared = dict(re.fullmatch(r"\s*(\w+) = (\d+)\s*", e).groups() for e in body.split(","))
    assert {k.upper(): int(v) for k, v in declared.items()} == python
    ext = _cpu_ext.module()
    if ext is None:
        pytest.skip(_cpu_ext.status())
    assert dict(ext.REDUCTION_VALUES) == python


def test_unknown_instruction_set_is_refused():
    with pytest.raises(ValueError, match="isa must be one of"):
        _cpu_ext.build("SSE9")


@pytest.mark.parametrize("entry", ["manual", "fused"])
def test_the_cpp_functions_check_their_contract(entry):
    ext = _cpu_ext.module()
    if ext is None:
        pytest.skip(_cpu_ext.status())
    fn = getattr(ext, entry)
    x, t = torch.randn(4, 6), torch.tensor([0, 1, 2, 3])
    with pytest.raises(RuntimeError, match="x must be contiguous"):
        fn(x.t(), torch.tensor([0] * 6), None, 1)
    with pytest.raises(RuntimeError, match="t must be contiguous"):
        fn(x, t.int(), None, 1)
    with pytest.raises(RuntimeError, match="kept must be"):
        fn(x, t, torch.ones(4), 1)
    with pytest.raises(RuntimeError, match="reduction must be 0 .NONE., 1 .MEAN. or 2 .SUM."):
        fn(x, t, None, 3)
    with pytest.raises(RuntimeError, match="reduction must be"):
        fn(x, t, None, -1)
    with pytest.raises(RuntimeError, match=r"t must hold class indices in \[0, C\)"):
        fn(x, torch.tensor([0, 1, 6, 3]), None, 1)
    with pytest.raises(RuntimeError, match=r"t must hold class indices in \[0, C\)"):
        fn(x, torch.tensor([0, -100, 2, 3]), torch.tensor([True, False, True, True]), 1)


def test_build_ext_refuses_an_unknown_instruction_set(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["build-ext", "SSE9"])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and len(err.splitlines()) == 1
    assert re.match(r"python -m softmaxloss build-ext: error: ISA must be one of .*got SSE9", err)


def test_build_ext_builds_and_names_the_module(capsys):
    if _cpu_ext.unavailable_reason() is not None:
        pytest.skip(_cpu_ext.status())
    assert main(["build-ext"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"C++ Functions {_cpu_ext.name()}: ") and out.strip().endswith(".so")


def test_build_ext_says_why_it_builds_nothing(monkeypatch, capsys):
    monkeypatch.setenv(_cpu_ext.ENV_SWITCH, "0")
    assert main(["build-ext"]) == 0
    assert capsys.readouterr().out == (
        f"C++ Functions not built: {_cpu_ext.ENV_SWITCH}=0; the Python Functions serve every call\n"
    )


@pytest.mark.parametrize("entry", ["manual", "fused"])
@pytest.mark.parametrize("reduction", list(Reduction), ids=lambda r: r.name.lower())
@pytest.mark.parametrize("ignored", [False, True])
def test_gradcheck_of_the_cpp_functions(entry, reduction, ignored):
    """Central finite differences in float64 of the C++ Functions themselves."""
    ext = _cpu_ext.module()
    if ext is None:
        pytest.skip(_cpu_ext.status())
    gen = torch.Generator().manual_seed(int(reduction))
    x = torch.randn(6, 9, generator=gen, dtype=torch.float64, requires_grad=True)
    t = torch.randint(0, 9, (6,), generator=gen)
    kept = torch.tensor([True, False, True, True, False, True]) if ignored else None
    fn = getattr(ext, entry)
    assert torch.autograd.gradcheck(lambda a: fn(a, t, kept, reduction), (x,))
