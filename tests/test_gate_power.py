"""The gate end to end (slow: real asv runs, callgrind counts, paired workers).

* A reduced detection-power study: one no-op and one C++ injection into ``manual`` (an
  extra pass in its forward), counted and timed at one size. The no-op must pass; the
  injection must move HEAD's counts and time (HEAD's own C++ build) and not BASE's.
* ``make gate`` on a fresh clone (no ``.asv``, no asv machine file).
* Bisect: a history of 5 commits with a 1.2x backward slowdown in the middle; ``bisect``
  (asv find on the instruction counts) must name that commit (asv measures 4 of them: the
  ends, then halves; 9 commits cost one measured commit more and test nothing more).

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

import asvenv
import pytest
from gitrepo import git
from usermake import make

from lossbench import injections

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed"),
]


def _scratch(tmp_path) -> Path:
    """A git repository with this checkout's files (tracked and untracked, not ignored)."""
    repo = tmp_path / "repo"
    asvenv.copy_checkout(repo)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
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


# `.` for the quotes around each parameter: manual's forward at 1024x1000, float32, counted
# (instructions, cycles) and timed (paired), nothing else: the test's time budget.
REDUCED = (
    r"^bench_(instructions\.\w+\.track_(cycles_)?forward|time\.TimeSoftmaxLoss\.time_forward)"
    r"\(.manual., .1024x1000., .float32."
)


def test_reduced_study_passes_a_noop_and_measures_heads_cpp(tmp_path):
    """The study's gate on a no-op and on a C++ edit of HEAD (an extra pass in manual's
    forward): the no-op passes; HEAD's counts and time move with HEAD's own C++ while BASE's
    stay as they were measured for the no-op; the paired timings catch it."""
    repo = _scratch(tmp_path)
    work = tmp_path / "study"
    env = {**os.environ, "HOME": str(tmp_path / "home"), "GITHUB_STEP_SUMMARY": ""}
    env["SOFTMAXLOSS_INSTRUCTION_IMPLS"] = "manual"  # the callgrind worker counts REDUCED's
    args = ["detection-power", "--repo", str(repo), "--workdir", str(work), "--noops", "1"]
    args += ["--injections", "cpp-extra-pass", "--runs", "1", "--bench", REDUCED]
    proc = _run(args, ROOT, env, timeout=2400)
    assert proc.returncode == 0
    data = json.loads((work / "study.json").read_text())
    rows = {r["change"]: {(x["benchmark"].rsplit(".", 1)[1], x["family"]): x for x in r["rows"]}
            for r in data["runs"]}  # fmt: skip
    noop, cpp = rows["noop-1"], rows["cpp-extra-pass"]
    assert set(noop) == {
        ("track_forward", "instructions"),
        ("track_cycles_forward", "cycles"),
        ("time_forward", "time"),
    }
    assert not [r for r in noop.values() if r["regressed"]]
    assert 0.99 <= noop[("track_forward", "instructions")]["ratio"] <= 1.01
    count = cpp[("track_forward", "instructions")]
    assert count["before"] == noop[("track_forward", "instructions")]["before"]  # BASE's
    assert 1.7 <= count["ratio"] <= 2.1 and count["regressed"]  # HEAD's own C++
    timed = cpp[("time_forward", "time")]
    assert timed["ratio"] > 1.3 and timed["regressed"], timed
    # its native factor, at the size counted (at 128x100 the call's fixed cost dilutes it)
    factors = data["factors"]["cpp-extra-pass"]
    counted = [vs for label, vs in factors.items() if "'1024x1000'" in label]
    assert counted and all(v > 1.3 for vs in counted for v in vs), factors
    assert re.search(r"no-op \(1 commits\)", proc.stdout)


def test_make_gate_on_a_fresh_clone(tmp_path):
    """No .asv yet, no asv machine file: make gate measures and decides, one status line.
    A documentation commit passes at once (its package is BASE's); a commit that edits the
    package (a comment) is measured."""
    repo = _scratch(tmp_path)
    with open(repo / "README.md", "a") as f:
        f.write("\n<!-- a documentation change -->\n")
    git(repo, "commit", "-qam", "docs")
    env = {**os.environ, "HOME": str(tmp_path / "home"), "GITHUB_STEP_SUMMARY": ""}
    env["SOFTMAXLOSS_INSTRUCTION_IMPLS"] = "manual"  # the callgrind worker counts REDUCED's

    def make_gate():
        proc = make(repo, "gate", "BASE=HEAD~1", f"GATE_BENCH={REDUCED}", env=env, timeout=2400)
        print(proc.stdout[-3000:], proc.stderr[-3000:])
        assert proc.returncode == 0 and "Traceback" not in proc.stderr
        assert proc.stdout.strip().splitlines()[-1].startswith("gate: exit 0")
        return proc

    docs = make_gate()
    assert "HEAD's package is BASE's: nothing measured" in docs.stdout
    assert not (repo / ".asv" / "results").exists()
    with open(repo / "softmaxloss" / "__init__.py", "a") as f:
        f.write("\n# a comment: the same loss\n")
    git(repo, "commit", "-qam", "a comment")
    code = make_gate()
    assert "time: 1 compared, 0 regressed" in code.stdout


def test_bisect_finds_the_commit_that_injected_a_slowdown(tmp_path):
    repo = _scratch(tmp_path)
    asvenv.seed(repo)  # the suite's environment, built once for the slow tests
    hashes = [git(repo, "rev-parse", "HEAD")]
    bad = injections.python_slowdown(1.2, "backward")
    for i in range(1, 5):
        if i == 2:
            bad.apply(repo)
            git(repo, "add", "-A")
        else:
            with open(repo / "README.md", "a") as f:
                f.write(f"\n<!-- commit {i} -->\n")
        git(repo, "commit", "-qam", f"commit {i}")
        hashes.append(git(repo, "rev-parse", "HEAD"))
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
    assert f"first bad commit: {hashes[2]} commit 2" in proc.stdout
    ratio = float(re.search(r"\(([\d.]+)x\)", proc.stdout).group(1))
    assert 1.15 <= ratio <= 1.3
