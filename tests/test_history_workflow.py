"""The history-on-push workflow's wiring, read from its YAML (not run on GitHub from here):
every push to main runs the suite on the new commit into the stored history, one writer at a
time with the backfill, and reports asv's new regressions, alerting on the deterministic
families only. Its local equivalent, ``make record``, runs in tests/test_history_backfill.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"


def _load(name):
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as True
    return data


def _text(job) -> str:
    return "\n".join(str(s.get("run", "")) + json.dumps(s.get("with", {})) for s in job["steps"])


def test_every_push_to_main_records_with_the_backfills_writer_lock():
    wf, backfill = _load("history.yml"), _load("backfill.yml")
    assert wf["on"] == {"push": {"branches": ["main"]}}
    assert wf["concurrency"]["group"] == backfill["concurrency"]["group"]
    assert wf["concurrency"]["cancel-in-progress"] is False
    assert wf["env"]["RESULTS_BRANCH"] == backfill["env"]["RESULTS_BRANCH"]


def test_the_new_commit_is_measured_published_reported_and_stored():
    job = _load("history.yml")["jobs"]["record"]
    text = _text(job)
    order = [
        "git archive FETCH_HEAD | tar -x -C .asv/results",  # start from the stored history
        "lossbench history --commits-file new-commit.txt",
        "make site",
        'lossbench regressions "$GITHUB_SHA"',
        'push origin "HEAD:refs/heads/$RESULTS_BRANCH"',
    ]
    positions = [text.index(part) for part in order]
    assert positions == sorted(positions)
    assert '--summary "$GITHUB_STEP_SUMMARY"' in text
    assert job["permissions"]["contents"] == "write"


def test_only_the_deterministic_families_fail_the_run():
    wf = _load("history.yml")
    step = next(s for s in wf["jobs"]["record"]["steps"] if s.get("id") == "regressions")
    assert 'if [ "$rc" -eq 1 ]' in step["run"] and "alert=true" in step["run"]
    assert wf["jobs"]["alert"]["if"] == "${{ needs.record.outputs.alert == 'true' }}"
    from lossbench.regressions import ALERT

    assert "time" not in ALERT and {"instructions", "memory", "precision"} <= set(ALERT)


def test_a_record_that_measured_not_everything_fails_the_job_after_storing():
    """history's exit 3 (a benchmark failed, or the run could not be done) keeps what was
    measured (the site, the stored history) and then fails the job: no warning-and-pass."""
    steps = _load("history.yml")["jobs"]["record"]["steps"]
    names = [s.get("name", "") for s in steps]
    suite = next(s for s in steps if s.get("id") == "suite")
    assert 'if [ "$rc" -eq 3 ]' in suite["run"] and "incomplete=true" in suite["run"]
    assert "::warning::" not in suite["run"]
    last = next(s for s in steps if s.get("name") == "An incomplete record is no pass")
    assert last["if"] == "${{ steps.suite.outputs.incomplete == 'true' }}"
    assert "exit 1" in last["run"]
    assert names.index("An incomplete record is no pass") > names.index(
        "Save the history on the asv-results branch"
    )


def test_the_gate_workflow_calls_the_command_not_make():
    text = _text(_load("benchmarks.yml")["jobs"]["gate"])
    assert "python -m lossbench gate" in text and "make gate" not in text
    assert "1)" in text and "3)" in text  # regression and failure told apart
