"""The regression gate (``make gate``) catches real regressions and passes a no-op.

The slow test builds a scratch git repository from this checkout (HOME in a temp dir, so the
asv machine file is its own), commits three changes on top of a base commit by editing the
scratch copy's ``softmaxloss/__init__.py`` (wrapping the ``manual`` registry entry):

* ``manual`` made 3x slower (two extra forward+backward passes per call),
* ``manual``'s gradient rounded to bfloat16 (an identity Function whose backward rounds),
* a no-op (README only),

and runs ``make gate BASE=<base>`` for each, restricted with ``GATE_BENCH`` (asv's ``-b``,
which matches ``name(param, ...)``) to one timing and one precision benchmark so that the
whole test stays at a few minutes (one environment build plus six short runs).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import softmaxloss
from benchmarks import common
from softmaxloss.suite import torch_versions

ROOT = Path(__file__).resolve().parents[1]

TIME_BENCH = "bench_time.TimeSoftmaxLoss.time_forward_backward"
PREC_BENCH = "bench_precision.PrecisionSoftmaxLoss.track_grad_error"
# `.` stands for the quotes around each parameter (the regex travels through make and sh).
SUBSET = (
    rf"^{re.escape(TIME_BENCH)}\(.manual., .1024x1000., .float32., .cpu.\)"
    rf"|^{re.escape(PREC_BENCH)}\(.manual., .normal., .float32., .cpu.\)"
)

SLOWER = """
_manual = IMPLEMENTATIONS["manual"]


def _slow_manual(logits, target):
    for _ in range(2):
        x = logits.detach().requires_grad_(True)
        _manual(x, target).backward()
    return _manual(logits, target)


IMPLEMENTATIONS["manual"] = _slow_manual
"""

ROUNDED = """
import torch as _torch

_manual = IMPLEMENTATIONS["manual"]


class _RoundGrad(_torch.autograd.Function):
    @staticmethod
    def forward(x):
        return x.view_as(x)

    @staticmethod
    def setup_context(ctx, inputs, output):
        pass

    @staticmethod
    def backward(ctx, g):
        return g.to(_torch.bfloat16).to(g.dtype)


def _rounded_manual(logits, target):
    return _manual(_RoundGrad.apply(logits), target)


IMPLEMENTATIONS["manual"] = _rounded_manual
"""


def test_registry_names_are_in_the_fixed_impl_grid():
    # The suite's impl param is a fixed list; a registered name missing from it is unmeasured.
    assert set(softmaxloss.IMPLEMENTATIONS) <= set(common.IMPLS)


def test_missing_impl_and_device_skip_not_fail():
    with pytest.raises(NotImplementedError):
        common.get_impl("no_such_impl")
    if not __import__("torch").cuda.is_available():
        with pytest.raises(NotImplementedError):
            common.prepare("manual", "128x100", "float32", "cuda")
    with pytest.raises(NotImplementedError):  # the naive pair raises TypeError on bfloat16
        common.prepare("naive_manual", "128x100", "bfloat16", "cpu")


GIT_ID = {
    "GIT_AUTHOR_NAME": "gate",
    "GIT_COMMITTER_NAME": "gate",
    "GIT_AUTHOR_EMAIL": "gate@example.invalid",
    "GIT_COMMITTER_EMAIL": "gate@example.invalid",
}


def test_torch_version_ratios_flag_only_regressions_measured_under_both():
    base = {("t", "a"): 1.0, ("t", "b"): 2.0, ("e", "c"): 1.0, ("t", "gone"): 1.0}
    other = {("t", "a"): 2.5, ("t", "b"): 1.0, ("e", "c"): None, ("t", "new"): 9.0}
    rows = torch_versions.compare(base, other, factor=2.0)
    assert [(r[0], r[1], r[4], r[5]) for r in rows] == [
        ("t", "a", 2.5, True),
        ("t", "b", 0.5, False),
    ]


def _git(repo, *args):
    env = {**os.environ, **GIT_ID}
    subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True)


def _commit(repo, message, append=None):
    if append is None:
        with open(repo / "README.md", "a") as f:
            f.write("\n<!-- no-op change -->\n")
    else:
        with open(repo / "softmaxloss" / "__init__.py", "a") as f:
            f.write(append)
    _git(repo, "commit", "-qam", message)


def _gate(repo, env, base):
    proc = subprocess.run(
        ["make", "gate", f"BASE={base}", f"GATE_BENCH={SUBSET}", f"PYTHON={sys.executable}"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=900,
    )
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.slow
def test_gate_catches_slowdown_and_precision_loss_but_passes_noop(tmp_path):
    repo = tmp_path / "repo"
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    for name in files:
        if (ROOT / name).is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, repo / name)
    home = tmp_path / "home"
    home.mkdir()
    env = {
        **os.environ,
        "HOME": str(home),
        "GIT_AUTHOR_NAME": "gate",
        "GIT_COMMITTER_NAME": "gate",
        "GIT_AUTHOR_EMAIL": "gate@example.invalid",
        "GIT_COMMITTER_EMAIL": "gate@example.invalid",
    }
    env.pop("MAKEFLAGS", None)
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "base")

    outcomes = {}
    for name, change in (("noop", None), ("slower", SLOWER), ("rounded", ROUNDED)):
        _git(repo, "checkout", "-q", "-B", name, "main")
        _commit(repo, name, change)
        outcomes[name] = _gate(repo, env, "main")
        print(f"---- gate on the {name} commit: exit {outcomes[name][0]}")
        print("\n".join(line for line in outcomes[name][1].splitlines() if "|" in line))

    # make turns any failing recipe into exit 2; the recipe prints asv's own status.
    rc, out = outcomes["noop"]
    assert rc == 0 and "gate: exit 0" in out, out
    rc, out = outcomes["slower"]
    assert rc != 0 and "gate: exit 1" in out, out
    assert "PERFORMANCE DECREASED" in out, out
    assert re.search(rf"{re.escape(TIME_BENCH)}\('manual', '1024x1000'", out), out
    rc, out = outcomes["rounded"]
    assert rc != 0 and "gate: exit 1" in out, out
    assert re.search(rf"{re.escape(PREC_BENCH)}\('manual', 'normal'", out), out
