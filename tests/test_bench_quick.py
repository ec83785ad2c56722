"""``make bench-quick`` as a slow test: every asv benchmark of the suite once, in this
interpreter, nothing saved (the ``torch.compile`` entries and the depth grid in one smoke
case each; the Makefile says which). It fails when any benchmark fails.

A test rather than a step of its own in ``.ci/run``: asv runs one benchmark at a time, on
one core, and as one of the slow tests it shares their two workers instead of running
after them alone (CI's time, docs/development.md).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from usermake import make

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def test_every_benchmark_runs_once(tmp_path):
    home = tmp_path / "home"  # asv's machine file is this test's own
    home.mkdir()
    proc = make(ROOT, "bench-quick", env={**os.environ, "HOME": str(home)}, timeout=2400)
    print(proc.stdout[-6000:], proc.stderr[-3000:])
    assert proc.returncode == 0
    # asv-quiet's last line: what was skipped and why, and asv's own status
    summary = [line for line in proc.stdout.splitlines() if line.startswith("asv-quiet:")]
    assert summary and summary[-1].endswith("exit status 0"), summary
    assert "failed" not in summary[-1]
