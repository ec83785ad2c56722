"""The gate end to end (slow: real asv runs, callgrind counts).

* A reduced detection-power study: one no-op and two injections into ``manual`` (a 2x
  forward slowdown, a 1000 eps gradient error), instruction counts and precision only. The
  no-op must pass, both injections must be caught, and the injected factor the study
  reports (an instruction-count ratio) must match the work injected.
* Bisect: a history of 9 commits with a 1.2x backward slowdown in the middle; ``bisect``
  (asv find on the instruction counts) must name that commit.

Both work on a scratch repository holding this checkout's files (committed or not), with
HOME in a temp dir (asv's machine file is their own).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lossbench import study as detection

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed"),
]


def _git(repo, *args):
    env = {**os.environ, **detection.GIT_ID}
    return subprocess.run(
        ["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


def _scratch(tmp_path) -> Path:
    """A git repository with this checkout's files (tracked and untracked, not ignored)."""
    repo = tmp_path / "repo"
    files = _git(ROOT, "ls-files", "-co", "--exclude-standard").splitlines()
    for name in files:
        if (ROOT / name).is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, repo / name)
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "base")
    return repo


def _run(args, cwd, env, timeout):
    proc = subprocess.run(
        [sys.executable, "-m", "lossbench", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
    )
    print(proc.stdout)
    print(proc.stderr[-3000:])
    return proc


# `.` for the quotes around each parameter: instruction counts and precision of one
# implementation, one size, float32. No timings: their 4 interleaved rounds would double the
# test's time (the time decision is unit-tested in test_gate.py; the full study measures it).
REDUCED = r"^bench_(instructions|precision)\.\w+\.\w+\(.manual., .(1024x1000|normal)., .float32."


def test_reduced_detection_study_passes_a_noop_and_catches_two_injections(tmp_path):
    repo = _scratch(tmp_path)
    work = tmp_path / "study"
    env = {**os.environ, "SOFTMAXLOSS_INSTRUCTION_IMPLS": "manual", "GITHUB_STEP_SUMMARY": ""}
    proc = _run(
        [
            "detection-power",
            "--repo",
            str(repo),
            "--workdir",
            str(work),
            "--noops",
            "1",
            "--factors",
            "2",
            "--regions",
            "forward",
            "--precision",
            "1000",
            "--no-memory",
            "--runs",
            "1",
            "--bench",
            REDUCED,
        ],
        ROOT,
        env,
        timeout=1800,
    )
    assert proc.returncode == 0
    rows = json.loads((work / "detection.json").read_text())["rows"]
    by = {}
    for r in rows:
        by.setdefault(r["change"], []).append(r)
    assert set(by) == {"noop-1", "forward-x2", "precision-x1000"}
    families = {r["family"] for r in by["noop-1"]}
    assert families == {"instructions", "precision"}, families
    assert not [r for r in by["noop-1"] if r["regressed"]]
    # the forward slowdown: counted (deterministic) and timed, forward only
    fwd = {r["benchmark"].rsplit(".", 1)[1]: r for r in by["forward-x2"] if r["family"] != "time"}
    assert 1.8 <= fwd["track_forward"]["ratio"] <= 2.3 and fwd["track_forward"]["regressed"]
    assert 0.99 <= fwd["track_backward"]["ratio"] <= 1.01
    assert not fwd["track_backward"]["regressed"]
    assert not fwd["track_grad_error"]["regressed"]
    # the precision loss: 1000 eps more gradient error, caught by the precision metric
    prec = [r for r in by["precision-x1000"] if r["benchmark"].endswith("track_grad_error")]
    assert prec and all(r["regressed"] and r["ratio"] > 100 for r in prec)
    assert re.search(r"no-op \(1 commits\)\s+all\s+-\s+0/1\s+-\s+-\s+0/1\s+0/1", proc.stdout)


def test_bisect_finds_the_commit_that_injected_a_slowdown(tmp_path):
    repo = _scratch(tmp_path)
    hashes = [_git(repo, "rev-parse", "HEAD")]
    bad = detection.Change("slow", "backward", 1.2).code("manual")
    for i in range(1, 9):
        if i == 4:
            with open(repo / "softmaxloss" / "__init__.py", "a") as f:
                f.write(f"\n\n# ---- injected: backward 1.2x ----\n{bad}")
        else:
            with open(repo / "README.md", "a") as f:
                f.write(f"\n<!-- commit {i} -->\n")
        _git(repo, "commit", "-qam", f"commit {i}")
        hashes.append(_git(repo, "rev-parse", "HEAD"))
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home)}
    subprocess.run(
        [sys.executable, "-m", "asv", "machine", "--yes", "--machine", "bisect"],
        cwd=repo,
        env=env,
        check=True,
        capture_output=True,
    )
    bench = r"bench_instructions.InstructionsSoftmaxLoss.track_backward\(.manual., .1024x1000."
    proc = _run(
        ["bisect", hashes[0], hashes[-1], "--bench", bench, "--impl", "manual"]
        + ["--machine", "bisect"],
        repo,
        env,
        timeout=1800,
    )
    assert proc.returncode == 0
    assert f"first bad commit: {hashes[4]} commit 4" in proc.stdout
    ratio = float(re.search(r"\(([\d.]+)x\)", proc.stdout).group(1))
    assert 1.15 <= ratio <= 1.3
