"""``python -m lossbench regressions``: asv's own step detection over a published history
(a real ``asv publish`` of synthetic results in a scratch repository), new jumps only, the
deterministic families alerting and timings shown only."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from gitrepo import git

from lossbench import regressions

INSTR = "bench_instructions.InstructionsSoftmaxLoss.track_forward"
TIME = "bench_paired.PairedTimeSoftmaxLoss.time_forward"
BENCHMARKS = {
    INSTR: {"type": "track", "unit": "instructions", "params": [["'manual'", "'torch'"]]},
    TIME: {"type": "time", "unit": "seconds", "params": [["'manual'", "'torch'"]]},
}


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """Six commits; manual's count and time step up 2x at the fifth."""
    repo = tmp_path_factory.mktemp("repo")
    git(repo, "init", "-q", "-b", "main")
    (repo / "asv.conf.json").write_text(
        json.dumps(
            {
                "version": 1,
                "project": "p",
                "repo": ".",
                "branches": ["main"],
                "results_dir": "results",
                "html_dir": "html",
            }
        )  # fmt: skip
    )
    commits = []
    for i in range(6):
        (repo / "f").write_text(str(i))
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", f"c{i}")
        commits.append(git(repo, "rev-parse", "HEAD"))
    results = repo / "results" / "m"
    results.mkdir(parents=True)
    (results / "machine.json").write_text(json.dumps({"machine": "m", "version": 1}))
    infos = {
        n: {**i, "name": n, "version": "v", "param_names": ["impl"]} for n, i in BENCHMARKS.items()
    }
    (repo / "results" / "benchmarks.json").write_text(json.dumps({**infos, "version": 2}))
    for i, commit in enumerate(commits):
        step = 2.0 if i >= 4 else 1.0
        data = {
            "commit_hash": commit, "env_name": "e", "version": 2, "date": 1000 * i,
            "params": {"machine": "m", "python": "3.11"}, "requirements": {}, "python": "3.11",
            "result_columns": ["result", "params", "version"],
            "results": {INSTR: [[1e6 * step, 2e6], [["'manual'", "'torch'"]], "v"],
                        TIME: [[1e-3 * step, 2e-3], [["'manual'", "'torch'"]], "v"]},
        }  # fmt: skip
        (results / f"{commit[:8]}-e.json").write_text(json.dumps(data))
    proc = subprocess.run(
        [sys.executable, "-m", "asv", "publish", "--config", "asv.conf.json"],
        cwd=repo,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return repo, commits


def test_the_jump_is_found_at_its_commit_only(published):
    repo, commits = published
    found = regressions.new_at(repo / "html", commits[4])
    got = {(j.benchmark, j.params, j.family, j.alert) for j in found}
    assert got == {(INSTR, "'manual'", "instructions", True), (TIME, "'manual'", "time", False)}
    instr = next(j for j in found if j.family == "instructions")
    assert instr.ratio == pytest.approx(2.0)
    assert regressions.new_at(repo / "html", commits[5]) == []  # already there before
    assert regressions.new_at(repo / "html", commits[2]) == []


def test_the_command_alerts_on_deterministic_families_only(
    published, tmp_path, monkeypatch, capsys
):
    from lossbench.commands import main

    repo, commits = published
    monkeypatch.chdir(repo)
    summary = tmp_path / "summary.md"
    assert main(["regressions", commits[4], "--summary", str(summary)]) == 1
    out = capsys.readouterr().out
    assert "2 new (1 in the deterministic families" in out
    text = summary.read_text()
    assert "| ALERT | bench_instructions" in text and f"{commits[4][:8]}" in text
    assert main(["regressions", commits[5]]) == 0
