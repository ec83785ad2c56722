"""``make history`` against ``make backfill-local SHARDS=2`` on a scratch history (slow).

A scratch git repository holds this checkout's files in 7 commits (the last 6 are the
range). Repository A runs ``make history RANGE=...`` (one process); repository B, a clone of A
with its own HOME, runs ``make backfill-local SHARDS=2 RANGE=...`` (two processes in two
clones with two more HOMEs, then the checked merge). Both measure the same tiny selection
(asv's ``-b``): one precision ``track_`` combination and one small ``time_`` combination.

The merged result set must equal the single-process one file for file (same names, same
benchmarks in each), and the deterministic ``track_`` values must be identical. Both sites
must graph the six commits. The wall times of both are printed (see docs/history.md).
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import asvenv
import pytest
from gitrepo import GIT_ID, git

ROOT = Path(__file__).resolve().parents[1]

TIME_BENCH = "bench_time.TimeSoftmaxLoss.time_forward"
PREC_BENCH = "bench_precision.PrecisionSoftmaxLoss.track_grad_error"
# `.` stands for the quotes around each parameter (the regex travels through make and sh).
SUBSET = (
    rf"^{re.escape(TIME_BENCH)}\(.manual., .128x100., .float32., .cpu.\)"
    rf"|^{re.escape(PREC_BENCH)}\(.manual., .normal., .float32., .cpu.\)"
)


def scratch_history(repo: Path, commits: int) -> list[str]:
    """A repository on branch main with ``commits`` commits; returns them, oldest first."""
    repo.mkdir()
    asvenv.copy_checkout(repo)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    for i in range(1, commits):
        with open(repo / "README.md", "a") as f:
            f.write(f"\n<!-- history commit {i} -->\n")
        git(repo, "commit", "-qam", f"commit {i}")
    return git(repo, "rev-list", "--reverse", "main").split()


def make(repo: Path, home: Path, *args: str, timeout=900):
    env = {**os.environ, "HOME": str(home), **GIT_ID}
    env.pop("MAKEFLAGS", None)
    env.pop("MAKELEVEL", None)
    started = time.monotonic()
    proc = subprocess.run(
        ["make", *args, f"PYTHON={sys.executable}"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
    )
    return proc.returncode, proc.stdout + proc.stderr, time.monotonic() - started


def result_files(results: Path) -> dict[str, Path]:
    return {
        p.relative_to(results).as_posix(): p for p in sorted(results.rglob("*.json")) if p.is_file()
    }


def rows(path: Path) -> dict[str, dict]:
    data = json.loads(path.read_text())
    cols = data["result_columns"]
    return {name: dict(zip(cols, row, strict=False)) for name, row in data["results"].items()}


@pytest.fixture
def scratch(tmp_path):
    yield tmp_path
    # Three asv environments of ~1.2 GB each: not kept in the temp folder.
    for big in (tmp_path / "a" / ".asv" / "env", tmp_path / "b" / ".asv" / "backfill"):
        shutil.rmtree(big, ignore_errors=True)


@pytest.mark.slow
def test_two_shard_backfill_equals_single_process_history(scratch):
    tmp_path = scratch
    a = tmp_path / "a"
    commits = scratch_history(a, 7)
    rng = f"{commits[0]}..main"  # the last 6 commits
    measured = commits[1:]
    b = tmp_path / "b"
    subprocess.run(["git", "clone", "-q", str(a), str(b)], check=True)
    cache = ROOT / ".asv" / "vendor-cache"  # the site's offline assets, if already fetched
    for repo in (a, b):
        if cache.is_dir():
            shutil.copytree(cache, repo / ".asv" / "vendor-cache")
    home_a, home_b = tmp_path / "home-a", tmp_path / "home-b"
    home_a.mkdir()
    home_b.mkdir()
    # The suite's environment, built once for the slow tests, in A and in B's shard clones
    # (as a backfill that ran before leaves them: backfill-local reuses its clones).
    asvenv.seed(a)
    for i in range(2):
        shard = b / ".asv" / "backfill" / f"shard-{i}" / "repo"
        subprocess.run(["git", "clone", "-q", str(b), str(shard)], check=True)
        asvenv.seed(shard)

    rc, out_a, wall_a = make(a, home_a, "history", f"RANGE={rng}", f"BENCH={SUBSET}")
    print(f"---- make history (1 process): exit {rc}, {wall_a:.0f} s")
    print("\n".join(line for line in out_a.splitlines() if line.startswith("history:")))
    assert rc == 0, out_a
    assert "commit 1 of 6" in out_a and "commit 6 of 6" in out_a, out_a
    assert re.search(r"commit 6 of 6 .*~\d+(m\d\ds|s) left", out_a), out_a

    rc, out_b, wall_b = make(
        b, home_b, "backfill-local", "SHARDS=2", f"RANGE={rng}", f"BENCH={SUBSET}"
    )
    print(f"---- make backfill-local SHARDS=2: exit {rc}, {wall_b:.0f} s")
    print("\n".join(line for line in out_b.splitlines() if "backfill-local:" in line))
    assert rc == 0, out_b
    assert "[shard 0] history: commit 3 of 3" in out_b, out_b
    assert "[shard 1] history: commit 3 of 3" in out_b, out_b
    print(f"---- wall time: 1 process {wall_a:.0f} s, 2 shards {wall_b:.0f} s")

    res_a, res_b = a / ".asv" / "results", b / ".asv" / "results"
    files_a, files_b = result_files(res_a), result_files(res_b)
    assert set(files_a) == set(files_b)
    machines = {rel.split("/")[0] for rel in files_a if "/" in rel}
    assert len(machines) == 1
    (machine,) = machines
    result_names = sorted(rel for rel in files_a if "/" in rel and not rel.endswith("machine.json"))
    assert len(result_names) == 6
    assert sorted(r.split("/")[1][:8] for r in result_names) == sorted(c[:8] for c in measured)
    assert json.loads((res_a / machine / "machine.json").read_text()) == json.loads(
        (res_b / machine / "machine.json").read_text()
    )
    bench_a = json.loads((res_a / "benchmarks.json").read_text())
    bench_b = json.loads((res_b / "benchmarks.json").read_text())
    assert {k: v["version"] for k, v in bench_a.items() if k != "version"} == {
        k: v["version"] for k, v in bench_b.items() if k != "version"
    }

    prec_params = bench_a[PREC_BENCH]["params"]
    prec_index = [
        i
        for i, combo in enumerate(itertools.product(*prec_params))
        if combo == ("'manual'", "'normal'", "'float32'", "'cpu'")
    ]
    assert len(prec_index) == 1
    for rel in result_names:
        data_a = json.loads(files_a[rel].read_text())
        data_b = json.loads(files_b[rel].read_text())
        for key in ("commit_hash", "env_name", "params", "requirements"):
            assert data_a[key] == data_b[key], (rel, key)
        rows_a, rows_b = rows(files_a[rel]), rows(files_b[rel])
        assert set(rows_a) == set(rows_b) == {TIME_BENCH, PREC_BENCH}, rel
        # The deterministic track_: the same numbers, NaN (unselected combinations) included.
        assert json.dumps(rows_a[PREC_BENCH]["result"]) == json.dumps(
            rows_b[PREC_BENCH]["result"]
        ), rel
        value = rows_a[PREC_BENCH]["result"][prec_index[0]]
        assert math.isfinite(value) and 1.0 <= value < 64, (rel, value)
        for r in (rows_a, rows_b):
            times = [t for t in r[TIME_BENCH]["result"] if t is not None and math.isfinite(t)]
            assert len(times) == 1 and 0 < times[0] < 1, (rel, times)

    # Both sites graph the six commits of the precision benchmark.
    for repo in (a, b):
        graphs = list((repo / ".asv" / "html" / "graphs").rglob(f"{PREC_BENCH}.json"))
        assert graphs, repo
        points = json.loads(graphs[0].read_text())
        assert len(points) == 6, points

    # Again on A: every commit already measured, nothing run, nothing changed.
    before = {rel: p.read_bytes() for rel, p in result_files(res_a).items()}
    rc, out, _ = make(a, home_a, "history", f"RANGE={rng}", f"BENCH={SUBSET}")
    assert rc == 0, out
    assert "0 commits measured, 6 already had results" in out, out
    after = {rel: p.read_bytes() for rel, p in result_files(res_a).items()}
    assert before.keys() == after.keys()
    assert all(before[k] == after[k] for k in before if k != "benchmarks.json")

    # make record (the history workflow's local equivalent) on A's HEAD: already measured,
    # so nothing runs; the site is published, and no new regression to alert on.
    rc, out, _ = make(a, home_a, "record", f"BENCH={SUBSET}")
    assert rc == 0, out
    assert "0 commits measured, 1 already had results" in out, out
    # timings may step on this shared machine: listed, never alerted on; the deterministic
    # families find no new regression (make record exits 0)
    assert re.search(
        rf"regressions at {commits[-1][:8]}: (0 new|\d+ new \(0 in the deterministic families)",
        out,
    ), out
