"""History commands without running asv: commit lists, the round-robin plan, progress, export,
and bad input (one line, non-zero exit, no result file touched)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from asvenv import copy_checkout
from gitrepo import git

from lossbench import asv_output, config
from lossbench import history as hist
from lossbench.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """main: c0 - c1 - c2 - M(c2, s2) - c4 - c5, with side commits s1 - s2 from c1."""
    repo = tmp_path_factory.mktemp("hist") / "repo"
    repo.mkdir()
    copy_checkout(repo)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "c0")
    names = {"c0": git(repo, "rev-parse", "HEAD")}

    def commit(name):
        (repo / "history.txt").write_text(name + "\n")
        git(repo, "add", "history.txt")
        git(repo, "commit", "-qm", name)
        names[name] = git(repo, "rev-parse", "HEAD")

    commit("c1")
    git(repo, "checkout", "-qb", "side")
    (repo / "side.txt").write_text("s1\n")
    git(repo, "add", "side.txt")
    git(repo, "commit", "-qm", "s1")
    names["s1"] = git(repo, "rev-parse", "HEAD")
    (repo / "side.txt").write_text("s2\n")
    git(repo, "commit", "-qam", "s2")
    names["s2"] = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "main")
    commit("c2")
    git(repo, "merge", "-q", "--no-ff", "-m", "M", "side")
    names["M"] = git(repo, "rev-parse", "HEAD")
    commit("c4")
    commit("c5")
    # A stored history that no bad input may touch.
    results = repo / ".asv" / "results" / "vm"
    results.mkdir(parents=True)
    (results / "machine.json").write_text('{"machine": "vm", "version": 1}')
    (results / "0123abcd-env.json").write_text('{"keep": true}')
    return repo, names


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_first_parent_commits_of_main_oldest_first(repo):
    path, c = repo
    assert hist.first_parent_commits(path, n=4) == [c["c2"], c["M"], c["c4"], c["c5"]]
    everything = hist.first_parent_commits(path, n=100)
    assert everything == [c[k] for k in ("c0", "c1", "c2", "M", "c4", "c5")]
    assert c["s1"] not in everything and c["s2"] not in everything
    # A..B leaves A out, as git and asv do; the side branch stays out.
    assert hist.first_parent_commits(path, rev_range=f"{c['c1']}..main") == [
        c["c2"],
        c["M"],
        c["c4"],
        c["c5"],
    ]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n": "abc"}, "N must be a positive integer, got 'abc'"),
        ({"n": "0"}, "N must be a positive integer"),
        ({"n": "-3"}, "N must be a positive integer"),
        ({"n": 2.5}, "N must be a positive integer"),
        ({"rev_range": "main..main"}, "selects no commits"),
        ({"rev_range": "nope..main"}, "revision 'nope' is not a commit"),
        ({"rev_range": "main"}, "range must be <from>..<to>"),
        ({"rev_range": "..main"}, "both ends"),
        ({"rev_range": "a...b"}, "range must be <from>..<to>"),
        ({"rev_range": ""}, "range must be <from>..<to>"),
        ({"n": 3, "rev_range": "a..b"}, "not both"),
    ],
)
def test_bad_commit_selection(repo, kwargs, message):
    path, _ = repo
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(".", r"\.")):
        hist.first_parent_commits(path, **kwargs)


def test_round_robin_every_shard_spans_the_history():
    commits = [f"{i:040x}" for i in range(23)]
    for k in (1, 2, 3, 5, 23):
        shards = hist.round_robin(commits, k)
        assert len(shards) == k
        flat = [c for s in shards for c in s]
        assert sorted(flat) == commits and len(set(flat)) == len(commits)  # a partition
        assert max(map(len, shards)) - min(map(len, shards)) <= 1
        for i, shard in enumerate(shards):
            idx = [commits.index(c) for c in shard]
            assert idx == sorted(idx)  # oldest first, like the history
            assert idx[0] == i and idx[-1] >= len(commits) - k  # spans the whole range
            assert all(b - a == k for a, b in zip(idx, idx[1:], strict=False))
    assert hist.round_robin(commits[:2], 5) == [[commits[0]], [commits[1]]]
    for bad in (0, -1, "x", "", None, True):
        with pytest.raises(UsageError, match="SHARDS must be a positive integer"):
            hist.round_robin(commits, bad)


def test_progress_counts_commits_and_estimates_time_left():
    commits = [f"{i}" * 40 for i in range(1, 6)]
    now = [0.0]
    out = []
    p = hist.Progress(commits, {commits[0]: "first"}, emit=out.append, clock=lambda: now[0])
    now[0] = 30.0
    p.feed(f"[ 0.00%] · For softmaxloss commit {commits[0][:8]} <main>:")
    now[0] = 90.0  # commit 1 took 60 s; commit 2 was skipped (no line)
    p.feed(f"[40.00%] · For softmaxloss commit {commits[2][:8]} <main~2>:")
    p.feed("[50.00%] ··· bench_time.T.time_forward      ok")
    now[0] = 150.0
    p.feed(f"[60.00%] · For softmaxloss commit {commits[3][:8]} <main~1>:")
    now[0] = 200.0
    summary = p.finish()
    assert (
        out[0] == f"history: commit 1 of 5 {commits[0][:8]} first [30s elapsed, time left unknown]"
    )
    assert out[1] == f"history: commit 3 of 5 {commits[2][:8]} [1m30s elapsed, ~3m00s left]"
    assert out[2] == f"history: commit 4 of 5 {commits[3][:8]} [2m30s elapsed, ~2m00s left]"
    assert summary == "3 commits measured, 2 already had results, 3m20s"


def test_echoed_asv_lines():
    echo = asv_output.worth_echoing
    assert echo("· Creating environments")
    assert echo("[50.00%] ··· bench_depth.D.track_first_layer_error     failed")
    assert echo("Error: something asv reports")
    assert echo("[10.00%] ·· Error running /env/bin/python -m pip wheel (exit 1)")
    assert not echo("[10.00%] ·· Benchmarking virtualenv-py3.11-torch2.13.0")
    assert not echo("[50.00%] ··· bench_time.T.time_forward     ok")
    assert not echo("             ImportError: cannot import name 'data'")
    assert not echo("[ 0.00%] · For softmaxloss commit 1234abcd <main>:")


def test_export_hands_back_only_what_the_run_changed(tmp_path):
    res = tmp_path / "results"
    (res / "vm").mkdir(parents=True)
    (res / "benchmarks.json").write_text("{}")
    (res / "vm" / "machine.json").write_text("{}")
    (res / "vm" / "aaaa-env.json").write_text("old")
    (res / "vm" / "bbbb-env.json").write_text("old")
    before = hist.snapshot(res)
    (res / "vm" / "bbbb-env.json").write_text("grown")
    (res / "vm" / "cccc-env.json").write_text("new")
    out = tmp_path / "out"
    copied = hist.export_changed(res, before, out)
    assert copied == ["benchmarks.json", "vm/bbbb-env.json", "vm/cccc-env.json", "vm/machine.json"]
    assert (out / "vm" / "bbbb-env.json").read_text() == "grown"
    with pytest.raises(UsageError, match="not empty"):
        hist.export_changed(res, before, out)


def test_config_for_torch_pins_one_version_with_absolute_paths(tmp_path):
    conf = tmp_path / "asv.conf.json"
    conf.write_text(
        '{"version": 1, // comment\n "repo": ".", "matrix": {"req": {"torch": ["2.13.0"]}},'
        ' "env_dir": ".asv/env", "results_dir": ".asv/results", "html_dir": ".asv/html",'
        ' "benchmark_dir": "benchmarks"}'
    )
    assert hist.config_for_torch(conf, None) == conf
    assert hist.config_for_torch(conf, "2.13.0") == conf
    derived = hist.config_for_torch(conf, "2.14.1")
    data = json.loads(derived.read_text())
    assert data["matrix"]["req"]["torch"] == ["2.14.1"]
    assert data["results_dir"] == str(tmp_path / ".asv" / "results")
    assert data["repo"] == str(tmp_path)
    assert config.results_dir(derived) == config.results_dir(conf)
    with pytest.raises(UsageError, match="torch version"):
        hist.config_for_torch(conf, "2.13; rm -rf /")


class Ran:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def cli(repo, *args):
    """``python -m softmaxloss ARGS`` in ``repo``, in this process (no torch re-import)."""
    from lossbench.commands import main

    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    os.chdir(repo)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = main(list(args))
            except SystemExit as exc:  # argparse
                rc = exc.code
    finally:
        os.chdir(cwd)
    return Ran(rc, out.getvalue(), err.getvalue())


def test_backfill_plan_writes_round_robin_hashfiles_and_matrix(repo, tmp_path):
    path, c = repo
    out, gh = tmp_path / "plan", tmp_path / "gh.txt"
    proc = cli(
        path,
        "backfill-plan",
        "--range",
        f"{c['c0']}..main",
        "--shards",
        "2",
        "--out",
        str(out),
        "--torch",
        "2.13.0, 2.14.1",
        "--github-output",
        str(gh),
    )
    assert proc.returncode == 0, proc.stderr
    main = [c[k] for k in ("c1", "c2", "M", "c4", "c5")]
    assert (out / "shard-0.txt").read_text().split() == main[0::2]
    assert (out / "shard-1.txt").read_text().split() == main[1::2]
    assert gh.read_text().splitlines() == [
        'shards=["0", "1"]',
        'torch=["2.13.0", "2.14.1"]',
        "commits=5",
    ]
    # A second plan into the same folder would replace the first: refused.
    proc = cli(path, "backfill-plan", "-n", "2", "--shards", "2", "--out", str(out))
    assert proc.returncode == 2 and "already holds shard-0.txt" in proc.stderr


BAD_INPUTS = [
    (["history", "-n", "abc"], "N must be a positive integer, got 'abc'"),
    (["history", "--range", ""], "range must be <from>..<to>, got ''"),
    (["history", "-n", ""], "N must be a positive integer, got ''"),
    (["history", "--range", "HEAD..HEAD"], "selects no commits"),
    (["history", "--range", "nope..HEAD"], "revision 'nope' is not a commit"),
    (["history", "--commits-file", "missing.txt"], "does not exist"),
    (["history", "-n", "2", "-b", "("], "is not a regular expression"),
    (["history", "-n", "2", "--torch", "x y"], "torch version"),
    (["backfill-plan", "--shards", "0", "-n", "3", "--out", "p"], "SHARDS must be a positive"),
    (["backfill-plan", "--shards", "2", "--out", "p"], "give -n N or --range A..B"),
    (["backfill-local", "--shards", "0", "-n", "3"], "SHARDS must be a positive integer"),
    (["backfill-local", "--shards", "x", "-n", "3"], "SHARDS must be a positive integer"),
    (["backfill-local", "--shards", "2", "--range", "main..main"], "selects no commits"),
    (["merge-results", "--into", ".asv/results", "nope"], "nope: no such folder"),
]


@pytest.mark.parametrize("args, message", BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_one_line_nonzero_nothing_touched(repo, args, message):
    path, _ = repo
    before = tree(path / ".asv")
    proc = cli(path, *args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert tree(path / ".asv") == before
    assert not (path / "p").exists()


@pytest.mark.parametrize(
    "target, message",
    [
        (["history", "N=abc"], "N must be a positive integer, got 'abc'"),
        (["history", "RANGE="], "range must be <from>..<to>, got ''"),
        (["history", "RANGE=nope..main"], "revision 'nope' is not a commit"),
        (["backfill-local", "SHARDS=0", "N=3"], "SHARDS must be a positive integer, got '0'"),
    ],
)
def test_make_targets_refuse_bad_input(repo, tmp_path, target, message):
    path, _ = repo
    before = tree(path / ".asv")
    env = {**os.environ, "HOME": str(tmp_path)}
    env.pop("MAKEFLAGS", None)
    proc = subprocess.run(
        ["make", "--no-print-directory", *target, f"PYTHON={sys.executable}"],
        cwd=path,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    assert proc.returncode != 0
    errors = [
        line for line in proc.stderr.splitlines() if not re.match(r"make(\[\d+\])?: \*\*\*", line)
    ]
    assert len(errors) == 1 and message in errors[0], proc.stderr
    assert tree(path / ".asv") == before
    assert not (tmp_path / ".asv-machine.json").exists()  # nothing ran
