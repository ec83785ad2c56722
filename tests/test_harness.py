"""The measurement harness (``lossbench.harness``): what it times, what it feeds, what it
counts as memory; and that ``compare`` and ``ratios`` report the numbers it returns."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import softmaxloss
from lossbench import harness
from lossbench.commands import compare as compare_cmd
from lossbench.commands import ratios as ratios_cmd

ROOT = Path(__file__).resolve().parents[1]


def _sleeper(forward_s, backward_s, calls=None, name=""):
    class Sleep(torch.autograd.Function):
        @staticmethod
        def forward(x):
            time.sleep(forward_s)
            return x.sum()

        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.shape = inputs[0].shape

        @staticmethod
        def backward(ctx, g):
            time.sleep(backward_s)
            return g.expand(ctx.shape).clone()

    def fn(logits, target):
        if calls is not None:
            calls.append(name)
        return Sleep.apply(logits)

    return fn


def test_time_impls_separates_forward_and_backward_and_interleaves():
    calls = []
    impls = {
        "slow_forward": _sleeper(0.03, 0.0, calls, "a"),
        "slow_backward": _sleeper(0.0, 0.03, calls, "b"),
        "broken": lambda x, t: (_ for _ in ()).throw(RuntimeError("boom")),
    }
    x, t = torch.zeros(16, 3), torch.zeros(16, dtype=torch.long)
    out = harness.time_impls(impls, x, t, repeats=3)
    assert isinstance(out["broken"], RuntimeError) and str(out["broken"]) == "boom"
    a, b = out["slow_forward"], out["slow_backward"]
    assert a.runs == b.runs == 3
    # time.sleep sleeps at least as long as asked; the other phase does almost nothing
    assert a.forward >= 0.03 and a.backward < 0.03 and b.backward >= 0.03 and b.forward < 0.03
    assert a.total >= a.forward
    # one warm-up each, then round by round, each round one call of each
    assert calls[:2] == ["a", "b"]
    assert all(sorted(calls[i : i + 2]) == ["a", "b"] for i in range(2, 8, 2))


def test_time_impls_runs_each_round_in_a_new_order():
    """A small call's time depends on what ran just before it: no entry may always follow the
    same one."""
    calls = []
    names = ["a", "b", "c", "d"]
    x, t = torch.zeros(16, 3), torch.zeros(16, dtype=torch.long)
    out = harness.time_impls({n: _sleeper(0, 0, calls, n) for n in names}, x, t, repeats=30)
    assert all(out[n].runs == 30 for n in names)
    assert calls[:4] == names  # the warm-ups, in the given order
    rounds = [calls[i : i + 4] for i in range(4, len(calls), 4)]
    assert len(rounds) == 30 and all(sorted(r) == names for r in rounds)
    assert len({tuple(r) for r in rounds}) > 5
    predecessors = {n: set() for n in names}
    for r in rounds:
        for before, after in zip(r, r[1:], strict=False):
            predecessors[after].add(before)
    assert all(predecessors[n] == set(names) - {n} for n in names)
    # the same order every call (a fixed seed), so a re-run repeats the measurement
    first = list(calls)
    calls.clear()
    harness.time_impls({n: _sleeper(0, 0, calls, n) for n in names}, x, t, repeats=30)
    assert calls == first


def test_time_impls_refuses_zero_repeats():
    with pytest.raises(ValueError, match="repeats"):
        harness.time_impls({}, torch.zeros(2, 2), torch.zeros(2, dtype=torch.long), 0)


def test_logits_are_a_fresh_non_leaf_copy_whose_gradient_reaches_the_leaf():
    x = torch.randn(5, 4, dtype=torch.float64)
    before = x.clone()
    t = torch.tensor([0, 1, 2, 3, 0])
    leaf, logits = harness.leaf_and_logits(x)
    assert leaf.is_leaf and leaf.requires_grad and not logits.is_leaf
    softmaxloss.IMPLEMENTATIONS["fused_inplace"](logits, t).backward()
    assert torch.equal(x, before)  # the in-place entry wrote into the copy only
    xr = x.clone().requires_grad_(True)
    F.cross_entropy(xr, t).backward()
    assert torch.allclose(leaf.grad, xr.grad, rtol=1e-13, atol=1e-16)


def test_seed_case_is_the_seeds_inputs():
    x, t = harness.seed_case(6, 4, "float32", seed=3, scale=2.0)
    gen = torch.Generator().manual_seed(3)
    expected = (torch.randn(6, 4, generator=gen, dtype=torch.float64) * 2.0).float()
    assert torch.equal(x, expected) and torch.equal(t, torch.tensor([0, 1, 2, 3, 0, 1]))


_MEMORY_SCRIPT = """
import json, torch
from lossbench import harness
torch.set_num_threads(1)
MB = 1 << 20
x, t = torch.zeros(256, 256), torch.zeros(256, dtype=torch.long)

def plain(logits, target):
    return logits.sum()

def plus_scratch(logits, target):  # one 16 MiB buffer, freed when the forward returns
    scratch = torch.ones(16 * MB // 4)
    return logits.sum() + scratch[0] * 0

print(json.dumps([harness.extra_bytes(plain, x, t), harness.extra_bytes(plus_scratch, x, t)]))
"""


def test_extra_bytes_counts_an_extra_buffer_to_a_few_pages():
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_MEMORY_SCRIPT)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    plain, scratch = json.loads(proc.stdout)
    # plain: leaf.grad (256 KiB) and little else; scratch: the peak is the 16 MiB buffer
    # (the gradient comes after it is freed), give or take the interpreter's own pages
    # (20 runs here: 49 to 1 pages under; 42 pages over once under CI load).
    # A missed buffer would read ~0 and a second copy ~32 MiB.
    assert 256 * 1024 <= plain < 1 << 20
    assert abs(scratch - (16 << 20)) <= 512 << 10


def _fixed_timings(impls, x, target, repeats, device="cpu"):
    return {
        name: harness.Timing(
            forward=1e-3 * (i + 1), backward=2e-3 * (i + 1), total=3e-3 * (i + 1), runs=repeats
        )  # fmt: skip
        for i, name in enumerate(impls)
    }


def test_compare_and_ratios_report_the_harness_numbers(monkeypatch):
    monkeypatch.setattr(harness, "time_impls", _fixed_timings)
    rep = compare_cmd.compare(size=12, classes=5, dtype="float64", repeats=2)
    case = ratios_cmd.measure_case(12, 5, "float64", repeats=2, memory=False)
    expected = _fixed_timings(softmaxloss.IMPLEMENTATIONS, None, None, 2)
    for name, timing in expected.items():
        assert rep["seconds"][name] == {"forward": timing.forward, "backward": timing.backward}
        assert case["seconds"][name] == {
            "forward": timing.forward,
            "backward": timing.backward,
            "total": timing.total,
        }
    table = compare_cmd.format_table(rep)
    text = ratios_cmd.format_case(case)
    for name, timing in expected.items():  # the same milliseconds in both printouts
        row_c = next(line for line in table.splitlines() if line.startswith(name + " "))
        row_r = next(line for line in text.splitlines() if line.startswith(name + " "))
        ms = f"{timing.forward * 1e3:.2f}"
        assert ms in row_c.split() and ms in row_r.split()
