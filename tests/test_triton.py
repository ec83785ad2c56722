"""The Triton kernel: its parity cases (triton_kernel_cases.py) under Triton's interpreter on
the CPU, and on CUDA when a GPU is present; and its refusal of CPU tensors without the
interpreter.

``TRITON_INTERPRET=1`` is read when the kernel is defined (at import), so the interpreted run
is a ``pytest`` subprocess started with it; this process imports no kernel under it.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("triton") is None,
    reason="triton is not installed (pip install 'softmaxloss[test]')",
)

ROOT = Path(__file__).resolve().parent.parent
CASES = "tests/triton_kernel_cases.py"


def _pytest_subprocess(interpret: bool, *args):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    if interpret:
        env["TRITON_INTERPRET"] = "1"
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", *args]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


def _assert_all_passed(res, at_least):
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-6000:]
    passed = re.search(r"(\d+) passed", out)
    assert passed and int(passed.group(1)) >= at_least, out[-3000:]
    assert not re.search(r"\d+ (skipped|failed|error)", out), out[-3000:]


def test_kernel_cases_pass_under_the_interpreter_on_cpu():
    _assert_all_passed(_pytest_subprocess(True, CASES), at_least=50)


def test_registry_wide_tests_pass_for_the_triton_entries_under_the_interpreter():
    """Under the interpreter the registry registers ``triton``/``triton_inplace``: the tests
    every registry entry goes through (parity, low precision, 1e4 logits, bad input, OpInfo
    samples) run on them too."""
    files = ["tests/test_registry.py", "tests/test_bad_input.py", "tests/test_opinfo.py"]
    _assert_all_passed(_pytest_subprocess(True, *files, "-k", "triton"), at_least=40)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_kernel_cases_pass_on_cuda():
    _assert_all_passed(_pytest_subprocess(False, CASES), at_least=50)


@pytest.mark.skipif(
    torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"),
    reason="only meaningful without a GPU and without the interpreter",
)
def test_cpu_tensors_without_the_interpreter_are_refused_with_the_remedy():
    from softmaxloss import triton_ce

    x, t = torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    with pytest.raises(ValueError, match="CUDA tensors.*TRITON_INTERPRET=1"):
        triton_ce.triton_entry(x, t)
    with pytest.raises(ValueError, match="CUDA tensors"):
        triton_ce.cross_entropy_triton(x, t)
