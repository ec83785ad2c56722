"""``python -m lossbench compare`` in both forms, run as a subprocess (small --size)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import softmaxloss

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "lossbench", *args],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _no_constant(name):
    raise ValueError(f"non-standard JSON constant {name}")


def test_compare_json_is_one_valid_object():
    proc = run_cli("compare", "--size", "24", "--classes", "9", "--dtype", "float64",
                   "--repeats", "1", "--seed", "2", "--json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rep = json.loads(proc.stdout, parse_constant=_no_constant)  # no NaN/Infinity allowed
    assert isinstance(rep, dict)
    assert proc.stdout.strip().count("\n") == 0  # exactly one JSON document, one line
    names = set(softmaxloss.IMPLEMENTATIONS)
    assert {"loss", "grad_l1_distance", "grad_error_eps", "seconds"} <= set(rep)
    assert set(rep["loss"]) == set(rep["grad_error_eps"]) == set(rep["seconds"]) == names
    for name in names:
        assert set(rep["seconds"][name]) == {"forward", "backward"}
        assert all(v >= 0 for v in rep["seconds"][name].values())
    # the numbers, against an independent float64 computation of the same experiment
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(24, 9, generator=gen, dtype=torch.float64)
    ref = F.cross_entropy(x, torch.arange(24) % 9).item()
    for name in names:
        assert rep["loss"][name] == pytest.approx(ref, rel=1e-13)
        assert 0 <= rep["grad_error_eps"][name] < 16
    assert 0 <= rep["grad_l1_distance"] < 1e-14


def test_compare_json_overflow_has_no_nan_or_infinity():
    """--scale 1e4 makes the naive pair non-finite: still strict JSON (null, documented)."""
    proc = run_cli("compare", "--size", "16", "--repeats", "1", "--scale", "1e4", "--json")
    assert proc.returncode == 0, proc.stderr
    rep = json.loads(proc.stdout, parse_constant=_no_constant)
    assert rep["loss"]["naive_manual"] is None and rep["grad_error_eps"]["naive_manual"] is None
    assert isinstance(rep["loss"]["manual"], float)
    assert rep["grad_error_eps"]["fused"] < 16


@pytest.mark.parametrize("dtype", [torch.bfloat16], ids=str)  # float16: the same code path
def test_compare_reports_low_precision_errors_in_eps_of_the_dtype(dtype, capsys):
    """--dtype bfloat16 (or float16): the seed's logits rounded to the dtype, every error in
    that dtype's eps. The torch entry's gradient error, recomputed here against F in float64 on
    the same rounded logits, is the one reported; the hand-written gradients, computed in
    float32 and rounded once, are within an eps; the naive pair refuses the dtype."""
    from lossbench.commands import main

    name = str(dtype).removeprefix("torch.")
    rc = main(["compare", "--size", "24", "--classes", "9", "--dtype", name, "--seed", "3",
               "--repeats", "1", "--json"])  # fmt: skip
    assert rc == 0
    rep = json.loads(capsys.readouterr().out, parse_constant=_no_constant)
    assert rep["config"]["dtype"] == name
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(24, 9, generator=gen, dtype=torch.float64).to(dtype)
    t = torch.arange(24) % 9
    x64 = x.double().requires_grad_(True)
    F.cross_entropy(x64, t).backward()
    xl = x.clone().requires_grad_(True)
    F.cross_entropy(xl, t).backward()
    eps = torch.finfo(dtype).eps
    err = float((xl.grad.double() - x64.grad).abs().max() / x64.grad.abs().max()) / eps
    assert rep["grad_error_eps"]["torch"] == pytest.approx(err, rel=1e-6)
    for impl in ("manual", "fused", "fused_inplace"):
        assert rep["grad_error_eps"][impl] <= 1.0, impl
        assert rep["loss_error_eps"][impl] <= 1.0, impl
    assert {"naive_manual", "naive_autograd"} <= set(rep["errors"])


def test_compare_table_lists_every_impl():
    proc = run_cli("compare", "--size", "20", "--repeats", "1")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "20x20 float32" in out
    rows = {line.split()[0] for line in out.splitlines() if line.strip()}
    for name in softmaxloss.IMPLEMENTATIONS:
        assert name in rows, name
    assert "L1 distance of gradients, manual vs autograd" in out
    assert proc.stderr == ""


# The brief's cases run as real subprocesses (exit status, stderr, no traceback end to end);
# the other bad arguments run in-process through commands.main (each subprocess costs ~2 s of
# torch import on this machine).
SUBPROCESS_BAD_ARGS = [
    (["compare", "--size", "0"], r"--size must be a positive integer, got 0"),
    (["compare", "--size", "x"], r"--size.*'x'"),
    (["compare", "--dtype", "int32"], r"--dtype.*'int32'"),
]
if not torch.cuda.is_available():
    SUBPROCESS_BAD_ARGS.append((["compare", "--device", "cuda"], r"--device cuda"))

IN_PROCESS_BAD_ARGS = [
    (["compare", "--size", "-3"], r"--size"),
    (["compare", "--classes", "0"], r"--classes"),
    (["compare", "--repeats", "0"], r"--repeats"),
    (["compare", "--scale", "inf"], r"--scale"),
    (["compare", "--scale", "nan"], r"--scale"),
    (["compare", "--device", "tpu"], r"--device.*'tpu'"),
    (["compare", "--bogus"], r"--bogus"),
    (["nocommand"], r"nocommand"),
    ([], r"command"),
]


def _check_one_line(returncode, stdout, stderr, match):
    assert returncode != 0
    assert stdout == ""
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    assert re.search(match, lines[0]), lines[0]


@pytest.mark.parametrize(
    ("args", "match"), SUBPROCESS_BAD_ARGS, ids=[" ".join(a) for a, _ in SUBPROCESS_BAD_ARGS]
)
def test_bad_arguments_subprocess(args, match):
    proc = run_cli(*args)
    _check_one_line(proc.returncode, proc.stdout, proc.stderr, match)


@pytest.mark.parametrize(
    ("args", "match"),
    IN_PROCESS_BAD_ARGS,
    ids=[" ".join(a) or "none" for a, _ in IN_PROCESS_BAD_ARGS],
)
def test_bad_arguments_in_process(args, match, capsys):
    from lossbench.commands import main

    try:
        code = main(args)
    except SystemExit as exc:  # argparse's own errors exit
        code = exc.code
    out = capsys.readouterr()
    _check_one_line(code, out.out, out.err, match)
